// ProbePlan: which path, the probe or the linear scan, has lately answered a MIHIndex's single
// queries of each kind faster, so that queries of a kind whose probes cost more than they save go
// straight to the scan.
//
// A query's probe stops once its work passes what scanning would cost, and the query is then
// scanned too. Where the scan wins for nearly every query (uniform codes of 128 bits and more, or
// a large k), every query paid for a probe and a scan: single queries over 1M uniform 128-bit
// codes, k = 100, took 1.56 ms against the flat scan's 0.54 ms. A batch stops probing after a few
// such queries (its ProbeLedger), but each single query is a batch of its own.
//
// Two signals, per class of search (k-NN by the bit length of k; range search by radius):
// - The cost model's: a moving average of what each probe was worth, as a fraction of the scan it
//   stood against: a probe that answered its query saved (scan - probe) / scan, one that gave up
//   lost probe / scan (so a probe that gives up at once, before any lookup, costs nothing).
// - The clock's: moving averages of the measured time per query of each path, the probe (with the
//   scan after it when it gave up) and the scan alone. The model's scan is one core's, and its
//   probe costs were fitted on one CPU: a single query's scan runs on every core, from the L3
//   where the codes fit there, and a lookup costs what the memory of the machine at hand costs.
//   Structured 1M x 128-bit codes, r = 16, on an AMD EPYC: every probe answered within the
//   model's budget, in 286 us, where the two-thread scan took 115 us.
// The faster path on average by the clock takes a class's queries; until both paths have been
// timed, the path the model favours (probe while its average is at least 0). Every kExploreEvery
// queries or more, the other path takes one query, so that both averages follow changes in the
// data or the queries. Where that is the scan it takes kScanBurst in a row, and only the last
// kScanTimed are timed: each path runs faster on the caches it left warm. On that EPYC (16 MB of
// codes, an L3 of 32 MB shared with the tables and whatever else the host runs) a scan timed right
// after probes took 564 us, the next ones 317, 264, 252 and 228 us, against 140 us among scans;
// timed alone, or as the second of a pair (330-750 us), the scan never won back the queries of
// uniform 1M x 128-bit range searches at r = 16, which it answers in about 110 us to the probe's
// 150-290 (the plan stayed on the probe, at 0.4-0.9x the flat scan). The slower the other path,
// the rarer it is explored (every kExploreEvery x its time over the taken path's, up to
// kExploreSpread times as rare), so that exploring costs at most about kScanBurst /
// kExploreEvery of the search time. While the other path has never been timed, it is explored
// every kFirstExploreEvery queries. Answers are exact either way: only where the time goes changes.
//
// Only searches of fewer than 16 queries use and feed the plan: a larger batch has its
// ProbeLedger, and its budget per query is a batch scan's, so what its probes are worth does not
// carry over to single queries. (Batches fed it at first: structured 1M x 128-bit codes, k = 100,
// where 92% of the probes answered just under a batch scan's cost and the scan wins only for the
// rest, went from 1.23-1.28x the flat scan to 0.94-0.99x, every query scanned.) Filtered searches
// neither use nor feed it (the filter changes what a probe costs). Rebuilding the tables resets it.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace deephash {

class ProbePlan {
 public:
  static constexpr std::size_t kKnnClasses = 64, kRangeClasses = 32;
  static constexpr std::size_t kClasses = kKnnClasses + kRangeClasses;
  // Every kExploreEvery queries of a class or more (see route), the last takes the path the class
  // does not, the last kScanBurst where that is the scan (of which only the last kScanTimed are
  // timed: the first warm the caches); while that path has never been timed, every
  // kFirstExploreEvery queries.
  static constexpr std::uint32_t kExploreEvery = 128, kFirstExploreEvery = 16, kScanBurst = 4, kScanTimed = 2;
  static constexpr std::int64_t kExploreSpread = 16;

  ProbePlan() noexcept { reset(); }
  ProbePlan(const ProbePlan&) = delete;
  ProbePlan& operator=(const ProbePlan&) = delete;

  // k-NN with this k: one class per bit length of k (1, 2-3, 4-7, ...).
  static std::size_t knn_class(std::size_t k) noexcept {
    std::size_t c = 0;
    while (k > 1 && c + 1 < kKnnClasses) {
      k >>= 1;
      ++c;
    }
    return c;
  }
  // Range search with this radius: one class per radius up to 30, then one for all larger radii.
  static std::size_t range_class(int radius) noexcept {
    return kKnnClasses + static_cast<std::size_t>(std::clamp(radius, 0, static_cast<int>(kRangeClasses) - 1));
  }

