// Scalar Hamming kernels: the reference every other level is tested against. Always built,
// compiled for the baseline target (no POPCNT instruction assumed on x86-64).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "bank_kernels.hpp"
#include "deephash/simd.hpp"

namespace deephash::kernels {
namespace scalar_impl {
#include "hamming_portable.inl"
}  // namespace scalar_impl

const KernelTable& scalar_table() noexcept {
  static const KernelTable table{SimdLevel::Scalar,
                                 &scalar_impl::portable_distances,
                                 &scalar_impl::portable_filter,
                                 &scalar_impl::portable_gather,
                                 &scalar_impl::portable_gather_new,
                                 nullptr,
                                 nullptr,
                                 nullptr,
                                 &sigmoid_softplus_scalar,
                                 &contrastive_pass_scalar,
                                 SimdLevel::Scalar,
                                 nullptr,
                                 nullptr,
                                 nullptr,
                                 nullptr,
                                 nullptr,
                                 nullptr};
  return table;
}

}  // namespace deephash::kernels
