// CountingTopK against a full sort, with increasing and arbitrary id orders, heavy ties and merges.
#include <algorithm>
#include <random>
#include <vector>

#include "topk.hpp"
#include "harness.hpp"

using namespace deephash;

static std::vector<CountingTopK::Entry> run(const std::vector<CountingTopK::Entry>& stream, std::size_t k, int nbits,
                                            bool increasing) {
  CountingTopK top(k, nbits, increasing);
  for (const auto& e : stream)
    if (e.first <= top.max_accepted()) top.push(e.first, e.second);
  std::vector<dist_t> d(k + 3);
  std::vector<idx_t> id(k + 3);
  top.finish(d.data(), id.data(), k + 3);
  std::vector<CountingTopK::Entry> out;
  for (std::size_t j = 0; j < k + 3; ++j) out.emplace_back(d[j], id[j]);
  return out;
}

static std::vector<CountingTopK::Entry> expected(std::vector<CountingTopK::Entry> stream, std::size_t k) {
  std::sort(stream.begin(), stream.end());
  if (stream.size() > k) stream.resize(k);
  while (stream.size() < k + 3) stream.emplace_back(kMissingDistance, kMissingId);
  return stream;
}

TEST(matches_full_sort_for_many_shapes) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 300; ++trial) {
    const int nbits = 8 * (1 + static_cast<int>(rng() % 8));
    const std::size_t n = rng() % 2000, k = 1 + rng() % 150;
    const bool increasing = trial % 2 == 0;
    const int spread = 1 + static_cast<int>(rng() % (nbits + 1));  // small spread = many ties
    std::vector<CountingTopK::Entry> stream;
    std::vector<idx_t> ids(n);
    for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<idx_t>(i * 3 + 1);
    if (!increasing) std::shuffle(ids.begin(), ids.end(), rng);
    for (std::size_t i = 0; i < n; ++i) stream.emplace_back(static_cast<dist_t>(rng() % spread), ids[i]);
    const auto got = run(stream, k, nbits, increasing);
    CHECK(got == expected(stream, k));
  }
}

TEST(merge_of_partial_collectors_is_exact) {
  std::mt19937 rng(2);
  for (int trial = 0; trial < 100; ++trial) {
    const std::size_t k = 1 + rng() % 40;
    std::vector<CountingTopK::Entry> all;
    CountingTopK a(k, 64, true), b(k, 64, true);
    for (idx_t id = 0; id < 500; ++id) {
      const dist_t d = static_cast<dist_t>(rng() % 5);
      all.emplace_back(d, id);
      (id < 250 ? a : b).push(d, id);
    }
    a.merge(b);
    std::vector<dist_t> d(k);
    std::vector<idx_t> ids(k);
    a.finish(d.data(), ids.data(), k);
    auto want = expected(all, k);
    bool ok = true;
    for (std::size_t j = 0; j < k; ++j) ok &= want[j].first == d[j] && want[j].second == ids[j];
    CHECK(ok);
  }
}

// Keys mapped to ids: the keys pushed are positions that do not order like the ids (as in a scan
// or multi-index probe of sorted storage); finish must give the k best by (distance, id) all the
// same, however many candidates tie at the k-th distance (past 2,048 the collector maps them and
// ranks by id), in whatever order they come, and after a merge of two such collectors.
static void id_of_position(const void* ids, CountingTopK::Entry* e, std::size_t n) {
  const auto& id_of = *static_cast<const std::vector<idx_t>*>(ids);
  for (std::size_t i = 0; i < n; ++i) e[i].second = id_of[static_cast<std::size_t>(e[i].second)];
}

TEST(keyed_collectors_order_ties_by_id) {
  std::mt19937 rng(3);
  for (int trial = 0; trial < 400; ++trial) {
    const std::size_t n = rng() % 9000, k = 1 + rng() % 120;
    const int spread = 1 + static_cast<int>(rng() % 12);  // few distances: thousands of ties
    std::vector<idx_t> id_of(n);
    for (std::size_t p = 0; p < n; ++p) id_of[p] = static_cast<idx_t>(p * 5 + 2);
    std::shuffle(id_of.begin(), id_of.end(), rng);
    std::vector<std::size_t> arrival(n);
    for (std::size_t p = 0; p < n; ++p) arrival[p] = p;
    std::shuffle(arrival.begin(), arrival.end(), rng);
    const CountingTopK::KeyToId to_id{id_of_position, &id_of};
    const bool merged = trial % 2 == 1;
    CountingTopK top, other;
    top.reset(k, 64, false, to_id);
    other.reset(k, 64, false, to_id);
    std::vector<CountingTopK::Entry> truth;
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t p = arrival[i];
      const dist_t d = static_cast<dist_t>(rng() % spread);
      truth.emplace_back(d, id_of[p]);
      (merged && i % 2 ? other : top).push(d, static_cast<idx_t>(p));
    }
    if (merged) top.merge(other);
    std::vector<dist_t> d(k + 3);
    std::vector<idx_t> ids(k + 3);
    top.finish(d.data(), ids.data(), k + 3);
    std::vector<CountingTopK::Entry> got;
    for (std::size_t j = 0; j < k + 3; ++j) got.emplace_back(d[j], ids[j]);
    CHECK(got == expected(truth, k));
  }
}

