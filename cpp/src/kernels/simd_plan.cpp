// Per-code-size kernel plans: which level's table a scan of codes of one size runs, measured once
// per process on first use of that size.
//
// No rule picks the fastest level for every CPU and code size (on one AMD EPYC the AVX-512
// kernels used to lose to AVX2 at 256 bits, and a CPU's wide-vector clock rules differ by vendor),
// so each level this CPU runs is timed on the same synthetic block: one query at a time through
// `filter` (the `single` plan) and a group of queries through the level's batch path (`prepare` +
// `filter_prepared` where it has them, `filter` otherwise; the `batch` plan). Rounds alternate
// between levels and each level keeps its best round, so a burst of load on a shared machine
// does not decide. The scalar level is the reference, without the POPCNT instruction: it is timed
// only where it is the one level.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "deephash/simd.hpp"

namespace deephash {
namespace kernels {
namespace {

constexpr std::size_t kQueries = 16;  // per timed call of a batch, also the single plan's repeats (at most)
constexpr int kRounds = 5;
volatile std::size_t g_sink = 0;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Calibrated {
  WidthPlan plan;
  ScanSpeed speed;
};

Calibrated calibrate(std::size_t cs) {
  std::vector<const KernelTable*> levels;
  for (SimdLevel l : available_simd_levels())
    if (l != SimdLevel::Scalar) levels.push_back(table_for(l));
  if (levels.empty()) levels.push_back(table_for(SimdLevel::Scalar));

  // About 16 KiB of codes (a scan's L1 piece), at least 16 codes; a bound that few random codes
  // pass, as in a scan once its top-k has filled. Very wide codes (the largest piece is 16 codes)
  // time fewer queries, so that no width costs more than about kQueries x 16 KiB of work per call.
  const std::size_t n = std::max<std::size_t>(16, (16u << 10) / cs / 16 * 16);
  const std::size_t nq = std::max<std::size_t>(1, std::min(kQueries, kQueries * (16u << 10) / (n * cs)));
  std::vector<std::uint8_t> codes(n * cs), queries(nq * cs);
  std::uint64_t x = 0x9E3779B97F4A7C15ULL ^ cs;
  for (auto* v : {&codes, &queries})
    for (auto& b : *v) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      b = static_cast<std::uint8_t>(x >> 24);
    }
  const dist_t bound = static_cast<dist_t>(2 * cs);  // nbits / 4
  std::vector<std::uint32_t> positions(n);
  std::vector<dist_t> distances(n);
  std::size_t prepared_max = 0;
  for (const KernelTable* t : levels)
    if (t->prepared_bytes) prepared_max = std::max(prepared_max, t->prepared_bytes(cs));
  std::vector<std::uint8_t> prepared((n + kPreparedGroup) * prepared_max);

  std::vector<double> single(levels.size(), 1e30), batch(levels.size(), 1e30);
  std::size_t sink = 0;
  for (int round = 0; round <= kRounds; ++round) {  // round 0 warms caches and is not counted
    for (std::size_t i = 0; i < levels.size(); ++i) {
      const KernelTable& t = *levels[i];
      auto t0 = std::chrono::steady_clock::now();
      for (std::size_t q = 0; q < nq; ++q)
        sink += t.filter(queries.data() + q * cs, codes.data(), n, cs, bound, positions.data(), distances.data());
      const double s = seconds_since(t0);
      const bool prep = t.prepared_bytes && t.prepared_bytes(cs) > 0;
      t0 = std::chrono::steady_clock::now();
      if (prep) {
        t.prepare(codes.data(), n, cs, prepared.data());
        for (std::size_t q = 0; q < nq; ++q)
          sink += t.filter_prepared(queries.data() + q * cs, prepared.data(), n, cs, bound, positions.data(),
                                    distances.data());
      }
      const double b = prep ? seconds_since(t0) : s;
      if (round > 0) {
        single[i] = std::min(single[i], s);
        batch[i] = std::min(batch[i], b);
      }
    }
  }
  g_sink = sink;  // the timed calls have an observable result
  const std::size_t s = static_cast<std::size_t>(std::min_element(single.begin(), single.end()) - single.begin());
  const std::size_t b = static_cast<std::size_t>(std::min_element(batch.begin(), batch.end()) - batch.begin());
  const double per_pair = 1e9 / static_cast<double>(nq * n);
  return {{levels[s], levels[b]}, {single[s] * per_pair, batch[b] * per_pair}};
}

// Plans for code sizes up to kSmall bytes (1024 bits) in an array of atomics; larger sizes in a map.
constexpr std::size_t kSmall = 128;
std::atomic<const Calibrated*> g_small[kSmall + 1];
std::mutex g_mu;  // guards g_large and g_small_owned
std::map<std::size_t, std::unique_ptr<Calibrated>> g_large;
std::vector<std::unique_ptr<Calibrated>> g_small_owned;

Calibrated calibrate_or_guess(std::size_t cs) noexcept {
  try {
    return calibrate(cs);
  } catch (...) {  // out of memory while timing: the best level, and a guess of its speed
    const KernelTable* best = table_for(best_simd_level());
    return {{best, best}, {0.1 * static_cast<double>(cs) / 8.0, 0.1 * static_cast<double>(cs) / 8.0}};
  }
}

// The measured plan of a code size, measuring it on first use (two threads may both measure; one
// result is kept).
Calibrated calibrated(std::size_t cs) noexcept {
  if (cs <= kSmall) {
    if (const Calibrated* p = g_small[cs].load(std::memory_order_acquire)) return *p;
    const Calibrated c = calibrate_or_guess(cs);
    std::lock_guard<std::mutex> lock(g_mu);
    if (const Calibrated* p = g_small[cs].load(std::memory_order_acquire)) return *p;
    try {
      g_small_owned.push_back(std::make_unique<Calibrated>(c));
      g_small[cs].store(g_small_owned.back().get(), std::memory_order_release);
    } catch (...) {
    }
    return c;
  }
  {
    std::lock_guard<std::mutex> lock(g_mu);
    auto it = g_large.find(cs);
    if (it != g_large.end()) return *it->second;
  }
  const Calibrated c = calibrate_or_guess(cs);
  std::lock_guard<std::mutex> lock(g_mu);
  try {
    g_large.emplace(cs, std::make_unique<Calibrated>(c));
  } catch (...) {
  }
  return c;
}

}  // namespace

WidthPlan plan_for(std::size_t code_size) noexcept {
  if (const KernelTable* forced = forced_table()) return {forced, forced};
  return calibrated(code_size).plan;
}

ScanSpeed scan_speed(std::size_t code_size) noexcept { return calibrated(code_size).speed; }

}  // namespace kernels

std::vector<std::pair<std::size_t, kernels::WidthPlan>> simd_plans() {
  std::vector<std::pair<std::size_t, kernels::WidthPlan>> out;
  for (std::size_t cs = 1; cs <= kernels::kSmall; ++cs)
    if (const kernels::Calibrated* p = kernels::g_small[cs].load(std::memory_order_acquire)) out.emplace_back(cs, p->plan);
  std::lock_guard<std::mutex> lock(kernels::g_mu);
  for (const auto& [cs, p] : kernels::g_large) out.emplace_back(cs, p->plan);
  return out;
}

}  // namespace deephash
