// MIHIndex against FlatIndex in C++: identical k-NN and range results with probing, scanning,
// tail and tombstones.
#include <algorithm>
#include <cmath>
#include <vector>

#include "deephash/flat_index.hpp"
#include "deephash/mih_index.hpp"
#include "harness.hpp"
#include "mih_plan.hpp"
#include "oracle.hpp"

using namespace deephash;

static bool same_knn(const BinaryIndex& a, const BinaryIndex& b, const std::vector<std::uint8_t>& q, std::size_t nq,
                     std::size_t k) {
  std::vector<dist_t> da(nq * k), db(nq * k);
  std::vector<idx_t> ia(nq * k), ib(nq * k);
  a.search(q.data(), nq, k, da.data(), ia.data());
  b.search(q.data(), nq, k, db.data(), ib.data());
  return da == db && ia == ib;
}

static bool same_range(const BinaryIndex& a, const BinaryIndex& b, const std::vector<std::uint8_t>& q, std::size_t nq,
                       int r) {
  const RangeResult x = a.range_search(q.data(), nq, r), y = b.range_search(q.data(), nq, r);
  return x.lims == y.lims && x.distances == y.distances && x.ids == y.ids;
}

TEST(mih_matches_flat) {
  for (int nbits : {32, 64, 128}) {
    const std::size_t cs = nbits / 8, n = 20000;
    for (int alphabet : {256, 2}) {  // uniform bytes, and bytes 0/1 (heavy ties)
      auto codes = oracle::random_codes(n, cs, 21, alphabet);
      MIHIndex mih(nbits);
      FlatIndex flat(nbits);
      mih.add(codes.data(), n);
      flat.add(codes.data(), n);
      auto q = oracle::random_codes(12, cs, 22, alphabet);
      for (std::size_t k : {1, 10, 100}) CHECK(same_knn(mih, flat, q, 12, k));
      for (int r : {0, 2, nbits / 8, nbits / 4}) CHECK(same_range(mih, flat, q, 12, r));
      std::vector<idx_t> rm = {0, 5, 77, 19999};
      CHECK_EQ(mih.remove_ids(rm.data(), rm.size()), flat.remove_ids(rm.data(), rm.size()));
      CHECK(same_knn(mih, flat, q, 12, 10));
      CHECK(same_range(mih, flat, q, 12, nbits / 8));
    }
  }
}

TEST(mih_matches_flat_at_any_code_length) {
  for (int nbits : {1, 7, 12, 13, 63, 100, 1000}) {
    const std::size_t n = 3000;
    for (int m : {0, (nbits + 31) / 32, std::min(nbits, std::max((nbits + 31) / 32, 3))}) {
      for (int alphabet : {256, 2}) {
        auto codes = oracle::random_codes_nbits(n, nbits, 23, alphabet);
        MIHIndex mih(nbits, m);
        FlatIndex flat(nbits);
        mih.add(codes.data(), n);
        flat.add(codes.data(), n);
        auto q = oracle::random_codes_nbits(6, nbits, 24, alphabet);
        for (std::size_t k : {1, 10, 100}) CHECK(same_knn(mih, flat, q, 6, k));
        for (int r : {0, 1, nbits / 4, nbits / 2, nbits}) CHECK(same_range(mih, flat, q, 6, r));
        auto bad = q;
        bad[code_size_for(nbits) - 1] |= static_cast<std::uint8_t>(nbits % 8 ? 0x80 : 0);
        if (nbits % 8) {
          CHECK_THROWS(mih.add(bad.data(), 6), InvalidArgument);
          CHECK_THROWS(mih.range_search(bad.data(), 6, 1), InvalidArgument);
          CHECK_EQ(mih.ntotal(), n);
        }
      }
    }
  }
}

