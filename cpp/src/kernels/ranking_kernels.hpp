// The per-level builds of the metrics' ranking passes and byte distances (RankChunkFn,
// RankBytesFn, RankPrepareFn, RankDistancesFn in deephash/simd.hpp), entered in each level's kernel
// table. Internal to the kernels.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "deephash/simd.hpp"

namespace deephash::kernels {

#if defined(__x86_64__) || defined(_M_X64)
std::size_t rank_chunk_avx512(const dist_t* dist, std::size_t len, std::size_t max_distance,
                              const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                              std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept;
std::size_t rank_chunk_avx2(const dist_t* dist, std::size_t len, std::size_t max_distance,
                            const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                            std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept;
void rank_prepare_avx2(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::uint8_t* out) noexcept;
void rank_distances_avx2(const std::uint8_t* prepared, std::size_t n, std::size_t code_size, const std::uint8_t* query,
                         std::uint8_t* out) noexcept;
std::size_t rank_bytes_avx512(const std::uint8_t* dist, std::size_t len, std::size_t max_distance,
                              const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                              std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept;
void rank_prepare_avx512(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::uint8_t* out) noexcept;
void rank_distances_avx512(const std::uint8_t* prepared, std::size_t n, std::size_t code_size,
                           const std::uint8_t* query, std::uint8_t* out) noexcept;
std::size_t rank_bytes_avx2(const std::uint8_t* dist, std::size_t len, std::size_t max_distance,
                            const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                            std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept;
#endif

// The scalar halves of those passes (and the word loads of the layouts that hold codes word by
// word, which the AVX2 batch kernels use too), shared by them. Internal linkage (an anonymous
// namespace): each kernel file compiles its own copy with its own instruction set, and no copy
// built for one can stand in for another at link time.
namespace {

// Word v (8 bytes, zero past the code's end) of a code of cs bytes; `room`: the bytes readable
// from the code's start (its own and those of the codes after it).
inline std::uint64_t code_word(const std::uint8_t* code, std::size_t v, std::size_t cs, std::size_t room) noexcept {
  const std::size_t from = 8 * v, bytes = std::min<std::size_t>(8, cs - from);
  std::uint64_t x = 0;
  if (from + 8 <= room) {
    std::memcpy(&x, code + from, 8);
    if (bytes < 8) x &= (std::uint64_t{1} << (8 * bytes)) - 1;
  } else {
    std::memcpy(&x, code + from, bytes);
  }
  return x;
}

// The count of items at distance d seen so far: the sum of the four histograms.
inline std::uint64_t seen_count(const std::uint32_t* seen, std::uint32_t d) noexcept {
  return (std::uint64_t{seen[d]} + seen[kRankBins + d]) +
         (std::uint64_t{seen[2 * kRankBins + d]} + seen[3 * kRankBins + d]);
}

// Appends the record of each relevant item of a block (the set bits of `relevant`, in order),
// reading the histograms as they stand before the block: d8 holds the block's distances and
// same_before(p, d) counts the block's items before position p at distance d.
template <typename Mask, typename SameBefore>
inline std::size_t record_block(Mask relevant, const std::uint8_t* d8, const std::uint32_t* seen,
                                SameBefore same_before, std::uint64_t* records) noexcept {
  std::size_t kept = 0;
  for (Mask m = relevant; m != 0; m &= m - 1) {
    const auto p = static_cast<unsigned>(__builtin_ctzll(m));
    const std::uint32_t d = d8[p];
    records[kept++] = std::uint64_t{d} << 32 | (seen_count(seen, d) + same_before(p, d));
  }
  return kept;
}

// Adds the n items of a block to the histograms. Item t counts in histogram t % 4, so that items
// of one distance close together do not all wait on one counter.
inline void count_block(const std::uint8_t* d8, std::size_t n, std::uint32_t* seen) noexcept {
  std::size_t t = 0;
  for (; t + 4 <= n; t += 4) {
    ++seen[d8[t]];
    ++seen[kRankBins + d8[t + 1]];
    ++seen[2 * kRankBins + d8[t + 2]];
    ++seen[3 * kRankBins + d8[t + 3]];
  }
  for (; t < n; ++t) ++seen[d8[t]];
}

// count_block for a block of n items, n a multiple of 8, reading the distances 8 at a time: one
// load and shifts in place of eight byte loads (the loop is bound by loads and stores, not by
// arithmetic).
inline void count_block_words(const std::uint8_t* d8, std::size_t n, std::uint32_t* seen) noexcept {
  for (std::size_t t = 0; t < n; t += 8) {
    std::uint64_t w;
    std::memcpy(&w, d8 + t, sizeof w);
    ++seen[w & 0xff];
    ++seen[kRankBins + (w >> 8 & 0xff)];
    ++seen[2 * kRankBins + (w >> 16 & 0xff)];
    ++seen[3 * kRankBins + (w >> 24 & 0xff)];
    ++seen[w >> 32 & 0xff];
    ++seen[kRankBins + (w >> 40 & 0xff)];
    ++seen[2 * kRankBins + (w >> 48 & 0xff)];
    ++seen[3 * kRankBins + (w >> 56)];
  }
}

}  // namespace

}  // namespace deephash::kernels
