// MIHIndex search: probing the substring tables (de-duplication, bucket checks), the cost model
// that stops probing where a scan costs less, and the k-NN and range drivers.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <shared_mutex>

#include "deephash/codes.hpp"
#include "deephash/mih_index.hpp"
#include "deephash/simd.hpp"
#include "deephash/threads.hpp"
#include "allow_list.hpp"
#include "flat_scan.hpp"
#include "huge_pages.hpp"
#include "mih_state.hpp"
#include "radix_sort.hpp"
#include "topk.hpp"

namespace deephash {
namespace {

// Cost model, in nanoseconds of one core. Probing: a table lookup (random reads of the bucket's
// offsets and positions, prefetched a few lookups ahead) and a candidate check (a random read of
// its code, prefetched far ahead; with substring tests or with a seen bit, see Dedup), fitted to
// probe times on 1M-10M clustered and uniform codes of 64-256 bits (benchmarks/bench_mih.py,
// AMD EPYC, 2026-11-29).
// Scanning: what the kernels' calibration measured for this code size (kernels::scan_speed), times
// the overhead a whole search adds to it (reading the codes from memory, top-k), also measured.
constexpr double kLookupNs = 200.0;
constexpr double kTestedCandidateNs = 7.0;
constexpr double kSeenCandidateNs = 15.0;
// A search of this many queries or more scans in groups (the batch kernels).
constexpr std::size_t kBatchQueries = 16;
constexpr double kBatchScanOverhead = 1.1;
constexpr double kSingleScanOverhead = 1.3;
// Range search, per hit, with the output both pay for (result arrays, the copy to the caller):
// a probe collects its hits per distance and radix-sorts their positions (20 ns per hit in
// single-query probes of structured 10M x 64-bit codes at r = 4, fitted over 1,000 queries with
// 65 to 65,000 hits); a scan finds them in order, but its filter and result assembly cost 60 ns
// per hit on the same codes (queries with 44,000 hits against queries with 18). With the scan's
// cost taken as 5 ns per hit, queries with tens of thousands of hits gave up probing half-way and
// were scanned for 2-3x what finishing the probe would have cost.
constexpr double kRangeProbeHitNs = 20.0;
constexpr double kRangeScanHitNs = 60.0;
// What one core streams from memory, in bytes per nanosecond: a single query's scan of a database
// larger than the caches goes no faster.
constexpr double kStreamBytesPerNs = 15.0;

double binomial(int n, int r) {
  if (r < 0 || r > n) return 0.0;
  double c = 1.0;
  for (int i = 1; i <= r; ++i) c = c * (n - r + i) / i;
  return c;
}

// Calls fn(mask) for every mask of `bits` bits with exactly r bits set (Gosper's hack).
template <class F>
bool for_each_mask(int bits, int r, F&& fn) {
  if (r == 0) return fn(std::uint64_t{0});
  const std::uint64_t limit = bits == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits);
  std::uint64_t mask = (std::uint64_t{1} << r) - 1;
  while (mask < limit) {
    if (!fn(mask)) return false;
    const std::uint64_t c = mask & (~mask + 1);
    const std::uint64_t rr = mask + c;
    if (rr == 0) break;
    mask = (((rr ^ mask) >> 2) / c) | rr;
  }
  return true;
}

// All keys at exactly Hamming radius r from `key` within `bits` bits, into a reused buffer.
std::vector<std::uint64_t>& keys_at_radius(std::uint64_t key, int bits, int r) {
  thread_local std::vector<std::uint64_t> keys;
  keys.clear();
  for_each_mask(bits, r, [&](std::uint64_t mask) {
    keys.push_back(key ^ mask);
    return true;
  });
  return keys;
}

// De-duplication: a candidate counts once, at the first probe of the query that reaches it. Two
// ways, chosen by the table count m:
// - Few tables (m <= kMaxTestedTables): no "seen" state. A probe of table t at radius r reaches
//   exactly the codes whose substring t is within r of the query's, so a candidate's own
//   substrings tell whether an earlier probe reached it: each probe carries one test per
//   earlier-probed table, run on the candidate's code, which is fetched for its distance anyway.
//   (On 10M clustered 64-bit codes the per-item bits below cost about 40% of a query: a random
//   access to mark each candidate, another to clear it.)
// - More tables: one bit per stored item and thread (SeenSet), O(1) per candidate where m tests
//   would cost more. A query sets the bit of each item it meets, lists each word it makes
//   non-zero, and clears those words when it ends, so no query pays for the whole array.
constexpr int kMaxTestedTables = 4;

struct SeenSet {
  std::vector<std::uint64_t, HugePageAllocator<std::uint64_t>> bits;
  std::vector<std::uint32_t> touched;  // words made non-zero by the current query
  std::size_t ntouched = 0;

  // Starts a query over n stored items.
  void start(std::size_t n) {
    const std::size_t words = (n + 63) / 64;
    if (bits.size() < words) bits.resize(words, 0);
    ntouched = 0;
  }
  // Room to list `more` words.
  std::uint32_t* reserve(std::size_t more) {
    if (touched.size() < ntouched + more) touched.resize(2 * (ntouched + more));
    return touched.data();
  }
  void finish() noexcept {
    for (std::size_t i = 0; i < ntouched; ++i) bits[touched[i]] = 0;
    ntouched = 0;
  }
};
thread_local SeenSet t_seen;

// Starts the query's SeenSet when it uses one, and clears it however the probing returns.
struct SeenScope {
  SeenSet* seen;
  SeenScope(bool use, std::size_t n) : seen(use ? &t_seen : nullptr) {
    if (seen) seen->start(n);
  }
  ~SeenScope() {
    if (seen) seen->finish();
  }
};

struct BucketScratch {
  std::vector<std::uint32_t> positions;
  std::vector<dist_t> distances;
  std::vector<kernels::SubstringTest> tests;
  std::vector<std::uint32_t> run;  // a contiguous table's bucket, as a list of positions
};
thread_local BucketScratch t_bucket;

// How the current probe tells new candidates: a SeenSet, or substring tests.
struct Dedup {
  SeenSet* seen;
  const kernels::SubstringTest* tests;
  std::size_t ntests;
};

// Table t's test for query q (max_distance to be set per probe).
kernels::SubstringTest substring_test(const SubstringTable& table, const std::uint8_t* q, std::size_t cs) {
  kernels::SubstringTest t{};
  const std::uint32_t begin = static_cast<std::uint32_t>(table.bit_begin());
  if (cs >= 8) {  // the 8 bytes holding the substring, not reaching past the code
    t.offset = std::min<std::uint32_t>(begin / 8, static_cast<std::uint32_t>(cs - 8));
    t.shift = begin - 8 * t.offset;
  } else {
    t.offset = 0;
    t.shift = begin;
  }
  t.mask = table.bits() == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << table.bits()) - 1;
  t.query_value = table.key_of(q, cs);
  t.max_distance = -1;
  return t;
}

