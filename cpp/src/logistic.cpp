// The logistic pass: the active level's kernel (kernels/logistic_*.cpp, entered in the kernel tables).
#include "deephash/logistic.hpp"

namespace deephash {

SimdLevel logistic_level() noexcept { return kernels::active().bank_level; }

double sigmoid_softplus_inplace(float* x, std::size_t n) noexcept { return kernels::active().sigmoid_softplus(x, n); }

}  // namespace deephash