// Bucket starts are stored per block of keys in 16 bits where a block holds fewer than 65,536
// positions before its last key, in 32 bits otherwise: both layouts, and a table with each.
TEST(mih_matches_flat_with_large_buckets) {
  const std::size_t n = 70000;
  for (int alphabet : {2, 256}) {  // 8-bit substrings of 0/1 bytes: two keys of ~35,000 in one block
    for (int nbits : {16, 24}) {
      auto codes = oracle::random_codes(n, nbits / 8, 25, alphabet);
      MIHIndex mih(nbits, nbits / 8);
      FlatIndex flat(nbits);
      mih.add(codes.data(), n);
      flat.add(codes.data(), n);
      auto q = oracle::random_codes(5, nbits / 8, 26, alphabet);
      for (std::size_t k : {1, 10}) CHECK(same_knn(mih, flat, q, 5, k));
      CHECK(same_range(mih, flat, q, 5, 1));
    }
  }
}

TEST(mih_rejects_bad_parameters) {
  CHECK_THROWS(MIHIndex(64, 1), InvalidArgument);
  CHECK_THROWS(MIHIndex(64, -2), InvalidArgument);
  CHECK_THROWS(MIHIndex(0, 0), InvalidArgument);
  CHECK_EQ(MIHIndex(20, 0).nbits(), 20);
  CHECK_EQ(MIHIndex::auto_m_for(64, 10000000), 3);
}

// How many of `queries` queries of class c the plan sends to the probe, and how many of those
// and of the scanned ones count for the clock.
struct Routed {
  int probed = 0, timed = 0;
};
static Routed route_queries(ProbePlan& plan, std::size_t c, std::uint32_t queries) {
  Routed out;
  for (std::uint32_t i = 0; i < queries; ++i) {
    const ProbePlan::Route r = plan.route(c);
    out.probed += r.probe;
    out.timed += r.timed;
  }
  return out;
}

TEST(probe_plan_learns_which_plan_pays) {
  CHECK_EQ(ProbePlan::knn_class(1), std::size_t{0});
  CHECK_EQ(ProbePlan::knn_class(3), std::size_t{1});
  CHECK_EQ(ProbePlan::knn_class(100), std::size_t{6});
  CHECK_EQ(ProbePlan::knn_class(~std::size_t{0}), ProbePlan::kKnnClasses - 1);
  CHECK_EQ(ProbePlan::range_class(0), ProbePlan::kKnnClasses);
  CHECK_EQ(ProbePlan::range_class(1000), ProbePlan::kClasses - 1);
  ProbePlan plan;
  const std::size_t c = ProbePlan::knn_class(10);
  constexpr std::uint32_t kEvery = ProbePlan::kExploreEvery, kFirst = ProbePlan::kFirstExploreEvery;
  // Nothing timed yet: probed, but the last kScanBurst of each kFirstExploreEvery queries are
  // scanned to time the scan, and only the last kScanTimed of them count.
  constexpr int kBurst = ProbePlan::kScanBurst, kTimed = ProbePlan::kScanTimed;
  Routed r = route_queries(plan, c, 4 * kFirst);
  CHECK_EQ(r.probed, static_cast<int>(4 * kFirst) - 4 * kBurst);
  CHECK_EQ(r.timed, static_cast<int>(4 * kFirst) - 4 * (kBurst - kTimed));
  // Probes that give up at once cost the model nothing: probing goes on.
  for (int i = 0; i < 100; ++i) plan.record(c, false, 0.0, 1000.0);
  CHECK(plan.prefers_probe(c));
  // Probes that give up after a scan's worth of work: the scan takes the queries.
  for (int i = 0; i < 8; ++i) plan.record(c, false, 1000.0, 1000.0);
  CHECK(plan.worth(c) < 0.0);
  CHECK(!plan.prefers_probe(c));
  // Both paths timed (a probe that gave up costs itself and the scan after it): the scan still
  // takes the queries, and one in each kExploreEvery probes (and is timed).
  plan.timed_probe(c, 1500.0);
  plan.timed_scan(c, 1000.0);
  r = route_queries(plan, c, 64 * kEvery);
  CHECK_EQ(r.probed, 64);
  CHECK_EQ(r.timed, static_cast<int>(64 * kEvery));
  // Another class is not affected.
  CHECK(plan.route(ProbePlan::knn_class(1)).probe);
  // Probes that answer their queries quickly bring probing back.
  for (int i = 0; i < 32; ++i) plan.timed_probe(c, 900.0);
  CHECK(plan.probe_ns(c) < plan.scan_ns(c));
  CHECK(plan.prefers_probe(c));
  // Reset forgets everything.
  for (int i = 0; i < 8; ++i) plan.record(c, false, 1000.0, 1000.0);
  plan.reset();
  CHECK(plan.worth(c) == 1.0);
  CHECK(plan.probe_ns(c) == 0.0 && plan.scan_ns(c) == 0.0);
  CHECK_EQ(plan.queries(c), 0u);
  CHECK(plan.route(c).probe);
}

