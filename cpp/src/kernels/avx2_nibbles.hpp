// The AVX2 byte popcount by nibble tables; shared by the AVX2 kernel files (each compiled with
// -mavx2 on its own). Internal to the kernels; include only from files built for AVX2.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

namespace deephash::kernels::avx2_impl {

// Byte popcounts split into two offset halves so that VPSADBW does the final add:
// lo = popcount(low nibble) + 4 (4..8) and hi = 4 - popcount(high nibble) (0..4), so
// lo - hi = popcount(byte) >= 0 and sad(lo, hi) = sum of |lo - hi| = the bytes' popcount.
// Sums of several such vectors keep lo >= hi byte by byte, so they can be accumulated first.
struct NibbleCounts {
  __m256i lo, hi;
};

static inline __m256i lo_table() noexcept {  // popcount(nibble) + 4
  return _mm256_setr_epi8(4, 5, 5, 6, 5, 6, 6, 7, 5, 6, 6, 7, 6, 7, 7, 8,
                          4, 5, 5, 6, 5, 6, 6, 7, 5, 6, 6, 7, 6, 7, 7, 8);
}

static inline __m256i hi_table() noexcept {  // 4 - popcount(nibble)
  return _mm256_setr_epi8(4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0,
                          4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0);
}

static inline NibbleCounts nibble_counts(__m256i v) noexcept {
  const __m256i low = _mm256_set1_epi8(0x0f);
  return {_mm256_shuffle_epi8(lo_table(), _mm256_and_si256(v, low)),
          _mm256_shuffle_epi8(hi_table(), _mm256_and_si256(_mm256_srli_epi16(v, 4), low))};
}

// Popcount of each 8-byte lane of v, as 4 uint64 lanes.
static inline __m256i popcount_lanes(__m256i v) noexcept {
  const NibbleCounts c = nibble_counts(v);
  return _mm256_sad_epu8(c.lo, c.hi);
}

static inline __m256i loadu(const std::uint8_t* p) noexcept {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

}  // namespace deephash::kernels::avx2_impl