// How far ahead the mark loop prefetches: each word is a possible cache miss, and the loop body
// is a few cycles, so many misses must be in flight at once.
constexpr std::size_t kSeenAhead = 64;

// The new, live items of one bucket and their distances (in b); returns how many.
std::size_t check_bucket(const SubstringTable& table, std::uint64_t key, const std::uint8_t* q,
                         const std::uint8_t* codes, std::size_t cs, const std::uint8_t* skip, const Dedup& dedup,
                         const kernels::KernelTable& kt, BucketScratch& b) {
  std::uint32_t begin, end;
  table.bucket(key, &begin, &end);
  const std::size_t size = end - begin;
  if (b.positions.size() < size) {
    b.positions.resize(size);
    b.distances.resize(size);
  }
  const std::uint32_t* first;
  if (table.contiguous()) {  // the bucket is the run of positions [begin, end)
    if (b.run.size() < size) b.run.resize(size);
    for (std::size_t i = 0; i < size; ++i) b.run[i] = begin + static_cast<std::uint32_t>(i);
    first = b.run.data();
  } else {
    first = table.positions() + begin;
  }
  std::uint32_t* out = b.positions.data();
  if (dedup.seen == nullptr) {
    std::size_t m = kt.gather_new(q, codes, first, size, cs, dedup.tests, dedup.ntests, out, b.distances.data());
    if (skip) {
      std::size_t live = 0;
      for (std::size_t i = 0; i < m; ++i) {
        out[live] = out[i];
        b.distances[live] = b.distances[i];
        live += !skip[out[i]];
      }
      m = live;
    }
    return m;
  }
  SeenSet& seen = *dedup.seen;
  std::uint64_t* bits = seen.bits.data();
  std::uint32_t* touched = seen.reserve(size);
  std::size_t m = 0, nt = seen.ntouched;
  for (std::size_t i = 0; i < size; ++i) {
    if (i + kSeenAhead < size) __builtin_prefetch(bits + (first[i + kSeenAhead] >> 6), 1);
    const std::uint32_t p = first[i];
    std::uint64_t& word = bits[p >> 6];
    const std::uint64_t bit = std::uint64_t{1} << (p & 63);
    if (word & bit) continue;
    touched[nt] = p >> 6;
    nt += word == 0;
    word |= bit;
    if (skip && skip[p]) continue;
    out[m++] = p;
  }
  seen.ntouched = nt;
  kt.gather(q, codes, out, m, cs, b.distances.data());
  return m;
}

}  // namespace

// A probed query's range hits: ids ordered by (distance, id), and how many lie at each distance.
struct ProbedHits {
  std::vector<idx_t> ids;
  std::vector<std::uint32_t> per_distance;  // radius + 1 counts
};

namespace {

// A range probe's hits as they come, one list of storage positions per distance: ordering them
// is then a sort of 32-bit positions within each distance (storage order is id order where ids
// increase with it), with no per-hit growth of a result vector. Reused by the thread's queries.
struct RangeCollector {
  std::vector<std::vector<std::uint32_t>> at;  // at[d]: positions of the hits at distance d
  std::vector<std::uint32_t> scratch;
  std::size_t total = 0;

  // A thread keeps each list's memory between queries up to this many entries (4 MiB).
  static constexpr std::size_t kKeptHits = std::size_t{1} << 20;

