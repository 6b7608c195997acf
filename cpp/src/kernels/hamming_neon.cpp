// NEON Hamming kernels (AArch64, where NEON is always present).
// Instructions relied on: EOR, CNT (byte popcount), UADDLV / ADDV (horizontal sums).
// Codes whose size is a multiple of 16 bytes run 16 bytes per step; others use the portable loop.
#include <arm_neon.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "bank_kernels.hpp"
#include "deephash/simd.hpp"

namespace deephash::kernels {
namespace neon_impl {
#include "hamming_portable.inl"

struct VecQuery {
  const std::uint8_t* q;
  std::size_t nvec;
  VecQuery(const std::uint8_t* query, std::size_t code_size) noexcept : q(query), nvec(code_size / 16) {}
  dist_t operator()(const std::uint8_t* c) const noexcept {
    uint16x8_t acc = vdupq_n_u16(0);
    for (std::size_t v = 0; v < nvec; ++v)
      acc = vpadalq_u8(acc, vcntq_u8(veorq_u8(vld1q_u8(c + 16 * v), vld1q_u8(q + 16 * v))));
    return static_cast<dist_t>(vaddlvq_u16(acc));
  }
};

static void distances(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                      std::size_t code_size, dist_t* out) noexcept {
  if (code_size % 16 == 0) return portable_distances_with(VecQuery(query, code_size), codes, n, code_size, out);
  return portable_distances(query, codes, n, code_size, out);
}

static std::size_t filter(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                          std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                          dist_t* dists) noexcept {
  if (code_size % 16 == 0)
    return portable_filter_with(VecQuery(query, code_size), codes, n, code_size, max_distance, positions, dists);
  return portable_filter(query, codes, n, code_size, max_distance, positions, dists);
}

}  // namespace neon_impl

const KernelTable& neon_table() noexcept {
  static const KernelTable table{SimdLevel::NEON,
                                 &neon_impl::distances,
                                 &neon_impl::filter,
                                 &neon_impl::portable_gather,
                                 &neon_impl::portable_gather_new,
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
