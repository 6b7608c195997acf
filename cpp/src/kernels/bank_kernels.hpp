// The per-level builds of the two bank passes of the deep losses, entered in each level's kernel
// table (simd.hpp): the logistic pass (deephash/logistic.hpp) and the contrastive block pass
// (deephash/contrastive.hpp). Internal to the kernels.
#pragma once

#include <cstddef>

namespace deephash::kernels {

// Exact libm calls per element: the reference.
double sigmoid_softplus_scalar(float* x, std::size_t n) noexcept;
double contrastive_pass_scalar(float* r, const float* s, std::size_t rows, std::size_t cols, const float* u_norm,
                               const float* v_norm, float margin, float* row_weight) noexcept;
#if defined(__x86_64__) || defined(_M_X64)
// AVX2 + FMA (the AVX-512 table uses these too).
double sigmoid_softplus_avx2(float* x, std::size_t n) noexcept;
double contrastive_pass_avx2(float* r, const float* s, std::size_t rows, std::size_t cols, const float* u_norm,
                             const float* v_norm, float margin, float* row_weight) noexcept;
#endif

}  // namespace deephash::kernels
