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
  const idx_t* ids;  // nullptr (and ids32 nullptr): item i has id i
  std::size_t n;
  std::size_t code_size;
  int nbits;
  bool ids_increasing;
  const std::uint8_t* skip = nullptr;  // optional: items with skip[i] != 0 are ignored (tombstones)
  const std::uint32_t* ids32 = nullptr;  // the ids, where they are stored in 4 bytes each

  idx_t id_at(std::size_t i) const noexcept {
    return ids ? ids[i] : ids32 ? static_cast<idx_t>(ids32[i]) : static_cast<idx_t>(i);
  }
};

void knn_scan(const ScanView& db, const std::uint8_t* queries, std::size_t nq, std::size_t k,
              dist_t* distances, idx_t* ids);

RangeResult range_scan(const ScanView& db, const std::uint8_t* queries, std::size_t nq, int radius);

namespace detail {

// A query's best known bound, shared by the collectors of the slices of the database that one
// query is split into (few queries, several threads): a k-th distance packed with the slice whose
// collector holds those k codes (kNoSlice, after every slice: no such claim, only a bound). With
// ids growing with position, a slice after that one can use the strict bound (distance - 1): each
// of its codes at that distance has a larger id than all k, so it loses the tie to them; a slice
// before it cannot (its codes win that tie). Packed as distance << 32 | slice, a smaller value is
// a bound at least as good for every reader.
inline constexpr std::uint32_t kNoSlice = 0xffffffffu;

inline std::uint64_t pack_bound(dist_t d, std::uint32_t slice) noexcept {
  return std::uint64_t{static_cast<std::uint32_t>(d)} << 32 | slice;
}

inline dist_t bound_for_slice(std::uint64_t packed, std::size_t slice, bool ids_increasing) noexcept {
  const auto d = static_cast<dist_t>(packed >> 32);
  const auto from = static_cast<std::uint32_t>(packed);
  return ids_increasing && from < slice ? d - 1 : d;
}

}  // namespace detail

}  // namespace deephash
