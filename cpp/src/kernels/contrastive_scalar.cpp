// Baseline build of the contrastive block pass (the loop in contrastive_loop.inl, compiled for the
// baseline instruction set).
#include <algorithm>
#include <cstddef>

#include "bank_kernels.hpp"

namespace deephash::kernels {
namespace {
#include "contrastive_loop.inl"
}  // namespace

double contrastive_pass_scalar(float* r, const float* s, std::size_t rows, std::size_t cols, const float* u_norm,
                               const float* v_norm, float margin, float* row_weight) noexcept {
  return contrastive_loop(r, s, rows, cols, u_norm, v_norm, margin, row_weight);
}

}  // namespace deephash::kernels
