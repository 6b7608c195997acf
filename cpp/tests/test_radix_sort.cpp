// sort_positions against std::sort: every length around the radix threshold, every key width,
// shared digits (skipped passes), duplicates and the extreme values.
#include <algorithm>
#include <random>
#include <vector>

#include "radix_sort.hpp"
#include "harness.hpp"

using namespace deephash;

static bool sorts_like_std(std::vector<std::uint32_t> v, int key_bits, std::vector<std::uint32_t>& scratch) {
  std::vector<std::uint32_t> want = v;
  std::sort(want.begin(), want.end());
  sort_positions(v, scratch, key_bits);
  return v == want;
}

TEST(matches_std_sort_for_every_width_and_length) {
  std::mt19937_64 rng(7);
  std::vector<std::uint32_t> scratch;
  for (int key_bits = 1; key_bits <= 32; ++key_bits) {
    const std::uint64_t top = std::uint64_t{1} << key_bits;
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{2}, kRadixSortMin - 1, kRadixSortMin,
                          kRadixSortMin + 1, std::size_t{1000}, std::size_t{70000}}) {
      std::vector<std::uint32_t> v(n);
      for (auto& x : v) x = static_cast<std::uint32_t>(rng() % top);
      CHECK(sorts_like_std(v, key_bits, scratch));
    }
  }
}

TEST(shared_digits_duplicates_and_extremes) {
  std::mt19937_64 rng(11);
  std::vector<std::uint32_t> scratch;
  // Values that share their low byte, their high bytes, or everything: passes are skipped.
  std::vector<std::uint32_t> low(5000), high(5000), same(5000, 0x12345678u), dup(5000);
  for (std::size_t i = 0; i < low.size(); ++i) {
    low[i] = static_cast<std::uint32_t>(rng() & 0xffffff00u) | 0x2au;
    high[i] = 0xab000000u | static_cast<std::uint32_t>(rng() & 0xffu);
    dup[i] = static_cast<std::uint32_t>(rng() % 7) * 0x01010101u;
  }
  CHECK(sorts_like_std(low, 32, scratch));
  CHECK(sorts_like_std(high, 32, scratch));
  CHECK(sorts_like_std(same, 32, scratch));
  CHECK(sorts_like_std(dup, 32, scratch));
  std::vector<std::uint32_t> ends(3000);
  for (std::size_t i = 0; i < ends.size(); ++i) ends[i] = i % 2 ? 0xffffffffu : 0u;
  CHECK(sorts_like_std(ends, 32, scratch));
  // Descending input, and a scratch buffer already larger than needed.
  std::vector<std::uint32_t> desc(4096);
  for (std::size_t i = 0; i < desc.size(); ++i) desc[i] = static_cast<std::uint32_t>(desc.size() - i);
  scratch.assign(100000, 99u);
  CHECK(sorts_like_std(desc, 13, scratch));
}

HARNESS_MAIN()
