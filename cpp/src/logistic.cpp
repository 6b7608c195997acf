// Scalar logistic pass (the reference: libm exp and log1p per element) and the dispatch.
#include "deephash/logistic.hpp"

#include <cmath>

namespace deephash {

namespace kernels {

double sigmoid_softplus_scalar(float* x, std::size_t n) noexcept {
  // softplus(t) = max(t, 0) + log1p(e^-|t|); sigmoid(t) = 1 / (1 + e^-t) from the same e^-|t|.
  double relu = 0.0, log_terms = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double t = x[i];
    const double e = std::exp(-std::fabs(t));
    const double r = 1.0 / (1.0 + e);
    x[i] = static_cast<float>(t >= 0.0 ? r : e * r);
    relu += t > 0.0 ? t : (std::isnan(t) ? t : 0.0);
    log_terms += std::log1p(e);
  }
  return relu + log_terms;
}

}  // namespace kernels

SimdLevel logistic_level() noexcept {
#if defined(__x86_64__) || defined(_M_X64)
  // The kernel needs FMA besides AVX2 (every AVX2 CPU made has it; checked all the same).
  static const bool fma = __builtin_cpu_supports("fma");
  const SimdLevel level = simd_level();
  if (fma && (level == SimdLevel::AVX2 || level == SimdLevel::AVX512)) return SimdLevel::AVX2;
#endif
  return SimdLevel::Scalar;
}

double sigmoid_softplus_inplace(float* x, std::size_t n) noexcept {
#if defined(__x86_64__) || defined(_M_X64)
  if (logistic_level() == SimdLevel::AVX2) return kernels::sigmoid_softplus_avx2(x, n);
#endif
  return kernels::sigmoid_softplus_scalar(x, n);
}

}  // namespace deephash
