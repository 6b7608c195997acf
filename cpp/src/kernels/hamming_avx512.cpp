// AVX-512 Hamming kernels with VPOPCNTDQ (x86-64: Ice Lake, Zen 4/5, Sapphire Rapids, ...).
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mpopcnt on this file alone and
// selected only where CPUID reports AVX512F + AVX512VPOPCNTDQ and the OS saves ZMM state.
//
// Instructions relied on: VPXORQ, VPOPCNTQ, VPCMPUQ (to a mask register), VPERMT2Q, VPADDQ,
// masked VMOVDQU8 loads (code tails of any length), VPREDUCE-style shuffles (_mm512_reduce_add_epi64).
//
// 8-byte codes: 8 codes per register; 16-byte codes: 4 per register, pairs summed; other sizes:
// one code at a time in 64-byte chunks with a masked load for the tail.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "deephash/simd.hpp"

namespace deephash::kernels {
namespace avx512_impl {
#include "hamming_portable.inl"

static inline __m512i loadu(const std::uint8_t* p) noexcept { return _mm512_loadu_si512(p); }

struct Oct8 {  // eight 8-byte codes -> 8 counts
  static constexpr std::size_t kCodeSize = 8;
  __m512i q;
  explicit Oct8(const std::uint8_t* query) noexcept : q(_mm512_set1_epi64(static_cast<long long>(load_u64(query)))) {}
  __m512i operator()(const std::uint8_t* c) const noexcept {
    return _mm512_popcnt_epi64(_mm512_xor_si512(loadu(c), q));
  }
};

struct Oct16 {  // eight 16-byte codes (two registers) -> 8 counts
  static constexpr std::size_t kCodeSize = 16;
  __m512i q;
  explicit Oct16(const std::uint8_t* query) noexcept
      : q(_mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(query)))) {}
  __m512i operator()(const std::uint8_t* c) const noexcept {
    const __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(loadu(c), q));
    const __m512i b = _mm512_popcnt_epi64(_mm512_xor_si512(loadu(c + 64), q));
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    return _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b));
  }
};

// One code of any size: 64-byte chunks, the last one loaded under a byte mask.
struct AnyQuery {
  const std::uint8_t* q;
  std::size_t code_size, full;
  __mmask64 tail_mask;
  AnyQuery(const std::uint8_t* query, std::size_t cs) noexcept
      : q(query), code_size(cs), full(cs / 64),
        tail_mask(cs % 64 ? (~0ULL >> (64 - cs % 64)) : 0) {}
  dist_t operator()(const std::uint8_t* c) const noexcept {
    __m512i acc = _mm512_setzero_si512();
    for (std::size_t v = 0; v < full; ++v)
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(loadu(c + 64 * v), loadu(q + 64 * v))));
    if (tail_mask) {
      const __m512i x = _mm512_maskz_loadu_epi8(tail_mask, c + 64 * full);
      const __m512i y = _mm512_maskz_loadu_epi8(tail_mask, q + 64 * full);
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
    }
    return static_cast<dist_t>(_mm512_reduce_add_epi64(acc));
  }
};

template <class Oct, class Tail>
static void distances_octs(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                           dist_t* out) noexcept {
  constexpr std::size_t cs = Oct::kCodeSize;
  const Oct oct(query);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi64_epi32(oct(codes + i * cs)));
  portable_distances_with(Tail(query), codes + i * cs, n - i, cs, out + i);
}

template <class Oct, class Tail>
static std::size_t filter_octs(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                               dist_t max_distance, std::uint32_t* positions, dist_t* distances) noexcept {
  constexpr std::size_t cs = Oct::kCodeSize;
  const Oct oct(query);
  const __m512i limit = _mm512_set1_epi64(static_cast<long long>(max_distance));
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  std::size_t m = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i d0 = oct(codes + i * cs);
    const __m512i d1 = oct(codes + (i + 8) * cs);
    const __mmask8 k0 = _mm512_cmple_epi64_mask(d0, limit);
    const __mmask8 k1 = _mm512_cmple_epi64_mask(d1, limit);
    const __mmask16 k = static_cast<__mmask16>(k0 | (static_cast<unsigned>(k1) << 8));
    if (k == 0) continue;
    const __m512i d = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(d0)), _mm512_cvtepi64_epi32(d1), 1);
    const __m512i pos = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(i)));
    _mm512_mask_compressstoreu_epi32(positions + m, k, pos);
    _mm512_mask_compressstoreu_epi32(distances + m, k, d);
    m += static_cast<std::size_t>(__builtin_popcount(k));
  }
  const std::size_t rest = portable_filter_with(Tail(query), codes + i * cs, n - i, cs, max_distance,
                                                positions + m, distances + m);
  for (std::size_t j = m; j < m + rest; ++j) positions[j] += static_cast<std::uint32_t>(i);
  return m + rest;
}

static void distances(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                      std::size_t code_size, dist_t* out) noexcept {
  switch (code_size) {
    case 8: return distances_octs<Oct8, FixedQuery<1>>(query, codes, n, out);
    case 16: return distances_octs<Oct16, FixedQuery<2>>(query, codes, n, out);
    default:
      if (code_size < 32) return portable_distances(query, codes, n, code_size, out);
      return portable_distances_with(AnyQuery(query, code_size), codes, n, code_size, out);
  }
}

static std::size_t filter(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                          std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                          dist_t* dists) noexcept {
  switch (code_size) {
    case 8: return filter_octs<Oct8, FixedQuery<1>>(query, codes, n, max_distance, positions, dists);
    case 16: return filter_octs<Oct16, FixedQuery<2>>(query, codes, n, max_distance, positions, dists);
    default:
      if (code_size < 32) return portable_filter(query, codes, n, code_size, max_distance, positions, dists);
      return portable_filter_with(AnyQuery(query, code_size), codes, n, code_size, max_distance, positions, dists);
  }
}

}  // namespace avx512_impl

const KernelTable& avx512_table() noexcept {
  static const KernelTable table{SimdLevel::AVX512, &avx512_impl::distances, &avx512_impl::filter, &avx512_impl::portable_gather};
  return table;
}

}  // namespace deephash::kernels
