// Exact linear-scan k-NN and range search over a block of codes: the engine of FlatIndex and the
// fallback of the multi-index hash when probing would cost more than a scan.
//
// Many queries: queries are split across threads, and each thread walks the database in
// cache-sized blocks, running its whole group of queries over a block before the next one.
// Few queries (fewer than threads): the database is split across threads, each keeps a top-k per
// query, and the partial results are merged.
#pragma once

#include <cstddef>
#include <cstdint>

#include "deephash/common.hpp"
#include "deephash/index.hpp"

namespace deephash {

struct ScanView {
  const std::uint8_t* codes;
  const idx_t* ids;  // nullptr: item i has id i
  std::size_t n;
  std::size_t code_size;
  int nbits;
  bool ids_increasing;
  const std::uint8_t* skip = nullptr;  // optional: items with skip[i] != 0 are ignored (tombstones)

  idx_t id_at(std::size_t i) const noexcept { return ids ? ids[i] : static_cast<idx_t>(i); }
};

void knn_scan(const ScanView& db, const std::uint8_t* queries, std::size_t nq, std::size_t k,
              dist_t* distances, idx_t* ids);

RangeResult range_scan(const ScanView& db, const std::uint8_t* queries, std::size_t nq, int radius);

}  // namespace deephash
