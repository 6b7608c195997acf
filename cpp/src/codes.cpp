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

std::size_t find_padding_bits(const std::uint8_t* codes, std::size_t n, std::size_t nbits) noexcept {
  const std::uint8_t mask = padding_mask(nbits);
  if (mask == 0 || n == 0) return n;  // no row: `codes` may be null
  const std::size_t cs = code_size_for(static_cast<std::int64_t>(nbits));
  const std::uint8_t* last = codes + cs - 1;
  for (std::size_t i = 0; i < n; ++i, last += cs)
    if (*last & mask) return i;
  return n;
}

std::string describe_padding_bits(std::uint8_t last_byte, std::size_t row, std::size_t nbits) {
  const std::size_t cs = code_size_for(static_cast<std::int64_t>(nbits));
  const unsigned set = last_byte & padding_mask(nbits);
  std::string bits;
  for (unsigned b = 0; b < 8; ++b)
    if (set >> b & 1u) bits += (bits.empty() ? "" : ", ") + std::to_string(8 * (cs - 1) + b);
  return "row " + std::to_string(row) + " sets padding bit" + (set & (set - 1) ? "s " : " ") + bits + " (a " +
         std::to_string(nbits) + "-bit code in " + std::to_string(cs) + " bytes: bits " + std::to_string(nbits) +
         ".." + std::to_string(8 * cs - 1) + " must be zero)";
}

void check_padding_bits(const std::uint8_t* codes, std::size_t n, std::size_t nbits, const char* what) {
  const std::size_t row = find_padding_bits(codes, n, nbits);
  if (row == n) return;
  const std::size_t cs = code_size_for(static_cast<std::int64_t>(nbits));
  throw InvalidArgument(std::string(what) + ": " + describe_padding_bits(codes[row * cs + cs - 1], row, nbits));
}

}  // namespace deephash
