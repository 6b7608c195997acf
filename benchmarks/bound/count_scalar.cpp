// Compiled with -mpopcnt: one POPCNT per 64-bit word.
#include <cstring>

#include "bound.hpp"

namespace bound {

namespace {
template <std::size_t W>
std::uint64_t count_words(const std::uint8_t* query, const std::uint8_t* rows, std::size_t begin, std::size_t end,
                          std::size_t row, int threshold) {
  std::uint64_t q[W ? W : 1], hits = 0;
  const std::size_t words = W ? W : row / 8;
  if (W) std::memcpy(q, query, 8 * W);
  for (std::size_t i = begin; i < end; ++i) {
    const std::uint8_t* c = rows + i * row;
    int d = 0;
    for (std::size_t w = 0; w < words; ++w) {
      std::uint64_t x, y;
      std::memcpy(&x, c + 8 * w, 8);
      if (W) {
        y = q[w];
      } else {
        std::memcpy(&y, query + 8 * w, 8);
      }
      d += __builtin_popcountll(x ^ y);
    }
    hits += d <= threshold;
  }
  return hits;
}
}  // namespace

std::uint64_t count_scalar(const std::uint8_t* query, const Layout& codes, std::size_t begin, std::size_t end,
                           int threshold) {
  const std::uint8_t* rows = codes.bytes.data();
  switch (codes.row / 8) {
    case 1: return count_words<1>(query, rows, begin, end, codes.row, threshold);
    case 2: return count_words<2>(query, rows, begin, end, codes.row, threshold);
    case 4: return count_words<4>(query, rows, begin, end, codes.row, threshold);
    case 8: return count_words<8>(query, rows, begin, end, codes.row, threshold);
    case 16: return count_words<16>(query, rows, begin, end, codes.row, threshold);
    default: return count_words<0>(query, rows, begin, end, codes.row, threshold);
  }
}

}  // namespace bound
