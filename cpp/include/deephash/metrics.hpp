// Retrieval evaluation over packed binary codes: mAP@k, precision/recall at rank cut-offs and
// precision/recall/mAP within a Hamming radius.
//
// Every query is ranked by counting over the nbits+1 possible distances: one pass over the
// database (in chunks, a few queries at a time) computes the distances, the relevance of every
// item and a per-distance histogram, and for ties = Index records each relevant item's place in
// its tie group; a second step places only the relevant items at their ranks. The work is O(N)
// per query, parallel over queries, and nothing of size (nq x N) is ever allocated.
//
// Relevance: a database item is relevant to a query when they share at least one label (equal
// class ids, or a common bit in their multi-hot bitsets).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "deephash/common.hpp"

namespace deephash::metrics {

// Order inside a group of equal distances.
enum class TieOrder {
  Index,     // by database index (deterministic; what a stable sort gives)
  Expected,  // the exact expectation under a uniformly random order within every tie group
};

// Denominator of AP@k.
enum class Normalization {
  Retrieved,  // relevant items found in the top k (DeepHash-pytorch, HashNet)
  Min,        // min(k, relevant items in the database)
};

// What a query whose metric has a zero denominator contributes to a mean.
enum class EmptyPolicy {
  Zero,  // counts as 0
  Skip,  // left out of the mean
};

// Packed codes of one set: n rows of code_size bytes, row-major.
struct CodesView {
  const std::uint8_t* data = nullptr;
  std::size_t n = 0;
  std::size_t code_size = 0;
};

// Labels of one set: either class ids (class_ids != nullptr) or multi-hot bitsets of `words`
// 64-bit words per row (bitsets != nullptr).
struct LabelsView {
  const std::int64_t* class_ids = nullptr;
  const std::uint64_t* bitsets = nullptr;
  std::size_t words = 0;
  std::size_t n = 0;
};

// What to compute. Every part shares the same ranking pass.
struct EvalOptions {
  TieOrder ties = TieOrder::Index;
  Normalization normalize = Normalization::Retrieved;
  EmptyPolicy empty = EmptyPolicy::Zero;
  bool want_map = true;
  std::size_t topk = 0;            // AP cut-off; 0 means the whole database; larger than N means N
  std::vector<std::int64_t> ks;    // rank cut-offs for precision/recall, each in [1, N]
  bool want_radius = false;        // precision/recall/mAP within every radius 0..nbits
};

struct EvalResult {
  // mAP part.
  double map = 0.0;                       // mean over the queries kept (NaN when none is)
  std::int64_t map_queries = 0;           // queries in that mean
  std::vector<double> average_precision;  // per query; NaN for a skipped query
  // Rank cut-off part (aligned with options.ks), means over the queries whose database holds at
  // least one relevant item under EmptyPolicy::Skip, over all queries under Zero.
  std::vector<double> precision_at_k, recall_at_k;
  std::int64_t rank_queries = 0;
  // Radius part (index r = Hamming radius, 0..nbits), means as for the rank part. A query with
  // nothing within the radius scores precision 0 and mAP 0 there (thulab/DeepHash convention).
  std::vector<double> radius_precision, radius_recall, radius_map;
  std::int64_t radius_queries = 0;
  // Relevant items in the database, per query.
  std::vector<std::int64_t> relevant_total;
};

// Validates the views (InvalidArgument naming the argument) and computes what `options` asks for.
// Thread-safe; runs on the core's thread pool.
EvalResult evaluate_retrieval(const CodesView& query_codes, const CodesView& db_codes,
                              const LabelsView& query_labels, const LabelsView& db_labels,
                              const EvalOptions& options);

}  // namespace deephash::metrics
