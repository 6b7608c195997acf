// Scalar logistic pass: the reference, with libm exp and log1p per element.
#include <cmath>

#include "bank_kernels.hpp"

namespace deephash::kernels {

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

}  // namespace deephash::kernels