TEST(probe_plan_follows_the_clock_once_both_paths_are_timed) {
  ProbePlan plan;
  const std::size_t c = ProbePlan::range_class(16);
  constexpr std::uint32_t kEvery = ProbePlan::kExploreEvery;
  // Probes that answer well within the model's budget...
  for (int i = 0; i < 8; ++i) plan.record(c, true, 100.0, 1000.0);
  CHECK(plan.prefers_probe(c));
  // ...but take 2.5x the scan by the clock: the scan takes the queries, and one in 2 x
  // kExploreEvery probes (the other path is explored as rarely as it is slower, in whole steps).
  plan.timed_probe(c, 286e3);
  plan.timed_scan(c, 115e3);
  CHECK(!plan.prefers_probe(c));
  Routed r = route_queries(plan, c, 8 * kEvery);
  CHECK_EQ(r.probed, 4);
  CHECK_EQ(r.timed, static_cast<int>(8 * kEvery));
  // Another class is not affected.
  CHECK(plan.route(ProbePlan::range_class(4)).probe);
  // The budget: the model's until the machine's rate is measured, then at most kBudgetScans timed
  // scans in the model's units; probes of smaller work say nothing of the rate.
  CHECK(plan.budget(c, 1e9) == 1e9);
  plan.timed_work(500.0, 100.0);
  CHECK(plan.budget(c, 1e9) == 1e9);
  plan.timed_work(30e3, 10e3);  // 3 measured ns per model ns
  CHECK(std::abs(plan.budget(c, 1e9) - ProbePlan::kBudgetScans * 115e3 / 3.0) < 1.0);
  CHECK(plan.budget(c, 1000.0) == 1000.0);
  // Once the rate is known, a probe's average counts at most kBudgetScans + 1 scans.
  plan.timed_probe(c, 1e6);
  CHECK(plan.probe_ns(c) <= (ProbePlan::kBudgetScans + 1.0) * plan.scan_ns(c) + 1.0);
  // One scan the machine held up counts at most 4x the average: it moves the average by 3/8.
  plan.timed_scan(c, 1e9);
  CHECK(plan.scan_ns(c) < 115e3 * (1.0 + 3.0 / 8.0) + 1.0);
  CHECK(!plan.prefers_probe(c));
  // Probes 10x faster than the scan: probed, and a burst of kScanBurst queries in each 10 x
  // kExploreEvery is scanned, only its last kScanTimed timed (the first warm the caches).
  constexpr int kBurst = ProbePlan::kScanBurst, kTimed = ProbePlan::kScanTimed;
  ProbePlan fast;
  fast.timed_probe(c, 10e3);
  fast.timed_scan(c, 100e3);
  r = route_queries(fast, c, 2 * 10 * kEvery);
  CHECK_EQ(r.probed, static_cast<int>(2 * 10 * kEvery) - 2 * kBurst);
  CHECK_EQ(r.timed, static_cast<int>(2 * 10 * kEvery) - 2 * (kBurst - kTimed));
  // Ever slower scans: explored at most kExploreSpread times as rarely.
  ProbePlan slow;
  slow.timed_probe(c, 1e3);
  slow.timed_scan(c, 1e6);
  r = route_queries(slow, c, 2 * ProbePlan::kExploreSpread * kEvery);
  CHECK_EQ(r.probed, static_cast<int>(2 * ProbePlan::kExploreSpread * kEvery) - 2 * kBurst);
}

HARNESS_MAIN()
