// Internal to the metrics: the per-query ranking pass and the tie-order computations on top of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "deephash/metrics.hpp"
#include "deephash/simd.hpp"

namespace deephash::metrics::detail {

// Queries are ranked in groups of up to kQueryGroup, chunk by chunk of the database: each
// chunk's codes and labels are read once per group while its distances sit in L1, and each
// query's per-distance counters form an independent dependency chain.
inline constexpr std::size_t kQueryGroup = 4;
inline constexpr std::size_t kDbChunk = 1024;

// A relevant item seen by the histogram pass (ties = Index), packed in one word: the high half
// is its distance, the low half how many items at that distance come before it in index order.
// Records come in index order.
using RelevantItem = std::uint64_t;

// One query ranked against the whole database: the per-distance histogram and, for ties = Index,
// the records of its relevant items.
struct QueryRanking {
  std::vector<std::int64_t> hist;      // bin 2d + rel: items at distance d, by relevance
  std::vector<std::uint32_t> seen_at;  // recording pass: items at distance d seen so far
  std::vector<std::uint32_t> seen_parts;  // the histograms of an instruction set's recording pass
  std::vector<std::int64_t> count;     // items at distance d, d in [0, nbits]
  std::vector<std::int64_t> rel_count; // relevant items at distance d
  std::vector<std::int64_t> start;     // items at distance < d, d in [0, nbits + 1]
  std::vector<std::int64_t> rel_start; // relevant items at distance < d
  std::int64_t relevant_total = 0;
  std::vector<RelevantItem> relevant_items;  // N + 1 slots when recording
  std::size_t relevant_items_count = 0;
  // After finish_from_records: relevant items per distance in each of kRecordParts consecutive
  // parts of the records (part s: records [n * s / P, n * (s + 1) / P)), part-major.
  static constexpr std::size_t kRecordParts = 4;
  std::vector<std::uint32_t> record_parts;

  explicit QueryRanking(std::size_t nbits);

  // count, rel_count, start, rel_start and relevant_total from hist.
  void finish() noexcept;
  // The same after a recording pass: hist from seen_at and the records, then finish().
  void finish_from_records() noexcept;

  // Where rank n (1-based, n in [1, N]) falls: the distance of the tie group holding it and how
  // many items of that group lie within the first n.
  struct Cut {
    std::size_t distance;
    std::int64_t within;
  };
  Cut locate(std::int64_t n) const noexcept;

  std::size_t nbits() const noexcept { return count.size() - 1; }
};

// A level's distances as bytes (kernels::RankPrepareFn and the rest): the database prepared once
// in its layout and the functions that read it. All null where the level has none or the database
// was not prepared.
struct ByteDistances {
  const std::uint8_t* prepared = nullptr;
  kernels::RankDistancesFn distances = nullptr;
  kernels::RankBytesFn rank = nullptr;
};

// Ranks groups of queries against the database; holds the buffers one thread reuses.
class GroupRanker {
 public:
  // db_classes_i32 / db_classes_u8: the database class ids narrowed to int32 / to bytes when they
  // all fit, else null. bytes: the recording pass over byte distances, where there is one.
  GroupRanker(std::size_t nbits, const std::int32_t* db_classes_i32, const std::uint8_t* db_classes_u8,
              ByteDistances bytes);

  // Ranks queries q0 .. q0 + m - 1 (m <= kQueryGroup) into (*this)[0 .. m - 1]; records the
  // relevant items when record_relevant.
  void rank(const CodesView& query_codes, const CodesView& db_codes, const LabelsView& query_labels,
            const LabelsView& db_labels, std::size_t q0, std::size_t m, bool record_relevant);

  QueryRanking& operator[](std::size_t j) noexcept { return rankings_[j]; }

 private:
  std::vector<QueryRanking> rankings_;
  std::vector<dist_t> distance_;        // kQueryGroup x kDbChunk
  std::vector<std::uint8_t> distance8_; // the same as bytes, on the byte path
  std::vector<std::uint8_t> relevant_;  // kQueryGroup x kDbChunk, multi-hot labels only
  std::vector<std::vector<std::size_t>> query_words_;  // non-zero words of each multi-hot query
  const std::int32_t* db_classes_i32_;
  const std::uint8_t* db_classes_u8_;
  ByteDistances bytes_;
};

// Results of the index-order pass (ties = Index).
struct IndexOrderSums {
  std::vector<std::int64_t> relevant_rank;  // 1-based ranks of the relevant items, ascending
  std::vector<double> group_sum;  // per distance: sum of precision at each relevant item's rank
  double cut_sum = 0.0;           // the same over the cut group's items within the AP cut-off
  std::int64_t cut_relevant = 0;  // relevant items of the cut group within the AP cut-off
  std::vector<std::int64_t> rank_relevant;  // relevant items within each rank cut-off
};

// Places every relevant item at its rank under the (distance, index) order, from the records of
// the histogram pass, then sums precision over those with distance <= max_distance. `ap_cut` is the AP cut-off's location (a distance above
// max_distance: none); `rank_cuts` the rank cut-offs, each at a distance <= max_distance.
void index_order_pass(const QueryRanking& r, std::size_t max_distance, QueryRanking::Cut ap_cut,
                      const std::vector<QueryRanking::Cut>& rank_cuts, IndexOrderSums& out);

// H[n] = 1 + 1/2 + ... + 1/n for n in [0, n_max], in extended precision.
std::vector<long double> harmonic_table(std::size_t n_max);

// Expected sum of precision-at-rank over the relevant items among the first m positions of a tie
// group of g items holding r relevant ones, in uniformly random order, with s items (of which
// rel_before relevant) ranked before the group.
long double expected_group_prefix_sum(std::int64_t s, std::int64_t rel_before, std::int64_t g,
                                      std::int64_t r, std::int64_t m,
                                      const std::vector<long double>& harmonic) noexcept;

// Expected AP@k normalised by the relevant items retrieved (0 for an order that retrieves none),
// where the cut-off cuts through a tie group. sum_before: the (expected) precision sum over the
// groups before it. Sets `defined` to whether any order retrieves a relevant item.
long double expected_ap_retrieved(const QueryRanking& r, QueryRanking::Cut cut, long double sum_before,
                                  const std::vector<long double>& harmonic, bool& defined) noexcept;

}  // namespace deephash::metrics::detail