// close_at_zero: with ids increasing, k candidates at distance 0 end the collector (bound -1)
// however full its buffer; not before k of them, not with a bound above 0 still to settle, never
// where ids do not grow with arrival; finish is exact either way.
TEST(close_at_zero_only_when_k_copies_settle_it) {
  std::mt19937 rng(4);
  CountingTopK top;  // reused: reset must forget the copies counted before
  for (int trial = 0; trial < 200; ++trial) {
    const std::size_t k = 1 + rng() % 30;
    const bool increasing = trial % 3 != 0;
    top.reset(k, 0, increasing);  // a sample's bound of 0: only copies are accepted
    std::vector<CountingTopK::Entry> stream;
    std::size_t zeros = 0;
    bool closed = false, early = false;
    for (idx_t id = 0; id < 400 && !closed; ++id) {
      const dist_t d = static_cast<dist_t>(rng() % 4 == 0 ? 0 : 1 + rng() % 3);
      stream.emplace_back(d, increasing ? id : 1000 - id);
      if (d <= top.max_accepted()) top.push(d, stream.back().second);
      zeros += d == 0;
      closed = top.close_at_zero();
      early |= closed && zeros < k;
    }
    CHECK(!early);
    CHECK(closed == (increasing && zeros >= k));
    if (closed) CHECK(top.max_accepted() == -1 && top.kth_distance() == 0 && !top.close_at_zero());
    std::vector<dist_t> d(k + 3);
    std::vector<idx_t> ids(k + 3);
    top.finish(d.data(), ids.data(), k + 3);
    std::vector<CountingTopK::Entry> got;
    for (std::size_t j = 0; j < k + 3; ++j) got.emplace_back(d[j], ids[j]);
    std::vector<CountingTopK::Entry> zero_only;
    for (const auto& e : stream)
      if (e.first == 0) zero_only.push_back(e);
    CHECK(got == expected(zero_only, k));
  }
  CountingTopK wide(5, 3, true);  // bound above 0: closing waits for the buffer to settle it
  for (idx_t id = 0; id < 5; ++id) wide.push(0, id);
  CHECK(!wide.close_at_zero() && wide.max_accepted() == 3);
  // From the full code length: the buffer fills and shrinks many times (mostly 1s and 2s) before
  // the bound reaches 0; it closes at the k-th copy, never before, and keeps the first k copies.
  for (int trial = 0; trial < 50; ++trial) {
    const std::size_t k = 1 + rng() % 20;
    top.reset(k, 64, true);
    std::vector<CountingTopK::Entry> zeros;
    bool closed = false, early = false;
    for (idx_t id = 0; id < 5000 && !closed; ++id) {
      const unsigned r = rng() % 100;
      const dist_t d = r < 3 ? 0 : r < 70 ? 1 : static_cast<dist_t>(2 + r % 5);
      if (d == 0) zeros.emplace_back(d, id);
      if (d <= top.max_accepted()) top.push(d, id);
      closed = top.max_accepted() < 0;
      early |= top.close_at_zero() && zeros.size() < k;
      closed = closed || top.max_accepted() < 0;
    }
    CHECK(!early);
    CHECK(closed == (zeros.size() >= k));
    std::vector<dist_t> d(k);
    std::vector<idx_t> ids(k);
    top.finish(d.data(), ids.data(), k);
    bool same = zeros.size() >= k;
    for (std::size_t j = 0; same && j < k; ++j) same = d[j] == 0 && ids[j] == zeros[j].second;
    CHECK(same || zeros.size() < k);
  }
}

HARNESS_MAIN()

// Collectors fed in id order select by counting distances, with one per-thread histogram: two
// collectors of different widths shrinking in turn, one reused through reset at a wider width,
// must each keep exactly the k smallest (distance, id), ties to the smaller id.
TEST(selection_by_counting_shares_a_clean_histogram) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 40; ++trial) {
    const std::size_t k = trial % 4 == 0 ? 1 + rng() % 3000 : 1 + rng() % 60;
    const int narrow = 1 + static_cast<int>(rng() % 16), wide = 64 + static_cast<int>(rng() % 960);
    CountingTopK a(k, narrow, true), b(k, wide, true);
    std::vector<CountingTopK::Entry> sa, sb;
    for (idx_t id = 0; id < 20000; ++id) {
      const dist_t da = static_cast<dist_t>(rng() % (narrow + 1)), db = static_cast<dist_t>(rng() % (wide + 1));
      if (da <= a.max_accepted()) a.push(da, id);
      if (db <= b.max_accepted()) b.push(db, id);
      sa.emplace_back(da, id);
      sb.emplace_back(db, id);
    }
    std::vector<dist_t> d(k);
    std::vector<idx_t> ids(k);
    for (auto* c : {&a, &b}) {
      c->finish(d.data(), ids.data(), k);
      const auto want = expected(c == &a ? sa : sb, k);
      for (std::size_t j = 0; j < k; ++j) CHECK(want[j] == CountingTopK::Entry(d[j], ids[j]));
    }
    a.reset(k, wide + 7, true);  // the same collector again, wider than before
    std::vector<CountingTopK::Entry> sc;
    for (idx_t id = 0; id < 5000; ++id) {
      const dist_t dc = static_cast<dist_t>(rng() % (wide + 8));
      if (dc <= a.max_accepted()) a.push(dc, id);
      sc.emplace_back(dc, id);
    }
    a.finish(d.data(), ids.data(), k);
    const auto want = expected(sc, k);
    for (std::size_t j = 0; j < k; ++j) CHECK(want[j] == CountingTopK::Entry(d[j], ids[j]));
  }
}