  void start(int radius) {
    if (at.size() < static_cast<std::size_t>(radius) + 1) at.resize(static_cast<std::size_t>(radius) + 1);
    for (std::vector<std::uint32_t>& v : at) {
      if (v.capacity() > kKeptHits)
        std::vector<std::uint32_t>().swap(v);
      else
        v.clear();
    }
    total = 0;
  }
  void add(dist_t d, std::uint32_t p) {
    at[static_cast<std::size_t>(d)].push_back(p);
    ++total;
  }
  // Adds the candidates within `radius` of a bucket's (d, pos), which it rewrites: they are first
  // packed to the front without a branch (a hit is a coin flip in a crowded bucket, about one
  // candidate in five at r = 4 on structured 64-bit codes: a branch per candidate mispredicted
  // often), then appended to their distance's list.
  void add_within(dist_t* d, std::uint32_t* pos, std::size_t count, int radius) {
    std::size_t hits = 0;
    for (std::size_t c = 0; c < count; ++c) {
      const dist_t dc = d[c];
      pos[hits] = pos[c];
      d[hits] = dc;
      hits += dc <= radius;
    }
    for (std::size_t i = 0; i < hits; ++i) at[static_cast<std::size_t>(d[i])].push_back(pos[i]);
    total += hits;
  }
  // Orders the hits by (distance, id) into `out`.
  void finish(int radius, const CodeStore& store, ProbedHits& out) {
    const std::size_t n = store.size();
    const int key_bits = n <= 1 ? 1 : 64 - __builtin_clzll(static_cast<unsigned long long>(n - 1));
    out.ids.resize(total);
    out.per_distance.resize(static_cast<std::size_t>(radius) + 1);
    idx_t* o = out.ids.data();
    const std::uint32_t* ids32 = store.ids32();
    const idx_t top_id = store.next_id() - 1;  // above every id held
    const int id_bits = top_id <= 1 ? 1 : 64 - __builtin_clzll(static_cast<unsigned long long>(top_id));
    for (int d = 0; d <= radius; ++d) {
      std::vector<std::uint32_t>& v = at[static_cast<std::size_t>(d)];
      out.per_distance[static_cast<std::size_t>(d)] = static_cast<std::uint32_t>(v.size());
      if (store.ids_increasing()) {
        sort_positions(v, scratch, key_bits);
        for (const std::uint32_t p : v) *o++ = store.id_at(p);
      } else if (ids32) {  // 32-bit ids (sorted storage): radix-sort the ids themselves
        for (std::uint32_t& p : v) p = ids32[p];
        sort_positions(v, scratch, std::min(id_bits, 32));
        for (const std::uint32_t id : v) *o++ = static_cast<idx_t>(id);
      } else {
        idx_t* first = o;
        for (const std::uint32_t p : v) *o++ = store.id_at(p);
        std::sort(first, o);
      }
    }
    if (scratch.capacity() > kKeptHits) std::vector<std::uint32_t>().swap(scratch);
  }
};
// The thread's collector. Out of line on purpose: where the reference to a thread_local comes from
// an inlined expression, GCC recomputes the address (a __tls_get_addr call in a shared library)
// at each use, which was once per hit (7% of a range probe with tens of thousands of hits).
__attribute__((noinline)) RangeCollector& range_collector() {
  thread_local RangeCollector collector;
  return collector;
}

// What collecting and ordering h probed range hits costs.
double range_order_ns(std::size_t hits) noexcept { return static_cast<double>(hits) * kRangeProbeHitNs; }

// A batch's account of its probes: each probed query adds what probing it cost, plus a scan's
// cost when it gave up (it is then scanned too). Once the probes have cost more than scanning
// those queries would have, the rest of the batch is scanned (uniform codes, large k, clustered
// codes whose buckets hold far more than estimated).
constexpr std::size_t kLedgerMinProbes = 16;  // fewer say little (one costly query among four did)
struct ProbeLedger {
  std::atomic<std::size_t> probed{0};
  std::atomic<std::int64_t> spent_ns{0};
  bool scan_the_rest(double scan_ns) const noexcept {
    const std::size_t p = probed.load(std::memory_order_relaxed);
    return p >= kLedgerMinProbes &&
           static_cast<double>(spent_ns.load(std::memory_order_relaxed)) > static_cast<double>(p) * scan_ns;
  }
  void add(double cost_ns) noexcept {
    probed.fetch_add(1, std::memory_order_relaxed);
    spent_ns.fetch_add(static_cast<std::int64_t>(cost_ns), std::memory_order_relaxed);
  }
};

// Routes the queries of a search that uses the plan (mih_plan.hpp) and times their paths: a
// probe, the scan of the queries sent to it, and for a probe that gave up, both. Probes run one
// query to a thread, so a probe's share of the search's time is its time over the queries probed
// side by side; a scan runs the queries it got on every thread, and each query's share is the
// scan's time over them. Without a plan, every query is probed and nothing is timed.
class PlanClock {
 public:
  PlanClock(ProbePlan* plan, std::size_t klass, std::size_t nq)
      : plan_(plan), klass_(klass),
        side_by_side_(static_cast<double>(std::min<std::size_t>(nq, static_cast<std::size_t>(get_num_threads())))),
        timed_(plan ? nq : 0, 0), gave_up_(plan ? nq : 0, -1.0) {}
  // Whether query q is to be probed (else it goes to the scan without a probe).
  bool probe(std::size_t q) {
    if (!plan_) return true;
    const ProbePlan::Route r = plan_->route(klass_);
    timed_[q] = r.timed ? (r.explores ? kExploring : kTimed) : 0;
    return r.probe;
  }
  double start() const noexcept { return plan_ ? steady_ns() : 0.0; }
  // Query q's probe began at t0 and did `work` by the cost model.
  void probed(std::size_t q, double t0, bool answered, double work) {
    if (!plan_ || !timed_[q]) return;
    const double took = steady_ns() - t0;
    plan_->timed_work(took, work);
    const double ns = took / side_by_side_;
    if (answered)
      plan_->timed_probe(klass_, ns, timed_[q] == kExploring);
    else
      gave_up_[q] = ns;  // completed once the query is scanned
  }
  // The scan of these rows (queries) began at t0; `count` queries were scanned in all.
  void scanned(const std::vector<std::size_t>& rows, double t0, std::size_t count = 0) {
    if (!plan_ || rows.empty()) return;
    const double each = (steady_ns() - t0) / static_cast<double>(count ? count : rows.size());
    for (std::size_t q : rows) {
      if (!timed_[q]) continue;
      // A probe that gave up explored the probe, not the scan after it.
      plan_->timed_scan(klass_, each, timed_[q] == kExploring && gave_up_[q] < 0.0);
      if (gave_up_[q] >= 0.0) plan_->timed_probe(klass_, gave_up_[q] + each, timed_[q] == kExploring);
    }
  }

