// Compiled with -mpopcnt: the arithmetic ceiling of count_scalar's loop.
#include <chrono>

#include "bound.hpp"

namespace bound {

// Eight independent copies per iteration of the loop's step for one 64-bit word (XOR with the
// query's word, POPCNT, ADD into the code's distance), in registers.
double ceiling_scalar_steps_per_s(double seconds) {
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t steps = 0, x = 0x0123456789abcdefULL, q = 0xfedcba9876543210ULL;
  std::uint64_t a[8] = {};
  double elapsed = 0.0;
  while (elapsed < seconds) {
    constexpr long kIterations = 1 << 20;
    for (long i = 0; i < kIterations; ++i) {
      std::uint64_t t[8];
      __asm__ volatile(
          "mov %[x], %[t0]\n\t mov %[x], %[t1]\n\t mov %[x], %[t2]\n\t mov %[x], %[t3]\n\t"
          "xor %[q], %[t0]\n\t xor %[q], %[t1]\n\t xor %[q], %[t2]\n\t xor %[q], %[t3]\n\t"
          "popcnt %[t0], %[t0]\n\t popcnt %[t1], %[t1]\n\t popcnt %[t2], %[t2]\n\t popcnt %[t3], %[t3]\n\t"
          "add %[t0], %[a0]\n\t add %[t1], %[a1]\n\t add %[t2], %[a2]\n\t add %[t3], %[a3]\n\t"
          "mov %[x], %[t0]\n\t mov %[x], %[t1]\n\t mov %[x], %[t2]\n\t mov %[x], %[t3]\n\t"
          "xor %[q], %[t0]\n\t xor %[q], %[t1]\n\t xor %[q], %[t2]\n\t xor %[q], %[t3]\n\t"
          "popcnt %[t0], %[t0]\n\t popcnt %[t1], %[t1]\n\t popcnt %[t2], %[t2]\n\t popcnt %[t3], %[t3]\n\t"
          "add %[t0], %[a4]\n\t add %[t1], %[a5]\n\t add %[t2], %[a6]\n\t add %[t3], %[a7]\n\t"
          : [t0] "=&r"(t[0]), [t1] "=&r"(t[1]), [t2] "=&r"(t[2]), [t3] "=&r"(t[3]), [a0] "+r"(a[0]),
            [a1] "+r"(a[1]), [a2] "+r"(a[2]), [a3] "+r"(a[3]), [a4] "+r"(a[4]), [a5] "+r"(a[5]),
            [a6] "+r"(a[6]), [a7] "+r"(a[7])
          : [x] "r"(x), [q] "r"(q)
          : "cc");
    }
    steps += 8 * kIterations;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  __asm__ volatile("" ::"r"(a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7]));
  return static_cast<double>(steps) / elapsed;
}

}  // namespace bound
