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

// Bits [begin, begin + bits) of a code (bit b: bit b % 8 of byte b / 8) as the low bits of a word,
// as multi-index hashing cuts its substrings (bits <= 64).
inline std::uint64_t substring(const std::uint8_t* code, std::size_t begin, std::size_t bits) {
  std::uint64_t v = 0;
  for (std::size_t b = 0; b < bits; ++b) v |= std::uint64_t{(code[(begin + b) / 8] >> ((begin + b) % 8)) & 1u} << b;
  return v;
}

// Per distance, the sum of `histograms` histograms of `bins` counters laid out one after another
// (the metrics' recording passes split their counts so).
inline std::vector<std::uint32_t> histogram_sum(const std::vector<std::uint32_t>& seen, std::size_t histograms,
                                                std::size_t bins) {
  std::vector<std::uint32_t> total(bins);
  for (std::size_t d = 0; d < bins; ++d)
    for (std::size_t h = 0; h < histograms; ++h) total[d] += seen[h * bins + d];
  return total;
}

// The metrics' recording pass as a plain loop: in index order, a relevant item i records
// d << 32 | (items at its distance d so far), then every item adds 1 to counts[d]. `counts` holds
// the per-distance counts on entry and is advanced.
template <class Dist, class Relevant>
std::vector<std::uint64_t> rank_records(const Dist* dist, std::size_t len, Relevant relevant,
                                        std::vector<std::uint32_t>& counts) {
  std::vector<std::uint64_t> records;
  for (std::size_t i = 0; i < len; ++i) {
    const auto d = static_cast<std::size_t>(dist[i]);
    if (relevant(i)) records.push_back(std::uint64_t{d} << 32 | counts[d]);
    ++counts[d];
  }
  return records;
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