 private:
  static constexpr std::uint8_t kTimed = 1, kExploring = 2;
  ProbePlan* plan_;
  std::size_t klass_;
  double side_by_side_;
  std::vector<std::uint8_t> timed_;  // per query: not timed, timed, or timed and exploring
  std::vector<double> gave_up_;
};

double candidate_ns(bool tested) noexcept { return tested ? kTestedCandidateNs : kSeenCandidateNs; }

// The work a query's probing has done so far, in the cost model's nanoseconds.
double work_done(const MIHQueryStats& st, bool tested) noexcept {
  return static_cast<double>(st.buckets) * kLookupNs + static_cast<double>(st.candidates) * candidate_ns(tested);
}

// Probes every key of `table` at exactly Hamming radius r around `key` (prefetching ahead, since
// each lookup is a cache miss) and calls visit(distances, positions, count) with each bucket's new
// live candidates (arrays the visitor may rewrite). Stops early and returns false once work_done
// passes limit() (checked after every bucket).
template <class Limit, class Visit>
bool probe_radius(const SubstringTable& table, std::uint64_t key, int r, const std::uint8_t* q,
                  const std::uint8_t* codes, std::size_t cs, const Dedup& dedup, const std::uint8_t* skip,
                  MIHQueryStats& st, Limit&& limit, Visit&& visit) {
  const std::vector<std::uint64_t>& probe = keys_at_radius(key, table.bits(), r);
  BucketScratch& b = t_bucket;
  const kernels::KernelTable& kt = *kernels::plan_for(cs).single;
  for (std::size_t i = 0; i < probe.size(); ++i) {
    if (i + 8 < probe.size()) table.prefetch_offsets(probe[i + 8]);
    if (i + 4 < probe.size()) table.prefetch_positions(probe[i + 4]);
    if (i + 2 < probe.size()) table.prefetch_codes(probe[i + 2], codes, cs);
    const std::size_t found = check_bucket(table, probe[i], q, codes, cs, skip, dedup, kt, b);
    ++st.buckets;
    st.candidates += static_cast<std::int64_t>(found);
    visit(b.distances.data(), b.positions.data(), found);
    if (work_done(st, dedup.seen == nullptr) > limit()) return false;
  }
  return true;
}

std::vector<std::size_t> flagged_rows(const std::vector<std::uint8_t>& flags) {
  std::vector<std::size_t> rows;
  for (std::size_t q = 0; q < flags.size(); ++q)
    if (flags[q]) rows.push_back(q);
  return rows;
}

std::vector<std::uint8_t> gather_rows(const std::uint8_t* queries, const std::vector<std::size_t>& rows,
                                      std::size_t cs) {
  std::vector<std::uint8_t> out(rows.size() * cs);
  for (std::size_t i = 0; i < rows.size(); ++i) std::memcpy(out.data() + i * cs, queries + rows[i] * cs, cs);
  return out;
}

// One range result from the scanned queries' rows (`part`, row part_row[q]) and the probed ones'
// hits, both already ordered by (distance, id): scanned rows are copied as they are, probed ones
// as their ids, with the distances filled in from the per-distance counts. Frees the hits.
RangeResult merge_range_results(std::size_t nq, const std::vector<std::uint8_t>& to_scan, const RangeResult& part,
                                const std::vector<std::size_t>& part_row, std::vector<ProbedHits>& hits) {
  RangeResult res;
  res.lims.assign(nq + 1, 0);
  for (std::size_t q = 0; q < nq; ++q) {
    const std::size_t count = to_scan[q] ? static_cast<std::size_t>(part.lims[part_row[q] + 1] - part.lims[part_row[q]])
                                         : hits[q].ids.size();
    res.lims[q + 1] = res.lims[q] + static_cast<std::int64_t>(count);
  }
  res.distances.resize(static_cast<std::size_t>(res.lims[nq]));
  res.ids.resize(res.distances.size());
  // Both come ordered by (distance, id): scanned rows as the scan wrote them, probed ones as
  // their ids and per-distance counts.
  parallel_for(nq, [&](std::size_t q0, std::size_t q1) {
    for (std::size_t q = q0; q < q1; ++q) {
      const std::size_t off = static_cast<std::size_t>(res.lims[q]);
      if (to_scan[q]) {
        const auto b = static_cast<std::size_t>(part.lims[part_row[q]]), e = static_cast<std::size_t>(part.lims[part_row[q] + 1]);
        std::copy(part.distances.begin() + static_cast<std::ptrdiff_t>(b), part.distances.begin() + static_cast<std::ptrdiff_t>(e),
                  res.distances.begin() + static_cast<std::ptrdiff_t>(off));
        std::copy(part.ids.begin() + static_cast<std::ptrdiff_t>(b), part.ids.begin() + static_cast<std::ptrdiff_t>(e),
                  res.ids.begin() + static_cast<std::ptrdiff_t>(off));
        continue;
      }
      std::copy(hits[q].ids.begin(), hits[q].ids.end(), res.ids.begin() + static_cast<std::ptrdiff_t>(off));
      dist_t* d = res.distances.data() + off;
      for (std::size_t dist = 0; dist < hits[q].per_distance.size(); ++dist)
        d = std::fill_n(d, hits[q].per_distance[dist], static_cast<dist_t>(dist));
      std::vector<idx_t>().swap(hits[q].ids);  // release as we go
    }
  });
  return res;
}

}  // namespace

ScanView MIHIndex::scan_view() const noexcept {
  return ScanView{s_->store_.codes(), s_->store_.ids(), s_->store_.size(), s_->store_.code_size(), nbits_, s_->store_.ids_increasing(),
                  s_->removed_.empty() ? nullptr : s_->removed_.data(), s_->store_.ids32()};
}

// ---- search -------------------------------------------------------------------------------------

// A filter that allows a share f of the items leaves probing f of the candidates it pays for (the
// others are fetched, then skipped), and it must probe about 1/f as deep to find k of them: the
// budget shrinks by f so the comparison with a scan stays fair.

static double filtered_share(const FilterView& f) noexcept {
  if (f.strategy == FilterStrategy::None || f.view.n == 0) return 1.0;
  return std::max(static_cast<double>(f.live) / static_cast<double>(f.view.n), 1e-3);
}

// The filter's view of the index (read lock held); a filter with many allowed items is probed.
FilterView MIHIndex::filtered_locked(const IdSelector* allow, FilterStrategy* strategy) const {
  const std::uint8_t* removed = s_->removed_.empty() ? nullptr : s_->removed_.data();
  FilterView f = filter_view(s_->store_, scan_view(), removed, s_->store_.size() - s_->n_removed_, allow);
  if (f.strategy == FilterStrategy::Mask) f.strategy = FilterStrategy::Probe;
  if (strategy) *strategy = f.strategy;
  return f;
}

