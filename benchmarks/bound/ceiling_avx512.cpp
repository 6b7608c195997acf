// Compiled with -mavx512f -mavx512vpopcntdq: the arithmetic ceiling of count_avx512's loop.
#include <immintrin.h>

#include <chrono>

#include "bound.hpp"

namespace bound {

// Eight independent copies per iteration of the loop's step for one 32-bit word of 16 codes
// (VPXORD with the query's broadcast word, VPOPCNTD, VPADDD into an accumulator), in registers:
// no loads, no compare, so nothing but the three instructions' throughput limits it.
double ceiling_avx512_steps_per_s(double seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t steps = 0;
  double elapsed = 0.0;
  const __m512i code = _mm512_set1_epi32(-1), query = _mm512_set1_epi32(0x5a5a5a5a);  // any bits do
  while (elapsed < seconds) {
    constexpr long kIterations = 1 << 20;
    for (long i = 0; i < kIterations; ++i) {
      __asm__ volatile(
          "vpxord %[c], %[q], %%zmm2\n\t vpxord %[c], %[q], %%zmm3\n\t"
          "vpxord %[c], %[q], %%zmm4\n\t vpxord %[c], %[q], %%zmm5\n\t"
          "vpxord %[c], %[q], %%zmm6\n\t vpxord %[c], %[q], %%zmm7\n\t"
          "vpxord %[c], %[q], %%zmm8\n\t vpxord %[c], %[q], %%zmm9\n\t"
          "vpopcntd %%zmm2, %%zmm2\n\t vpopcntd %%zmm3, %%zmm3\n\t vpopcntd %%zmm4, %%zmm4\n\t"
          "vpopcntd %%zmm5, %%zmm5\n\t vpopcntd %%zmm6, %%zmm6\n\t vpopcntd %%zmm7, %%zmm7\n\t"
          "vpopcntd %%zmm8, %%zmm8\n\t vpopcntd %%zmm9, %%zmm9\n\t"
          "vpaddd %%zmm2, %%zmm10, %%zmm10\n\t vpaddd %%zmm3, %%zmm11, %%zmm11\n\t"
          "vpaddd %%zmm4, %%zmm12, %%zmm12\n\t vpaddd %%zmm5, %%zmm13, %%zmm13\n\t"
          "vpaddd %%zmm6, %%zmm14, %%zmm14\n\t vpaddd %%zmm7, %%zmm15, %%zmm15\n\t"
          "vpaddd %%zmm8, %%zmm16, %%zmm16\n\t vpaddd %%zmm9, %%zmm17, %%zmm17\n\t"
          :
          : [c] "v"(code), [q] "v"(query)
          : "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
                "xmm13", "xmm14", "xmm15", "xmm16", "xmm17");
    }
    steps += 8 * kIterations;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  __asm__ volatile("vzeroupper" ::: "memory");
  return static_cast<double>(steps) / elapsed;
}

}  // namespace bound
