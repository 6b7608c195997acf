// ProbePlan: what the recent probes of a MIHIndex were worth, by kind of search, so that queries
// of a kind whose probes have lately cost more than they saved go straight to the linear scan.
//
// A query's probe stops once its work passes what scanning would cost, and the query is then
// scanned too. Where the scan wins for nearly every query (uniform codes of 128 bits and more, or
// a large k), every query paid for a probe and a scan: single queries over 1M uniform 128-bit
// codes, k = 100, took 1.56 ms against the flat scan's 0.54 ms. A batch stops probing after a few
// such queries (its ProbeLedger), but each single query is a batch of its own.
//
// The plan keeps, per class of search (k-NN by the bit length of k; range search by radius), a
// moving average of what each probe was worth, as a fraction of the scan it stood against: a probe
// that answered its query saved (scan - probe) / scan, one that gave up lost probe / scan (so a
// probe that gives up at once, before any lookup, costs nothing). Each probe weighs 1/8. While the
// average is at least 0, every query is probed; below it, one query in kExploreEvery still is, as
// any other (an exploring probe with less budget could never answer where probes answer at more
// than that share of a scan's cost, and the class would stay scanned), so that the average follows
// changes in the data or the queries; the others are scanned without a probe. Answers are exact
// either way: only where the time goes changes.
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
#include <cstddef>
#include <cstdint>

namespace deephash {

class ProbePlan {
 public:
  static constexpr std::size_t kKnnClasses = 64, kRangeClasses = 32;
  static constexpr std::size_t kClasses = kKnnClasses + kRangeClasses;
  static constexpr std::uint32_t kExploreEvery = 128;

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

  // Whether the next query of class c should be probed (see the top of the file).
  bool should_probe(std::size_t c) noexcept {
    if (worth_[c].load(std::memory_order_relaxed) >= 0) return true;
    return explored_[c].fetch_add(1, std::memory_order_relaxed) % kExploreEvery == 0;
  }

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

  // The average worth of class c's probes, in [-1, 1].
  double worth(std::size_t c) const noexcept {
    return static_cast<double>(worth_[c].load(std::memory_order_relaxed)) / kOne;
  }

  // Forgets every class: each starts again by probing.
  void reset() noexcept {
    for (std::size_t c = 0; c < kClasses; ++c) {
      worth_[c].store(kOne, std::memory_order_relaxed);
      explored_[c].store(0, std::memory_order_relaxed);
    }
  }

 private:
  static constexpr std::int32_t kOne = 1 << 16;
  std::atomic<std::int32_t> worth_[kClasses];
  std::atomic<std::uint32_t> explored_[kClasses];
};

}  // namespace deephash