double MIHIndex::scan_cost(std::size_t nq) const noexcept {
  const std::size_t cs = s_->store_.code_size();
  const kernels::ScanSpeed speed = kernels::scan_speed(cs);
  const double per_code =
      nq >= kBatchQueries
          ? speed.batch_ns * kBatchScanOverhead
          : std::max(speed.single_ns * kSingleScanOverhead, static_cast<double>(cs) / kStreamBytesPerNs);
  return static_cast<double>(s_->store_.size()) * per_code;
}

namespace {

// How many positions each table holds at substring distance exactly r (0 or 1) from keys[j]: one
// bucket lookup at r = 0, one per substring bit at r = 1.
void shell_sizes(const std::vector<SubstringTable>& tables, const std::uint64_t* keys, int r,
                 std::vector<std::size_t>& out) {
  out.assign(tables.size(), 0);
  for (std::size_t j = 0; j < tables.size(); ++j) {
    if (r == 0) {
      out[j] = tables[j].bucket_size(keys[j]);
      continue;
    }
    for (int b = 0; b < tables[j].bits(); ++b) out[j] += tables[j].bucket_size(keys[j] ^ (std::uint64_t{1} << b));
  }
}

}  // namespace

bool MIHIndex::probe_knn(const std::uint8_t* q, CountingTopK& top, MIHQueryStats& st, double budget,
                         const std::uint8_t* skip) const {
  const std::size_t cs = s_->store_.code_size(), n = s_->store_.size();
  const kernels::KernelTable& kt = *kernels::plan_for(cs).single;
  const std::uint8_t* codes = s_->store_.codes();
  // Candidates are ranked by distance and storage position, mapped to ids at the end (see
  // search_with_stats).
  const auto key = [](std::size_t p) { return static_cast<idx_t>(p); };
  // The tail (recent adds, not yet in the tables) is scanned last, through the filter kernel with
  // the k-th distance the tables gave: the probes are exact for the indexed items, and a tail item
  // can only enter the result within that bound. (Scanned first, every tail item went through
  // the top-k: 1.45-2.2x the search time with a tail of 0.1-1% of 1M codes.)
  const auto scan_tail = [&] {
    const std::size_t tail = n - s_->indexed_;
    if (tail == 0) return;
    BucketScratch& b = t_bucket;
    if (b.positions.size() < tail) {
      b.positions.resize(tail);
      b.distances.resize(tail);
    }
    const std::size_t m = kt.filter(q, codes + s_->indexed_ * cs, tail, cs, top.max_accepted(), b.positions.data(),
                                    b.distances.data());
    for (std::size_t i = 0; i < m; ++i) {
      const std::size_t p = s_->indexed_ + b.positions[i];
      if (!(skip && skip[p])) top.push(b.distances[i], key(p));
    }
  };
  if (s_->indexed_ == 0) {
    scan_tail();
    st.radius = 0;
    return true;
  }
  thread_local std::vector<std::uint64_t> qkey;
  qkey.resize(static_cast<std::size_t>(s_->m_));
  int max_bits = 0;
  for (int j = 0; j < s_->m_; ++j) {
    qkey[j] = s_->tables_[j].key_of(q, cs);
    max_bits = std::max(max_bits, s_->tables_[j].bits());
  }
  // The probe of table j at radius r follows those of every table at radius < r and of the
  // tables t before it in this radius's order: a candidate is new unless its substring t is
  // within r (t before j) or r - 1 (t after j) of the query's.
  const bool tested = s_->m_ <= kMaxTestedTables;
  const SeenScope scope(!tested, n);
  kernels::SubstringTest all[kMaxTestedTables], tests[kMaxTestedTables];
  for (int t = 0; tested && t < s_->m_; ++t) all[t] = substring_test(s_->tables_[t], q, cs);
  double work = 0.0;
  // Within a radius, any order of the tables keeps the bound (after i + 1 tables at radius r,
  // every item within m*r + i has been seen), so at r <= 1, where counting costs a lookup per
  // bucket, the tables go sparsest shell first: clustered codes crowd some tables' buckets far
  // more than others', and the search often stops before the crowded ones. Structured 10M x 64,
  // m = 3: 2.5x (k = 1), 1.7x (k = 10) and 1.4x (k = 100) fewer candidates.
  thread_local std::vector<int> order, rank;
  thread_local std::vector<std::size_t> shell;
  order.resize(static_cast<std::size_t>(s_->m_));
  rank.resize(order.size());
  for (int r = 0; r <= max_bits; ++r) {
    for (int i = 0; i < s_->m_; ++i) order[i] = i;
    if (r <= 1) {
      shell_sizes(s_->tables_, qkey.data(), r, shell);
      std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return shell[x] < shell[y]; });
    }
    for (int i = 0; i < s_->m_; ++i) rank[order[i]] = i;
    for (int idx = 0; idx < s_->m_; ++idx) {
      const int j = order[idx];
      const SubstringTable& table = s_->tables_[j];
      const int bits = table.bits();
      if (r > bits) {  // that table is exhausted: every indexed item was seen
        scan_tail();
        return st.radius = r, true;
      }
      const double keys = binomial(bits, r);
      const double expected = keys * static_cast<double>(s_->indexed_) / std::ldexp(1.0, bits);
      if (work + keys * kLookupNs + expected * candidate_ns(tested) > budget) return false;
      std::size_t ntests = 0;
      for (int t = 0; tested && t < s_->m_; ++t) {
        const int reached = rank[t] < idx ? r : r - 1;
        if (t == j || reached < 0) continue;
        tests[ntests] = all[t];
        tests[ntests++].max_distance = static_cast<dist_t>(std::min(reached, s_->tables_[t].bits()));
      }
      // The exact bucket of the first table probed holds every item at distance 0, in increasing
      // position (a table lists each bucket's positions in order). Where positions order like the
      // ids (the collector maps no keys), once k of them are in nothing later can enter, and the
      // rest of the bucket is not pushed: the copies of a query among short clustered codes
      // (about 1,100 a query over 1M structured 16-bit codes, one table) made k = 1 0.65x as fast
      // as the flat scan, which stops at the k-th copy.
      const bool copies_first = r == 0 && idx == 0 && !top.maps_keys();
      std::size_t copies = 0;
      // Clustered codes can put far more candidates in one probe than estimated: past the scan's
      // cost, give up (the caller scans this query).
      if (!probe_radius(table, qkey[j], r, q, codes, cs, Dedup{scope.seen, tests, ntests}, skip, st,
                        [budget] { return budget; },
                        [&](const dist_t* d, const std::uint32_t* pos, std::size_t found) {
                          for (std::size_t c = 0; c < found; ++c) {
                            if (copies_first) {
                              if (copies >= top.k()) break;
                              copies += d[c] == 0;
                            }
                            top.push(d[c], key(pos[c]));
                          }
                        }))
        return false;
      work = work_done(st, tested);
      // Every indexed item within m*r + idx of q has now been seen (pigeonhole).
      if (top.has_k_within(static_cast<dist_t>(s_->m_ * r + idx))) {
        scan_tail();
        st.radius = r;
        return true;
      }
    }
  }
  scan_tail();
  st.radius = max_bits;
  return true;
}