  // Where the next query of class c goes (see the top of the file): probed or scanned, whether it
  // explores (takes the path the class does not), and whether its time should count (the first
  // queries of an exploring burst of scans warm the caches for the last).
  struct Route {
    bool probe;
    bool explores;
    bool timed;
  };
  Route route(std::size_t c) noexcept {
    const std::uint32_t n = count_[c].fetch_add(1, std::memory_order_relaxed);
    const Times t = times(c);
    const bool probe = prefers_probe(c, t);
    const std::int64_t taken = probe ? t.probe : t.scan, other = probe ? t.scan : t.probe;
    // The other path explored every kExploreEvery queries, or every kExploreEvery x (its time over
    // the taken path's, at most kExploreSpread): exploring then costs at most about kScanBurst /
    // kExploreEvery of the search time, however slow the other path is.
    const std::uint32_t every =
        other == 0 ? kFirstExploreEvery
                   : kExploreEvery * static_cast<std::uint32_t>(std::clamp<std::int64_t>(taken > 0 ? other / taken : 1, 1, kExploreSpread));
    const std::uint32_t i = n % every;
    if (i + (probe ? kScanBurst : 1) < every) return {probe, false, true};
    return {!probe, true, i + kScanTimed >= every};
  }

  // Where class c sends its queries, exploration aside: to the probe (true) or to the scan.
  bool prefers_probe(std::size_t c) const noexcept { return prefers_probe(c, times(c)); }
  // Queries of class c that asked the plan since the last reset (modulo 2^32).
  std::uint32_t queries(std::size_t c) const noexcept { return count_[c].load(std::memory_order_relaxed); }

  // Records a probe of class c: whether it answered its query, its cost and the scan's (budget),
  // in the cost model's nanoseconds.
  void record(std::size_t c, bool answered, double cost, double scan) noexcept {
    if (!(scan > 0.0)) return;
    const double x = std::clamp(answered ? (scan - cost) / scan : -cost / scan, -1.0, 1.0);
    const auto target = static_cast<std::int32_t>(x * kOne);
    std::int32_t cur = worth_[c].load(std::memory_order_relaxed);
    while (!worth_[c].compare_exchange_weak(cur, cur + (target - cur) / 8, std::memory_order_relaxed)) {
    }
  }

  // Records the measured time per query of a path of class c: a probe (with the scan after it, if
  // it gave up) or a scan without a probe, in nanoseconds. An exploring query's time weighs 1/4,
  // others' 1/8: the path a class does not take is timed rarely, but one probe's time says little
  // of the next one's (weighing 1/2, a quick probe now and then sent uniform 1M x 128-bit range
  // queries at r = 16 back to probing for a hundred queries at a time).
  void timed_probe(std::size_t c, double ns, bool explored = false) noexcept {
    average(probe_time_[c], ns, explored ? 2 : 3, probe_cap(c));
  }
  void timed_scan(std::size_t c, double ns, bool explored = false) noexcept {
    average(scan_time_[c], ns, explored ? 2 : 3, kNoCap);
  }

  // Records a probe's measured time against its work by the cost model (both in nanoseconds): the
  // model's nanoseconds in this machine's.
  void timed_work(double ns, double model_ns) noexcept {
    if (model_ns >= kMinRateWork && ns > 0.0) average(rate_, ns / model_ns * 1024.0, 3, kNoCap);
  }
  // The budget of a probe of class c: the model's (a scan's cost, in the model's nanoseconds), or
  // where the scan has been timed and the model's nanoseconds have been measured, kBudgetScans
  // timed scans in the model's nanoseconds, if less. A probe that gives up has then cost at most
  // that many scans in this machine's time. Not one: probe times have a long tail (uniform 10M x
  // 64-bit codes, k = 1, on that EPYC: most probes answer in under 0.7 scans, some need 1-2), and
  // with a budget of one scan those gave up and cost two, which set the probe's average near the
  // scan's (the plan then scanned 20-48% of the queries, 1.12-1.36x the flat scan's speed where
  // probing every query gives 1.42-1.50x).
  static constexpr double kBudgetScans = 2.0;
  double budget(std::size_t c, double model_budget) const noexcept {
    const double rate = ns_of(rate_) / 1024.0, scan = scan_ns(c);
    return rate > 0.0 && scan > 0.0 ? std::min(model_budget, kBudgetScans * scan / rate) : model_budget;
  }

