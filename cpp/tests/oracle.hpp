// Reference computations for the C++ tests: plain loops, no SIMD, no selection tricks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "deephash/common.hpp"

namespace oracle {

inline int hamming(const std::uint8_t* a, const std::uint8_t* b, std::size_t cs) {
  int d = 0;
  for (std::size_t i = 0; i < cs; ++i)
    for (int bit = 0; bit < 8; ++bit) d += ((a[i] ^ b[i]) >> bit) & 1;
  return d;
}

inline std::vector<std::uint8_t> random_codes(std::size_t n, std::size_t cs, std::uint32_t seed, int alphabet = 256) {
  std::mt19937 rng(seed);
  std::vector<std::uint8_t> v(n * cs);
  for (auto& x : v) x = static_cast<std::uint8_t>(rng() % static_cast<unsigned>(alphabet));
  return v;
}

// As random_codes, for codes of nbits bits (any nbits): the padding bits of each last byte cleared.
inline std::vector<std::uint8_t> random_codes_nbits(std::size_t n, int nbits, std::uint32_t seed, int alphabet = 256) {
  const std::size_t cs = deephash::code_size_for(nbits);
  auto v = random_codes(n, cs, seed, alphabet);
  const unsigned keep = nbits % 8 ? (1u << (nbits % 8)) - 1 : 0xFFu;
  for (std::size_t i = 0; i < n; ++i) v[i * cs + cs - 1] &= static_cast<std::uint8_t>(keep);
  return v;
}

// k smallest (distance, id) pairs by full sort.
inline std::vector<std::pair<int, std::int64_t>> knn(const std::uint8_t* q, const std::vector<std::uint8_t>& codes,
                                                     const std::vector<std::int64_t>& ids, std::size_t cs, std::size_t k) {
  std::vector<std::pair<int, std::int64_t>> all;
  for (std::size_t i = 0; i < ids.size(); ++i) all.emplace_back(hamming(q, codes.data() + i * cs, cs), ids[i]);
  std::sort(all.begin(), all.end());
  all.resize(std::min(k, all.size()));
  return all;
}

}  // namespace oracle