void MIHIndex::search(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                      idx_t* ids) const {
  search_with_stats(queries, nq, k, distances, ids, nullptr);
}

void MIHIndex::search_filtered(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                               idx_t* ids, const IdSelector& allow, FilterStrategy* strategy) const {
  search_with_stats(queries, nq, k, distances, ids, nullptr, &allow, strategy);
}

void MIHIndex::search_with_stats(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                                 idx_t* ids, MIHQueryStats* stats, const IdSelector* allow,
                                 FilterStrategy* strategy) const {
  if (k == 0) throw InvalidArgument("k must be > 0, got 0");
  check_padding_bits(queries, nq, static_cast<std::size_t>(nbits_), "queries");
  std::shared_lock<SharedMutex> lock(s_->mu_);
  s_->store_.check_mapping();
  const std::size_t cs = s_->store_.code_size();
  std::vector<MIHQueryStats> local(stats ? 0 : nq);
  MIHQueryStats* st = stats ? stats : local.data();
  for (std::size_t q = 0; q < nq; ++q) st[q] = MIHQueryStats{};
  const FilterView f = filtered_locked(allow, strategy);
  const ScanView& view = f.view;
  const std::uint8_t* skip = f.skip;
  const std::size_t live = f.live;
  if (f.strategy == FilterStrategy::Gather) {  // a few allowed items: scanning them beats any probe
    knn_scan(view, queries, nq, k, distances, ids);
    for (std::size_t q = 0; q < nq; ++q) st[q].scanned = true;
    s_->st_queries_ += static_cast<std::int64_t>(nq);
    s_->st_scans_ += static_cast<std::int64_t>(nq);
    return;
  }
  if (live == 0) {
    std::fill(distances, distances + nq * k, kMissingDistance);
    std::fill(ids, ids + nq * k, kMissingId);
    return;
  }
  const std::size_t kk = std::min(k, live);
  std::vector<std::uint8_t> to_scan(nq, 0);
  // Shared across the batch: once most probed queries turned out cheaper to scan (uniform codes,
  // large k), the remaining queries go straight to the linear scan.
  ProbeLedger ledger;
  const bool tested = s_->m_ <= kMaxTestedTables;
  // Unfiltered searches of few queries learn which plan pays (mih_plan.hpp), and what a scan costs.
  ProbePlan* plan = allow || nq >= kBatchQueries ? nullptr : &s_->plan_;
  const std::size_t klass = ProbePlan::knn_class(k);
  const double model_budget = scan_cost(nq) * filtered_share(f);
  const double budget = plan ? plan->budget(klass, model_budget) : model_budget;
  PlanClock clock(plan, klass, nq);
  std::atomic<std::int64_t> unprobed{0};
  const CountingTopK::KeyToId to_id{
      [](const void* store, CountingTopK::Entry* e, std::size_t n) {
        const CodeStore& s = *static_cast<const CodeStore*>(store);
        for (std::size_t i = 0; i < n; ++i) e[i].second = s.id_at(static_cast<std::size_t>(e[i].second));
      },
      &s_->store_};
  parallel_for(nq, [&](std::size_t q0, std::size_t q1) {
    CountingTopK top;
    for (std::size_t q = q0; q < q1; ++q) {
      if (ledger.scan_the_rest(budget)) {
        to_scan[q] = 1;
        continue;
      }
      if (!clock.probe(q)) {
        to_scan[q] = 1;
        unprobed.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      // Looking each candidate's id up would be a memory access per candidate (1.8x the search
      // time on 1M clustered 64-bit codes in insertion order; 1.2x at k = 10 on 10M sorted ones):
      // the probe ranks by storage position instead. Where ids increase with position (an index
      // too small to be sorted, caller ids given in increasing order) that breaks ties exactly as
      // the id does; otherwise the top-k keeps every candidate tied at the k-th distance and
      // orders them by id at the end (its key -> id map).
      const bool by_position = s_->store_.ids_increasing();
      const double t0 = clock.start();
      top.reset(kk, static_cast<dist_t>(nbits_), false, by_position ? CountingTopK::KeyToId{} : to_id);
      if (probe_knn(queries + q * cs, top, st[q], budget, skip)) {
        if (by_position) {  // positions order like the ids: map the k found
          top.finish(distances + q * k, ids + q * k, k);
          idx_t* row = ids + q * k;
          for (std::size_t j = 0; j < k; ++j)
            if (row[j] >= 0) row[j] = s_->store_.id_at(static_cast<std::size_t>(row[j]));
        } else {
          top.finish(distances + q * k, ids + q * k, k);
        }
        ledger.add(work_done(st[q], tested));
        if (plan) plan->record(klass, true, work_done(st[q], tested), budget);
        clock.probed(q, t0, true, work_done(st[q], tested));
      } else {
        to_scan[q] = 1;
        ledger.add(work_done(st[q], tested) + budget);
        if (plan) plan->record(klass, false, work_done(st[q], tested), budget);
        clock.probed(q, t0, false, work_done(st[q], tested));
      }
    }
  }, std::min<std::size_t>(nq, 4 * static_cast<std::size_t>(get_num_threads())));
  s_->st_unprobed_ += unprobed.load();

  const std::vector<std::size_t> scan_rows = flagged_rows(to_scan);
  if (!scan_rows.empty()) {
    const std::vector<std::uint8_t> sub = gather_rows(queries, scan_rows, cs);
    std::vector<dist_t> d(scan_rows.size() * k);
    std::vector<idx_t> id(scan_rows.size() * k);
    const double t0 = clock.start();
    knn_scan(view, sub.data(), scan_rows.size(), k, d.data(), id.data());
    clock.scanned(scan_rows, t0);
    for (std::size_t i = 0; i < scan_rows.size(); ++i) {
      std::memcpy(distances + scan_rows[i] * k, d.data() + i * k, k * sizeof(dist_t));
      std::memcpy(ids + scan_rows[i] * k, id.data() + i * k, k * sizeof(idx_t));
      st[scan_rows[i]].scanned = true;
    }
  }
  std::int64_t cand = 0, buck = 0, scans = 0, rad = 0;
  for (std::size_t q = 0; q < nq; ++q) {
    cand += st[q].candidates;
    buck += st[q].buckets;
    scans += st[q].scanned;
    rad += std::max(0, st[q].radius);
  }
  s_->st_queries_ += static_cast<std::int64_t>(nq);
  s_->st_candidates_ += cand;
  s_->st_buckets_ += buck;
  s_->st_scans_ += scans;
  s_->st_radius_ += rad;
}

void MIHIndex::table_radii(const std::uint64_t* keys, int r, int a, std::vector<int>& reach) const {
  const int m = s_->m_;
  reach.resize(static_cast<std::size_t>(m));
  for (int j = 0; j < m; ++j) reach[static_cast<std::size_t>(j)] = j <= a ? r : r - 1;
  // Any a + 1 tables may search out to r: take those whose shell at distance exactly r holds the
  // fewest positions, where counting the shells takes few lookups (r <= 1). Clustered codes crowd
  // some substrings' buckets far more than others': on structured 10M x 64-bit codes, m = 3,
  // r = 4 (two tables at 1, one at 0), the best choice per query meets 1.3x fewer candidates
  // than the fixed one on average (1.5x at the median).
  if (a + 1 >= m || r > 1) return;
  thread_local std::vector<std::size_t> shell;
  thread_local std::vector<int> order;
  shell_sizes(s_->tables_, keys, r, shell);
  order.resize(reach.size());
  for (int j = 0; j < m; ++j) order[static_cast<std::size_t>(j)] = j;
  // ties: the lower table first, as the fixed choice
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return shell[x] < shell[y]; });
  for (int i = 0; i < m; ++i) reach[static_cast<std::size_t>(order[static_cast<std::size_t>(i)])] = i <= a ? r : r - 1;
}

