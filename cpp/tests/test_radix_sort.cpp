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

// order_by_key against a stable sort by key and a prefix count: key widths from 0 bits to past the
// 11-bit low digit (one level, two levels, buckets left empty), lengths from 0, keys crowded
// into few values, and with and without the offsets.
TEST(order_by_key_is_a_stable_counting_sort) {
  std::mt19937_64 rng(13);
  for (int key_bits : {0, 1, 5, 11, 12, 16, 22}) {
    const std::size_t nkeys = std::size_t{1} << key_bits;
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000}, std::size_t{60000}}) {
      for (bool crowded : {false, true}) {
        std::vector<std::uint32_t> key(n);
        for (auto& k : key) k = static_cast<std::uint32_t>(crowded ? rng() % std::min<std::size_t>(nkeys, 3) * (nkeys / 3 + 1) % nkeys
                                                                 : rng() % nkeys);
        std::vector<std::uint32_t> want(n);
        for (std::size_t i = 0; i < n; ++i) want[i] = static_cast<std::uint32_t>(i);
        std::stable_sort(want.begin(), want.end(), [&](std::uint32_t a, std::uint32_t b) { return key[a] < key[b]; });
        std::vector<std::uint32_t> want_offsets(nkeys + 1, 0);
        for (std::uint32_t k : key) ++want_offsets[k + 1];
        for (std::size_t k = 0; k < nkeys; ++k) want_offsets[k + 1] += want_offsets[k];
        for (bool with_offsets : {false, true}) {
          std::vector<std::uint32_t> order(n, 0xdeadbeefu), offsets(nkeys + 1, 0xdeadbeefu);
          order_by_key(n, key_bits, [&](std::size_t i) { return key[i]; }, order.data(),
                       with_offsets ? offsets.data() : nullptr);
          CHECK(order == want);
          if (with_offsets) CHECK(offsets == want_offsets);
        }
      }
    }
  }
}
