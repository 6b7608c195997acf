// Compiled with -mavx512f -mavx512bw -mavx512vpopcntdq: VPXORD (embedded broadcast of a query
// word), VPOPCNTD, VPADDD per word and 16 codes; VPCMPD and a masked VPADDD (a per-lane tally) per 16 codes.
#include <immintrin.h>

#include <cstring>
#include <utility>

#include "bound.hpp"

namespace bound {

namespace {
template <std::size_t W>
std::uint64_t count_groups(const std::uint8_t* query, const std::uint8_t* groups, std::size_t begin, std::size_t end,
                           int threshold) {
  std::uint32_t qw[W];
  std::memcpy(qw, query, 4 * W);
  const __m512i limit = _mm512_set1_epi32(threshold), one = _mm512_set1_epi32(1);
  __m512i tally = _mm512_setzero_si512();  // per lane, the codes within the threshold
  std::uint64_t hits = 0;
  for (std::size_t i = begin; i < end; i += 16) {  // begin is a multiple of 16
    const std::uint8_t* g = groups + (i / 16) * 64 * W;
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 32
    for (std::size_t w = 0; w < W; ++w) {
      __m512i qv;
      if constexpr (W <= 16) {
        qv = _mm512_set1_epi32(static_cast<int>(qw[w]));
      } else {
        __asm__("vpbroadcastd %1, %0" : "=v"(qv) : "m"(qw[w]));
      }
      acc = _mm512_add_epi32(acc, _mm512_popcnt_epi32(_mm512_xor_si512(_mm512_loadu_si512(g + 64 * w), qv)));
    }
    __mmask16 k = _mm512_cmple_epi32_mask(acc, limit);
    if (end - i < 16) {  // the padding of the last group
      k &= static_cast<__mmask16>((1u << (end - i)) - 1);
      hits += static_cast<unsigned>(__builtin_popcount(k));
      continue;
    }
    tally = _mm512_mask_add_epi32(tally, k, tally, one);
  }
  return hits + static_cast<std::uint64_t>(_mm512_reduce_add_epi32(tally));
}

template <std::size_t... W>
std::uint64_t dispatch(std::index_sequence<W...>, std::size_t words, const std::uint8_t* query,
                       const std::uint8_t* groups, std::size_t begin, std::size_t end, int threshold) {
  using Fn = std::uint64_t (*)(const std::uint8_t*, const std::uint8_t*, std::size_t, std::size_t, int);
  static constexpr Fn table[] = {&count_groups<W + 1>...};
  return table[words - 1](query, groups, begin, end, threshold);
}
}  // namespace

std::uint64_t count_avx512(const std::uint8_t* query, const Layout& codes, std::size_t begin, std::size_t end,
                           int threshold) {
  return dispatch(std::make_index_sequence<32>{}, codes.row / 4, query, codes.bytes.data(), begin, end, threshold);
}

}  // namespace bound
