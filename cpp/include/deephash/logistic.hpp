// The logistic pass of the pairwise-likelihood losses (DPSH, DSDH, DHN) against a memory bank:
// one sweep over a block of pair logits theta that leaves sigmoid(theta) in place (the gradient
// needs it) and returns the sum of softplus(theta) = log(1 + e^theta) (the value needs it).
//
// The deep-learning framework does this in several passes (sigmoid, |theta|, log) with an exp
// accurate to the last bit; this is one pass with a vectorised exp (a few ulp), and the logs of
// a group of factors 1 + e^-|theta| taken as one log of their product.
#pragma once

#include <cstddef>

#include "deephash/simd.hpp"

namespace deephash {

// Replaces x[i] by 1 / (1 + e^-x[i]) for i < n and returns sum_i log(1 + e^x[i]), accumulated in
// double. NaN in, NaN out (and a NaN sum); +inf gives 1 and an infinite sum, -inf gives 0.
// Runs the active kernel table's build: AVX2 + FMA where the SIMD level is AVX2 or above.
double sigmoid_softplus_inplace(float* x, std::size_t n) noexcept;

// The level sigmoid_softplus_inplace runs at now: AVX2, or Scalar (exact libm calls, slow).
SimdLevel logistic_level() noexcept;

}  // namespace deephash