bool MIHIndex::probe_range(const std::uint8_t* q, int radius, ProbedHits& hits, MIHQueryStats& st, double budget,
                           const std::uint8_t* skip) const {
  const std::size_t cs = s_->store_.code_size(), n = s_->store_.size();
  const kernels::KernelTable& kt = *kernels::plan_for(cs).single;
  const std::uint8_t* codes = s_->store_.codes();
  // Pigeonhole with radius = m*r + a: a + 1 tables at substring radius r, the others at r - 1.
  const int r = radius / s_->m_, a = radius % s_->m_;
  thread_local std::vector<std::uint64_t> keys;
  thread_local std::vector<int> reach;
  if (s_->indexed_ > 0) {  // else no table is built yet: only the tail is scanned
    keys.resize(static_cast<std::size_t>(s_->m_));
    for (int j = 0; j < s_->m_; ++j) keys[static_cast<std::size_t>(j)] = s_->tables_[static_cast<std::size_t>(j)].key_of(q, cs);
    table_radii(keys.data(), r, a, reach);
  }
  double cost = 0.0;
  for (int j = 0; j < s_->m_ && s_->indexed_ > 0; ++j) {
    const int bits = s_->tables_[j].bits();
    const int rj = std::min(reach[static_cast<std::size_t>(j)], bits);
    for (int s = 0; s <= rj; ++s) {
      const double keys = binomial(bits, s);
      cost += keys * (kLookupNs + candidate_ns(s_->m_ <= kMaxTestedTables) * static_cast<double>(s_->indexed_) / std::ldexp(1.0, bits));
    }
  }
  if (cost > budget) return false;
  RangeCollector& found = range_collector();
  found.start(radius);
  if (n > s_->indexed_) {
    std::vector<dist_t>& d = t_bucket.distances;
    if (d.size() < n - s_->indexed_) d.resize(n - s_->indexed_);
    kt.distances(q, codes + s_->indexed_ * cs, n - s_->indexed_, cs, d.data());
    for (std::size_t p = s_->indexed_; p < n; ++p)
      if (!(skip && skip[p]) && d[p - s_->indexed_] <= radius) found.add(d[p - s_->indexed_], static_cast<std::uint32_t>(p));
  }
  if (s_->indexed_ == 0) {
    found.finish(radius, s_->store_, hits);
    return true;
  }
  // Table j is probed after tables t < j, each out to its radius: a candidate is new unless its
  // substring t is within that radius of the query's for some t < j.
  const bool tested = s_->m_ <= kMaxTestedTables;
  const SeenScope scope(!tested, n);
  std::vector<kernels::SubstringTest>& tests = t_bucket.tests;
  tests.clear();
  for (int j = 0; j < s_->m_; ++j) {
    const SubstringTable& table = s_->tables_[j];
    const std::uint64_t key = keys[static_cast<std::size_t>(j)];
    const int rj = std::min(reach[static_cast<std::size_t>(j)], table.bits());
    for (int s = 0; s <= rj; ++s) {
      // Clustered codes put far more candidates in the probed buckets than the estimate assumed:
      // once the work done passes what a scan would cost, give up at once (the caller scans
      // instead). Both sides pay per hit found, the scan more: a probe that has found many hits
      // may spend that much more on candidates before a scan is cheaper.
      const auto scan_ns = [&] {
        return budget + static_cast<double>(found.total) * kRangeScanHitNs - range_order_ns(found.total);
      };
      const bool within = probe_radius(table, key, s, q, codes, cs, Dedup{scope.seen, tests.data(), tests.size()},
                                       skip, st, scan_ns,
                                       [&](dist_t* d, std::uint32_t* pos, std::size_t count) {
                                         found.add_within(d, pos, count, radius);
                                       });
      if (!within || work_done(st, tested) > scan_ns()) return false;
    }
    if (tested && rj >= 0) {
      tests.push_back(substring_test(table, q, cs));
      tests.back().max_distance = static_cast<dist_t>(rj);
    }
  }
  found.finish(radius, s_->store_, hits);
  st.radius = r;
  return true;
}

