// The block pass of the contrastive loss (DSH) against a memory bank: from the products
// r_ij = 2 u_i . v_j of one block, the pair distances d_ij = |u_i|^2 + |v_j|^2 - r_ij, the loss
// terms and the pair weights of the gradient, in one sweep (the framework needs about ten).
#pragma once

#include <cstddef>

#include "deephash/simd.hpp"

namespace deephash {

// r, s: (rows, cols) row-major; s_ij is 1 for a similar pair and 0 for a dissimilar one (other
// values blend the two terms linearly, as the formula below reads).
// u_norm[i] = |u_i|^2, v_norm[j] = |v_j|^2. With d_ij = max(u_norm[i] + v_norm[j] - r_ij, 0):
// - returns sum_ij s_ij d_ij + (1 - s_ij) max(margin - d_ij, 0), accumulated in double;
// - overwrites r_ij with the pair weight w_ij = s_ij - (1 - s_ij) [d_ij < margin], so that the
//   gradient of the sum with respect to u_i is 2 sum_j w_ij (u_i - v_j);
// - adds sum_j w_ij to row_weight[i].
double contrastive_pass(float* r, const float* s, std::size_t rows, std::size_t cols,
                        const float* u_norm, const float* v_norm, float margin,
                        float* row_weight) noexcept;

// The level contrastive_pass runs at now: the instruction set its build in the active kernel table
// was compiled for (AVX2 on AVX2 and AVX-512 CPUs; Scalar, the baseline build of the same loop).
SimdLevel contrastive_level() noexcept;

}  // namespace deephash
