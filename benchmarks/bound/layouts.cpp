#include <algorithm>
#include <cstring>

#include "bound.hpp"

namespace bound {

Layout padded_rows(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::size_t row) {
  Layout l;
  l.n = n;
  l.code_size = code_size;
  l.row = row;
  l.bytes.assign(n * row + 64, 0);
  for (std::size_t i = 0; i < n; ++i) std::memcpy(l.bytes.data() + i * row, codes + i * code_size, code_size);
  return l;
}

Layout interleaved_words(const std::uint8_t* codes, std::size_t n, std::size_t code_size) {
  Layout l;
  l.n = n;
  l.code_size = code_size;
  const std::size_t words = (code_size + 3) / 4, groups = (n + 15) / 16;
  l.row = 4 * words;
  l.bytes.assign(groups * 64 * words + 64, 0);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t w = 0; w < words; ++w)
      std::memcpy(l.bytes.data() + (i / 16) * 64 * words + 64 * w + 4 * (i % 16), codes + i * code_size + 4 * w,
                  std::min<std::size_t>(4, code_size - 4 * w));
  return l;
}

}  // namespace bound