RangeResult MIHIndex::range_search(const std::uint8_t* queries, std::size_t nq, int radius) const {
  return range_search_with(queries, nq, radius, nullptr, nullptr);
}

RangeResult MIHIndex::range_search_filtered(const std::uint8_t* queries, std::size_t nq, int radius,
                                            const IdSelector& allow, FilterStrategy* strategy) const {
  return range_search_with(queries, nq, radius, &allow, strategy);
}

RangeResult MIHIndex::range_search_with(const std::uint8_t* queries, std::size_t nq, int radius,
                                        const IdSelector* allow, FilterStrategy* strategy) const {
  if (radius < 0) throw InvalidArgument("radius must be >= 0, got " + std::to_string(radius));
  check_padding_bits(queries, nq, static_cast<std::size_t>(nbits_), "queries");
  std::shared_lock<SharedMutex> lock(s_->mu_);
  s_->store_.check_mapping();
  radius = std::min(radius, nbits_);
  const std::size_t cs = s_->store_.code_size();
  const FilterView f = filtered_locked(allow, strategy);
  const ScanView& view = f.view;
  const std::uint8_t* skip = f.skip;
  if (f.strategy == FilterStrategy::Gather) {
    s_->st_queries_ += static_cast<std::int64_t>(nq);
    s_->st_scans_ += static_cast<std::int64_t>(nq);
    return range_scan(view, queries, nq, radius);
  }
  std::vector<ProbedHits> hits(nq);
  std::vector<std::uint8_t> to_scan(nq, 0);
  ProbeLedger ledger;  // as in search_with_stats
  const bool tested = s_->m_ <= kMaxTestedTables;
  ProbePlan* plan = allow || nq >= kBatchQueries ? nullptr : &s_->plan_;
  const std::size_t klass = ProbePlan::range_class(radius);
  const double model_budget = scan_cost(nq) * filtered_share(f);
  const double budget = plan ? plan->budget(klass, model_budget) : model_budget;
  PlanClock clock(plan, klass, nq);
  std::atomic<std::int64_t> unprobed{0};
  parallel_for(nq, [&](std::size_t q0, std::size_t q1) {
    for (std::size_t q = q0; q < q1; ++q) {
      if (ledger.scan_the_rest(budget)) {
        to_scan[q] = 1;
        continue;
      }
      if (!clock.probe(q)) {
        to_scan[q] = 1;
        unprobed.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      MIHQueryStats st;
      const double t0 = clock.start();
      if (probe_range(queries + q * cs, radius, hits[q], st, budget, skip)) {
        // A probe's account includes ordering its hits, less what a scan pays to deliver them.
        const double h = static_cast<double>(hits[q].ids.size());
        const double cost = work_done(st, tested) + range_order_ns(hits[q].ids.size()) - h * kRangeScanHitNs;
        ledger.add(cost);
        if (plan) plan->record(klass, true, cost, budget);
        clock.probed(q, t0, true, work_done(st, tested) + range_order_ns(hits[q].ids.size()));
      } else {
        to_scan[q] = 1;
        ledger.add(work_done(st, tested) + budget);
        if (plan) plan->record(klass, false, work_done(st, tested), budget);
        clock.probed(q, t0, false, work_done(st, tested));
      }
      s_->st_candidates_ += st.candidates;
      s_->st_buckets_ += st.buckets;
    }
  }, std::min<std::size_t>(nq, 4 * static_cast<std::size_t>(get_num_threads())));
  s_->st_queries_ += static_cast<std::int64_t>(nq);
  s_->st_unprobed_ += unprobed.load();
  std::size_t scanned = 0;
  for (std::uint8_t f : to_scan) scanned += f;
  if (2 * scanned >= nq) {
    // Mostly scanned: scan every query, and hand the scan's arrays over as they are. Merging the
    // few probed answers in would copy every hit (hundreds of MB on large radii), which costs
    // more than scanning those few queries again.
    s_->st_scans_ += static_cast<std::int64_t>(nq);
    const double t0 = clock.start();
    RangeResult res = range_scan(view, queries, nq, radius);
    if (plan) clock.scanned(flagged_rows(to_scan), t0, nq);
    return res;
  }
  const std::vector<std::size_t> scan_rows = flagged_rows(to_scan);
  RangeResult part;
  std::vector<std::size_t> part_row(nq, 0);  // row in `part` of each scanned query
  if (!scan_rows.empty()) {
    const std::vector<std::uint8_t> sub = gather_rows(queries, scan_rows, cs);
    const double t0 = clock.start();
    part = range_scan(view, sub.data(), scan_rows.size(), radius);
    clock.scanned(scan_rows, t0);
    for (std::size_t i = 0; i < scan_rows.size(); ++i) part_row[scan_rows[i]] = i;
    s_->st_scans_ += static_cast<std::int64_t>(scan_rows.size());
  }

  return merge_range_results(nq, to_scan, part, part_row, hits);
}

}  // namespace deephash
