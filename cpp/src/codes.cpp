#include "deephash/codes.hpp"

namespace deephash {

void unpack_bits(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::size_t nbits,
                 std::uint8_t* out) {
  if (nbits == 0 || nbits > 8 * code_size) {
    throw InvalidArgument("nbits must be in [1, " + std::to_string(8 * code_size) + "] for codes of " +
                          std::to_string(code_size) + " bytes, got " + std::to_string(nbits));
  }
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* src = codes + i * code_size;
    std::uint8_t* dst = out + i * nbits;
    for (std::size_t j = 0; j < nbits; ++j) dst[j] = (src[j >> 3] >> (j & 7)) & 1u;
  }
}

}  // namespace deephash
