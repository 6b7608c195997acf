// The ranking pass of the metrics (ties by index) for AVX-512BW: see RankChunkFn in simd.hpp.
//
// The portable pass (metrics/query_ranking.cpp) writes a record for every item, branch-free, and
// keeps a running count per distance that each item reads and writes back. Here only the
// histogram runs per item: a relevant item's count of the earlier items at its distance is the
// histogram as it stood before its block of 64 items plus a byte compare over the block, so the
// irrelevant items (most of them) only add to their bin. Measured in docs/benchmarks.md
// ("Metrics").
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "ranking_kernels.hpp"

namespace deephash::kernels {

// Below this many distances the block's histogram is counted by compares (see the pass).
static constexpr std::size_t kFewDistances = 32;

std::size_t rank_chunk_avx512(const dist_t* dist, std::size_t len, std::size_t max_distance,
                              const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                              std::uint8_t key, std::uint32_t* seen,
                              std::uint64_t* records) noexcept {
  std::size_t kept = 0;
  alignas(64) std::uint8_t d8[64];
  const __m512i label_v = _mm512_set1_epi32(label);
  const __m512i key_v = _mm512_set1_epi8(static_cast<char>(key));
  for (std::size_t b = 0; b < len; b += 64) {
    const std::size_t n = len - b < 64 ? len - b : 64;
    const std::uint64_t valid = n == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
    // The block's distances as bytes (lanes past the end hold 0 and are never read) and its
    // relevance mask.
    std::uint64_t rel = 0;
    __m128i quarter[4];
    for (std::size_t q = 0; q < 4; ++q) {
      const auto m = static_cast<__mmask16>(valid >> (16 * q));
      quarter[q] = _mm512_cvtepi32_epi8(_mm512_maskz_loadu_epi32(m, dist + b + 16 * q));
      if (class_ids != nullptr) {
        const __m512i ids = _mm512_maskz_loadu_epi32(m, class_ids + b + 16 * q);
        rel |= std::uint64_t{_mm512_mask_cmpeq_epi32_mask(m, ids, label_v)} << (16 * q);
      }
    }
    if (class_ids == nullptr)
      rel = _mm512_mask_cmpeq_epi8_mask(valid, _mm512_maskz_loadu_epi8(valid, keys + b), key_v);
    // Put together in registers (a load of four just-written pieces would wait for them to reach
    // the cache); d8 is the copy the scalar loops read.
    const __m512i block = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_inserti128_si256(_mm256_castsi128_si256(quarter[0]), quarter[1], 1)),
        _mm256_inserti128_si256(_mm256_castsi128_si256(quarter[2]), quarter[3], 1), 1);
    _mm512_store_si512(d8, block);
    // The records first: they read the histograms as they stood before this block.
    kept += record_block(rel, d8, seen,
                         [&](unsigned p, std::uint32_t d) {
                           const std::uint64_t same =
                               _mm512_cmpeq_epi8_mask(block, _mm512_set1_epi8(static_cast<char>(d)));
                           return static_cast<std::uint64_t>(_mm_popcnt_u64(same & ((std::uint64_t{1} << p) - 1)));
                         },
                         records + kept);
    if (max_distance < kFewDistances) {
      // Few distances: one compare per distance over the block.
      for (std::uint32_t v = 0; v <= max_distance; ++v)
        seen[v] += static_cast<std::uint32_t>(
            _mm_popcnt_u64(_mm512_mask_cmpeq_epi8_mask(valid, block, _mm512_set1_epi8(static_cast<char>(v)))));
    } else {
      count_block(d8, n, seen);
    }
  }
  return kept;
}

}  // namespace deephash::kernels
