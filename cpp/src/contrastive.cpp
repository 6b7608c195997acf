// The contrastive block pass: the active level's kernel (kernels/contrastive_*.cpp, entered in the
// kernel tables).
#include "deephash/contrastive.hpp"

namespace deephash {

SimdLevel contrastive_level() noexcept { return kernels::active().bank_level; }

double contrastive_pass(float* r, const float* s, std::size_t rows, std::size_t cols, const float* u_norm,
                        const float* v_norm, float margin, float* row_weight) noexcept {
  return kernels::active().contrastive_pass(r, s, rows, cols, u_norm, v_norm, margin, row_weight);
}

}  // namespace deephash
