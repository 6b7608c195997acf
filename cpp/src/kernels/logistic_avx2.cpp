// AVX2 + FMA logistic pass (x86-64): compiled with -mavx2 -mfma on this file alone. See deephash/logistic.hpp.
// The AVX2 row of the dispatcher requires FMA, so this kernel runs wherever that row is chosen.
//
// Per element t: a = |t|, e = e^-a (range reduction to r in [-ln2/2, ln2/2], a degree-7
// polynomial, scaling by 2^n through the exponent bits), d = 1 + e, r = 1 / d;
// sigmoid(t) = r where t >= 0, e * r elsewhere; softplus(t) = max(t, 0) + log(d).
// The logs are not taken one by one: each lane multiplies its factors d (in [1, 2]) into a
// running product, and after every group of 32 vectors the product's exponent field is moved into
// a double counter and the product rescaled to [1, 2). One log per lane at the end finishes it.
// Each product step rounds once (2^-24 relative), which is what a float log per element would
// cost too. Sums of max(t, 0) go through a float group sum into double, the same way.
#include <immintrin.h>

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "bank_kernels.hpp"

namespace deephash::kernels {

namespace {

// e^x for x in [-87, 0] (2^n stays a normal float); NaN propagates.
//
// The dependency chain from load to store is long (exp, then a division), and out-of-order
// execution overlaps only a few vectors of it: what bounds the loop is that chain's latency, not
// the number of instructions. Hence FMA throughout and Estrin's scheme for the polynomial
// (three FMA levels instead of seven dependent steps).
inline __m256 exp_nonpositive(__m256 x) noexcept {
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
  // ln 2 split in two so that n * ln2_hi is exact for |n| <= 126 (ln2_hi has 9 significant bits).
  const __m256 ln2_hi = _mm256_set1_ps(0.693359375f);
  const __m256 ln2_lo = _mm256_set1_ps(-2.12194440e-4f);
  // Round x log2(e) to the nearest integer n by adding 1.5 * 2^23 + 127: the float's low mantissa
  // bits then hold n + 127, the biased exponent of 2^n (no round or convert instruction).
  const __m256 shift = _mm256_set1_ps(12582912.0f + 127.0f);
  const __m256 shifted = _mm256_fmadd_ps(x, log2e, shift);
  const __m256 n = _mm256_sub_ps(shifted, shift);
  __m256 r = _mm256_fnmadd_ps(n, ln2_hi, x);
  r = _mm256_fnmadd_ps(n, ln2_lo, r);
  // e^r = sum_k c_k r^k, k <= 7: c_0 = c_1 = 1 and the minimax c_2..c_7 of the Cephes expf.
  const __m256 r2 = _mm256_mul_ps(r, r);
  const __m256 r4 = _mm256_mul_ps(r2, r2);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 c01 = _mm256_add_ps(one, r);
  const __m256 c23 = _mm256_fmadd_ps(_mm256_set1_ps(1.6666665459e-1f), r, _mm256_set1_ps(5.0000001201e-1f));
  const __m256 c45 = _mm256_fmadd_ps(_mm256_set1_ps(8.3334519073e-3f), r, _mm256_set1_ps(4.1665795894e-2f));
  const __m256 c67 = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
  const __m256 low = _mm256_fmadd_ps(c23, r2, c01);
  const __m256 high = _mm256_fmadd_ps(c67, r2, c45);
  const __m256 p = _mm256_fmadd_ps(high, r4, low);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(shifted), 23)));
}

// Adds the 8 float lanes of v to acc[0..3] and acc[4..7] as doubles.
inline void add_to_double(__m256 v, __m256d& lo, __m256d& hi) noexcept {
  lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

inline double horizontal_sum(__m256d v) noexcept {
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, v);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

}  // namespace

double sigmoid_softplus_avx2(float* x, std::size_t n) noexcept {
  constexpr std::size_t kGroup = 32;  // vectors per group: a product of 32 factors is <= 2^33
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 max_arg = _mm256_set1_ps(87.0f);
  const __m256 zero = _mm256_setzero_ps();
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256i mantissa_mask = _mm256_set1_epi32(0x007fffff);
  const __m256i exponent_one = _mm256_set1_epi32(0x3f800000);

  __m256 product = one;  // per lane: product of the factors d since the last rescale, times [1, 2)
  __m256d exponents_lo = _mm256_setzero_pd(), exponents_hi = _mm256_setzero_pd();
  __m256d relu_lo = _mm256_setzero_pd(), relu_hi = _mm256_setzero_pd();

  const std::size_t vectors = n / 8;
  std::size_t v = 0;
  while (v < vectors) {
    const std::size_t end = vectors - v < kGroup ? vectors : v + kGroup;
    __m256 relu = zero;
    for (; v < end; ++v) {
      const __m256 t = _mm256_loadu_ps(x + 8 * v);
      // min(87, |t|) with |t| second: a NaN |t| is passed through, not replaced by 87.
      const __m256 a = _mm256_min_ps(max_arg, _mm256_and_ps(t, abs_mask));
      const __m256 e = exp_nonpositive(_mm256_sub_ps(zero, a));
      const __m256 d = _mm256_add_ps(one, e);
      const __m256 r = _mm256_div_ps(one, d);
      const __m256 nonnegative = _mm256_cmp_ps(t, zero, _CMP_GE_OQ);
      _mm256_storeu_ps(x + 8 * v, _mm256_blendv_ps(_mm256_mul_ps(e, r), r, nonnegative));
      relu = _mm256_add_ps(relu, _mm256_max_ps(zero, t));  // t second: NaN passes through
      product = _mm256_mul_ps(product, d);
    }
    add_to_double(relu, relu_lo, relu_hi);
    // product = 2^k * m with m in [1, 2): count k, keep m.
    const __m256i bits = _mm256_castps_si256(product);
    const __m256i k = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
    exponents_lo = _mm256_add_pd(exponents_lo, _mm256_cvtepi32_pd(_mm256_castsi256_si128(k)));
    exponents_hi = _mm256_add_pd(exponents_hi, _mm256_cvtepi32_pd(_mm256_extracti128_si256(k, 1)));
    product = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(bits, mantissa_mask), exponent_one));
  }

  alignas(32) float mantissas[8];
  _mm256_store_ps(mantissas, product);
  double log_terms = 0.0;
  for (float m : mantissas) log_terms += std::log(static_cast<double>(m));
  log_terms += horizontal_sum(_mm256_add_pd(exponents_lo, exponents_hi)) * 0.69314718055994530942;
  double total = horizontal_sum(_mm256_add_pd(relu_lo, relu_hi)) + log_terms;
  // A NaN product loses its NaN in the rescale above; the relu sum carries it instead.
  if (n % 8) total += sigmoid_softplus_scalar(x + 8 * vectors, n % 8);
  return total;
}

}  // namespace deephash::kernels
