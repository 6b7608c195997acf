// AVX2 build of the contrastive block pass (x86-64): compiled with -mavx2 on this file alone.
#include <algorithm>
#include <cstddef>

#include "bank_kernels.hpp"

namespace deephash::kernels {
namespace {
#include "contrastive_loop.inl"
}  // namespace

double contrastive_pass_avx2(float* r, const float* s, std::size_t rows, std::size_t cols,
                             const float* u_norm, const float* v_norm, float margin,
                             float* row_weight) noexcept {
  return contrastive_loop(r, s, rows, cols, u_norm, v_norm, margin, row_weight);
}

}  // namespace deephash::kernels
