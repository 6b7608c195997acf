// Builds an index of random 64-bit codes, searches it (k-NN and range), saves it, loads it back
// memory-mapped and checks that the loaded index answers the same. Exits non-zero on a mismatch.
//   cpp_search [PATH]   (default: cpp_search_example.dhi in the current folder, removed at the end)
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "deephash/flat_index.hpp"
#include "deephash/mih_index.hpp"
#include "deephash/simd.hpp"

int main(int argc, char** argv) {
  using namespace deephash;
  const std::string path = argc > 1 ? argv[1] : "cpp_search_example.dhi";
  const int nbits = 64;
  const std::size_t n = 100000, nq = 5, k = 10, cs = nbits / 8;

  std::mt19937_64 rng(42);
  std::vector<std::uint8_t> codes(n * cs);
  for (auto& b : codes) b = static_cast<std::uint8_t>(rng());
  MIHIndex index(nbits);  // exact multi-index hashing; FlatIndex has the same interface
  index.add(codes.data(), n);
  std::printf("deephash %s, %s kernels, %zu codes of %d bits, m=%d\n", DEEPHASH_VERSION_STRING,
              simd_level_name(simd_level()), index.ntotal(), nbits, index.m());

  // Queries: stored codes with a few bits flipped, so their nearest neighbours are known.
  std::vector<std::uint8_t> queries(nq * cs);
  for (std::size_t q = 0; q < nq; ++q) {
    for (std::size_t b = 0; b < cs; ++b) queries[q * cs + b] = codes[(q * 997) * cs + b];
    queries[q * cs] ^= 0x5;  // two bits
  }
  std::vector<dist_t> D(nq * k);
  std::vector<idx_t> I(nq * k);
  index.search(queries.data(), nq, k, D.data(), I.data());
  const RangeResult range = index.range_search(queries.data(), nq, 8);
  for (std::size_t q = 0; q < nq; ++q) {
    std::printf("query %zu: nearest id %lld at distance %d; %lld codes within 8 bits\n", q,
                static_cast<long long>(I[q * k]), D[q * k],
                static_cast<long long>(range.lims[q + 1] - range.lims[q]));
    if (I[q * k] != static_cast<idx_t>(q * 997) || D[q * k] != 2) return 1;
  }

  index.save(path);
  std::unique_ptr<BinaryIndex> loaded = load_index(path, /*mmap=*/true);
  std::vector<dist_t> D2(nq * k);
  std::vector<idx_t> I2(nq * k);
  loaded->search(queries.data(), nq, k, D2.data(), I2.data());
  std::remove(path.c_str());
  if (D2 != D || I2 != I) {
    std::printf("the loaded index answers differently\n");
    return 1;
  }
  std::printf("saved, loaded with mmap (%s), same answers\n", loaded->is_mmapped() ? "mapped" : "in memory");
  return 0;
}
