// Packing real values into binary codes and back.
//
// Bit j of a code is bit (j % 8) of byte (j / 8), least significant bit first (the FAISS binary
// layout). A real value x becomes bit 1 iff x >= 0 (so 0 and -0.0 give 1); a bool is its own bit.
// NaN has no sign and is rejected.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "deephash/common.hpp"

namespace deephash {

// Packs an (n, d) row-major array into (n, ceil(d / 8)) bytes, any d in [1, kMaxNbits]; the
// padding bits d .. 8 * ceil(d / 8) - 1 of each code are zero.
template <class T>
void pack_bits(const T* values, std::size_t n, std::size_t d, std::uint8_t* out) {
  check_nbits(static_cast<std::int64_t>(d), "number of columns (bits)");
  if constexpr (std::is_floating_point_v<T>) {
    for (std::size_t i = 0; i < n * d; ++i) {
      if (std::isnan(values[i])) {
        throw InvalidArgument("pack_bits: values must not contain NaN (row " + std::to_string(i / d) +
                              ", column " + std::to_string(i % d) + ")");
      }
    }
  }
  const std::size_t code_size = code_size_for(static_cast<std::int64_t>(d));
  for (std::size_t i = 0; i < n; ++i) {
    const T* row = values + i * d;
    std::uint8_t* dst = out + i * code_size;
    for (std::size_t byte = 0; byte < code_size; ++byte) {
      const std::size_t nb = std::min<std::size_t>(8, d - byte * 8);  // 8 except in a short last byte
      unsigned v = 0;
      for (unsigned b = 0; b < nb; ++b) {
        const T x = row[byte * 8 + b];
        bool bit;
        if constexpr (std::is_same_v<T, bool>) {
          bit = x;
        } else {
          bit = !(x < T(0));  // x >= 0, written so that -0.0 counts as >= 0
        }
        v |= static_cast<unsigned>(bit) << b;
      }
      dst[byte] = static_cast<std::uint8_t>(v);
    }
  }
}

// The padding bits of a code's last byte (bits nbits % 8 .. 7 of it): 0 when nbits is a multiple of 8.
inline constexpr std::uint8_t padding_mask(std::size_t nbits) noexcept {
  return nbits % 8 ? static_cast<std::uint8_t>(0xFFu << (nbits % 8)) : std::uint8_t{0};
}

// The first of n codes of nbits bits (code_size_for(nbits) bytes each) with a padding bit set, or
// n when none has. Reads only the last byte of each row, and nothing when nbits % 8 == 0.
std::size_t find_padding_bits(const std::uint8_t* codes, std::size_t n, std::size_t nbits) noexcept;

// "row 3 sets padding bits 13, 15 (a 12-bit code in 2 bytes: bits 12..15 must be zero)": the
// message for a row that find_padding_bits reported, given that row's last byte.
std::string describe_padding_bits(std::uint8_t last_byte, std::size_t row, std::size_t nbits);

// Throws InvalidArgument "<what>: row ... sets padding bits ..." when a code has a padding bit set.
void check_padding_bits(const std::uint8_t* codes, std::size_t n, std::size_t nbits, const char* what);

// Unpacks (n, code_size) codes into (n, nbits) bytes of 0/1, nbits <= 8 * code_size.
void unpack_bits(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::size_t nbits,
                 std::uint8_t* out);

}  // namespace deephash