  // The average worth of class c's probes by the cost model, in [-1, 1].
  double worth(std::size_t c) const noexcept {
    return static_cast<double>(worth_[c].load(std::memory_order_relaxed)) / kOne;
  }
  // The average measured time per query of each path of class c, in nanoseconds (0: not timed). A
  // probe that gives up stops at the budget above, once the machine's rate is known: its path then
  // costs at most about kBudgetScans + 1 scans, whatever it cost before (the first probes run to
  // the model's budget, which can be several scans more).
  double probe_ns(std::size_t c) const noexcept { return static_cast<double>(times(c).probe) / kTimeUnits; }
  double scan_ns(std::size_t c) const noexcept { return ns_of(scan_time_[c]); }

  // Forgets every class: each starts again by probing.
  void reset() noexcept {
    for (std::size_t c = 0; c < kClasses; ++c) {
      worth_[c].store(kOne, std::memory_order_relaxed);
      count_[c].store(0, std::memory_order_relaxed);
      probe_time_[c].store(0, std::memory_order_relaxed);
      scan_time_[c].store(0, std::memory_order_relaxed);
    }
    rate_.store(0, std::memory_order_relaxed);
  }

 private:
  static constexpr std::int32_t kOne = 1 << 16;
  static constexpr double kMinRateWork = 2000.0;  // smaller probes time mostly the clock and the call
  static constexpr double kTimeUnits = 16.0;  // fixed point: 1/16 ns
  static double ns_of(const std::atomic<std::int64_t>& a) noexcept {
    return static_cast<double>(a.load(std::memory_order_relaxed)) / kTimeUnits;
  }
  // Moves a time average, taken as at most `cap`, 1/2^shift of the way to a sample. A sample
  // counts at most 4x the average, so that one query the machine held up (another process, a page
  // fault) cannot tip the plan.
  static constexpr std::int64_t kNoCap = std::numeric_limits<std::int64_t>::max() / 8;
  static void average(std::atomic<std::int64_t>& a, double ns, int shift, std::int64_t cap) noexcept {
    if (!(ns >= 0.0)) return;
    const auto x = std::max<std::int64_t>(1, static_cast<std::int64_t>(std::min(ns, 1e15) * kTimeUnits));
    std::int64_t cur = a.load(std::memory_order_relaxed), next = 0;
    do {
      const std::int64_t was = std::min(cur, cap);
      next = was == 0 ? x : was + (std::min(x, 4 * was) - was) / (std::int64_t{1} << shift);
    } while (!a.compare_exchange_weak(cur, next, std::memory_order_relaxed));
  }
  // What the probe's average is taken as at most (see probe_ns).
  std::int64_t probe_cap(std::size_t c) const noexcept {
    const std::int64_t scan = scan_time_[c].load(std::memory_order_relaxed);
    return scan > 0 && rate_.load(std::memory_order_relaxed) > 0 ? static_cast<std::int64_t>((kBudgetScans + 1.0) * static_cast<double>(scan)) : kNoCap;
  }
  // Class c's time averages in fixed point, the probe's capped as probe_ns says (0: not timed).
  struct Times {
    std::int64_t probe, scan;
    bool timed() const noexcept { return probe > 0 && scan > 0; }
  };
  Times times(std::size_t c) const noexcept {
    return {std::min(probe_time_[c].load(std::memory_order_relaxed), probe_cap(c)), scan_time_[c].load(std::memory_order_relaxed)};
  }
  // The faster path by the clock once both are timed, else the model's.
  bool prefers_probe(std::size_t c, const Times& t) const noexcept {
    return t.timed() ? t.probe <= t.scan : worth_[c].load(std::memory_order_relaxed) >= 0;
  }
  std::atomic<std::int32_t> worth_[kClasses];
  std::atomic<std::uint32_t> count_[kClasses];
  std::atomic<std::int64_t> probe_time_[kClasses];
  std::atomic<std::int64_t> scan_time_[kClasses];
  std::atomic<std::int64_t> rate_;  // measured ns per model ns of probe work, x 1024
};

// Nanoseconds on a steady clock, for timing a path.
inline double steady_ns() noexcept {
  return static_cast<double>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

}  // namespace deephash
