// The single-query filter kernel of each SIMD level, in nanoseconds per code, at code sizes from
// 8 to 128 bytes: one 256 KiB block of random codes (a scan's block, in L2), a bound that few codes
// pass (as once a top-k has filled), best of 30 rounds of 10 calls. Compiled once against each
// build of the core and run in alternation (docs/benchmarks.md, "Per-code sums in 16-bit fields"):
//
//   g++ -O2 -std=c++17 -I<tree>/cpp/include filter_ab.cpp <build>/cpp/libdeephash_core.a -lpthread -o filter_ab
//   ./filter_ab          # 8, 16, 24, 32, 48, 64, 96, 128 bytes
//   ./filter_ab all      # every size from 1 to 136 bytes
//
// Where a level has a lower-bound-first filter (filter_halves), its sizes also get both filters at
// two tight bounds (see below).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "deephash/simd.hpp"

using namespace deephash;

int main(int argc, char** argv) {
  std::vector<std::size_t> sizes = {8, 16, 24, 32, 48, 64, 96, 128};
  if (argc > 1 && std::string(argv[1]) == "all") {
    sizes.clear();
    for (std::size_t cs = 1; cs <= 136; ++cs) sizes.push_back(cs);
  }
  std::vector<const kernels::KernelTable*> levels;
  for (SimdLevel l : available_simd_levels())
    if (l != SimdLevel::Scalar) levels.push_back(kernels::table_for(l));
  for (std::size_t cs : sizes) {
    const std::size_t n = std::max<std::size_t>(2048, (256u << 10) / cs) / 16 * 16;
    std::vector<std::uint8_t> codes(n * cs), query(cs);
    std::mt19937_64 draw(cs);
    for (auto& b : codes) b = static_cast<std::uint8_t>(draw());
    for (auto& b : query) b = static_cast<std::uint8_t>(draw());
    std::vector<std::uint32_t> positions(n);
    std::vector<dist_t> distances(n);
    // About three standard deviations below the mean distance of random codes.
    const auto bound = static_cast<dist_t>(4.0 * static_cast<double>(cs) - 3.0 * std::sqrt(2.0 * static_cast<double>(cs)));
    std::printf("%3zu bytes:", cs);
    for (const kernels::KernelTable* t : levels) {
      double best = 1e30;
      std::size_t hits = 0;
      for (int round = 0; round < 30; ++round) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int call = 0; call < 10; ++call)
          hits += t->filter(query.data(), codes.data(), n, cs, bound, positions.data(), distances.data());
        best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 10);
      }
      std::printf("  %s %.3f ns/code (%zu hits a call)", simd_level_name(t->level), best / static_cast<double>(n) * 1e9,
                  hits / 300);
      if (!t->filter_halves || !t->halves_for_size(cs)) continue;
      // The lower-bound-first filter, at two bounds: 1/8 of the bits, which random codes pass the
      // half test almost never, and a bound about 5% of them pass it (as on clustered codes): the
      // plain filter at that bound, then the halves.
      const double half_bits = 4.0 * static_cast<double>(cs);
      for (const auto tight : {static_cast<dist_t>(cs),
                               static_cast<dist_t>(half_bits / 2 - 1.65 * std::sqrt(half_bits) / 2)}) {
        double plain = 1e30, halves = 1e30;
        bool gave_up = false;
        for (int round = 0; round < 30; ++round) {
          auto t0 = std::chrono::steady_clock::now();
          for (int call = 0; call < 10; ++call)
            hits += t->filter(query.data(), codes.data(), n, cs, tight, positions.data(), distances.data());
          plain = std::min(plain, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 10);
          t0 = std::chrono::steady_clock::now();
          for (int call = 0; call < 10; ++call)
            hits += t->filter_halves(query.data(), codes.data(), n, cs, tight, positions.data(), distances.data(),
                                     &gave_up);
          halves = std::min(halves, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 10);
        }
        std::printf("  [bound %d: filter %.3f, halves %.3f ns/code%s]", tight, plain / static_cast<double>(n) * 1e9,
                    halves / static_cast<double>(n) * 1e9, gave_up ? ", gave up" : "");
      }
    }
    std::printf("\n");
  }
}
