// Packing real values into binary codes and back.
//
// Bit j of a code is bit (j % 8) of byte (j / 8), least significant bit first (the FAISS binary
// layout). A real value x becomes bit 1 iff x >= 0 (so 0 and -0.0 give 1); a bool is its own bit.
// NaN has no sign and is rejected.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "deephash/common.hpp"

namespace deephash {

// Packs an (n, d) row-major array into (n, d / 8) bytes. d must be a positive multiple of 8.
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
  const std::size_t code_size = d / 8;
  for (std::size_t i = 0; i < n; ++i) {
    const T* row = values + i * d;
    std::uint8_t* dst = out + i * code_size;
    for (std::size_t byte = 0; byte < code_size; ++byte) {
      unsigned v = 0;
      for (unsigned b = 0; b < 8; ++b) {
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

// Unpacks (n, code_size) codes into (n, nbits) bytes of 0/1, nbits <= 8 * code_size.
void unpack_bits(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::size_t nbits,
                 std::uint8_t* out);

}  // namespace deephash
