// Contrastive block pass: the baseline build of the loop and the dispatch.
#include "deephash/contrastive.hpp"

#include <algorithm>
#include <cstddef>

namespace deephash {

namespace kernels {
namespace {
#include "kernels/contrastive_loop.inl"
}  // namespace

double contrastive_pass_baseline(float* r, const float* s, std::size_t rows, std::size_t cols,
                                 const float* u_norm, const float* v_norm, float margin,
                                 float* row_weight) noexcept {
  return contrastive_loop(r, s, rows, cols, u_norm, v_norm, margin, row_weight);
}
}  // namespace kernels

SimdLevel contrastive_level() noexcept {
#if defined(__x86_64__) || defined(_M_X64)
  const SimdLevel level = simd_level();
  if (level == SimdLevel::AVX2 || level == SimdLevel::AVX512) return SimdLevel::AVX2;
#endif
  return SimdLevel::Scalar;
}

double contrastive_pass(float* r, const float* s, std::size_t rows, std::size_t cols,
                        const float* u_norm, const float* v_norm, float margin,
                        float* row_weight) noexcept {
#if defined(__x86_64__) || defined(_M_X64)
  if (contrastive_level() == SimdLevel::AVX2)
    return kernels::contrastive_pass_avx2(r, s, rows, cols, u_norm, v_norm, margin, row_weight);
#endif
  return kernels::contrastive_pass_baseline(r, s, rows, cols, u_norm, v_norm, margin, row_weight);
}

}  // namespace deephash
