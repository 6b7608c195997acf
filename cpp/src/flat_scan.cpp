#include "flat_scan.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <utility>
#include <vector>

#include "deephash/simd.hpp"
#include "deephash/threads.hpp"
#include "radix_sort.hpp"
#include "topk.hpp"

namespace deephash {
namespace {

using detail::bound_for_slice;
using detail::kNoSlice;
using detail::pack_bound;

// About 256 KiB of codes per block (stays in L2 while a group of queries streams over it),
// a multiple of 16 codes (the kernels' unrolled step).
std::size_t block_codes(std::size_t code_size) {
  const std::size_t b = std::max<std::size_t>(256, (256u << 10) / code_size);
  return b / 16 * 16;
}

// Bytes of prepared codes per sub-block: small enough to stay in L1 while a group of queries
// runs over it.
constexpr std::size_t kPreparedBytes = 16u << 10;
// A single query's k-NN walks a block in pieces of at least this many codes (an L1-sized piece
// of short codes holds more): at 512 bits L1-sized pieces of 256 codes made a query over 100k
// codes 1.2x-1.3x slower than whole blocks.
constexpr std::size_t kSinglePieceCodes = 2048;
// Preparing a code costs about what it saves two or three queries: fewer queries filter the
// plain codes.
constexpr std::size_t kPreparedMinQueries = 4;

// A scan's working memory. The buffers belong to the thread and are kept between searches (grown,
// never shrunk): allocating a block-sized buffer per search cost page faults and zeroing that
// weighed more than the scan itself on small databases. A scan nested in another on the same
// thread gets buffers of its own.
struct ScanBuffers {
  std::vector<std::uint32_t> positions;
  std::vector<dist_t> distances;
  std::vector<std::uint32_t> histogram;  // per distance, for sample_bound
  std::vector<std::uint8_t> prepared;    // a piece of codes in the batch kernel's prepared layout
  bool in_use = false;
};
thread_local ScanBuffers t_buffers;

struct Scratch {
  ScanBuffers own;  // used only when the thread's buffers are taken
  ScanBuffers& buf;
  std::uint32_t* positions;
  dist_t* distances;
  std::size_t block;
  std::size_t prepared_codes = 0;  // codes per prepared piece; 0: the batch level has no prepared path
  std::size_t piece_codes;         // codes per L1-sized piece of plain codes
  std::size_t single_piece_codes;  // codes per piece of a single query's k-NN (see filter_block)
  // The kernels for this code size (kernels::plan_for): `kt` runs one query at a time, `batch`
  // groups of queries; fixed for the whole search.
  const kernels::KernelTable& kt;
  const kernels::KernelTable& batch;
  Scratch(std::size_t block_size, std::size_t code_size, const kernels::WidthPlan& plan)
      : buf(t_buffers.in_use ? own : t_buffers), block(block_size),
        piece_codes(std::max<std::size_t>(64, kPreparedBytes / code_size / 64 * 64)),
        single_piece_codes(std::max<std::size_t>(kSinglePieceCodes, piece_codes)), kt(*plan.single),
        batch(*plan.batch) {
    buf.in_use = true;
    if (buf.positions.size() < block) {
      buf.positions.resize(block);
      buf.distances.resize(block);
    }
    positions = buf.positions.data();
    distances = buf.distances.data();
    const std::size_t per_code = batch.prepared_bytes ? batch.prepared_bytes(code_size) : 0;
    if (per_code) {
      prepared_codes = std::max<std::size_t>(16, kPreparedBytes / per_code / 16 * 16);
      if (buf.prepared.size() < (prepared_codes + kernels::kPreparedGroup) * per_code)
        buf.prepared.resize((prepared_codes + kernels::kPreparedGroup) * per_code);
    }
  }
  ~Scratch() { buf.in_use = false; }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  std::uint8_t* prepared() { return buf.prepared.data(); }
};

// Runs the filter of each query q in [q0, q1) over codes [b0, b0 + bn) with the bound
// bound_of(q) (negative: skip the query) and hands its hits to on_hits(q, first, m): positions
// (relative to `first`) and distances in s.positions / s.distances. Where the kernel level has a
// prepared layout and the group is large enough, the block is walked in L1-sized sub-blocks, each
// prepared once for the group. Where the bound can tighten (k-NN: bound_tightens), a single query
// walks the block in pieces too (single_piece_codes), reading its bound before each, so that a
// loose starting bound lets one piece's codes through, not a whole block's (a single query over
// 100k structured 16-bit codes: 33 -> 12 us; 32-bit: 20 -> 10 us).
//
// `halves` (nullptr: none): per query, whether its filter should bound each code by half its bits
// first (see halves_pay); a group of one query then runs the level's filter_halves, and a query
// whose codes mostly pass that bound is switched back to the plain filter for good.
template <class BoundOf, class OnHits>
void filter_block(const ScanView& db, const std::uint8_t* queries, std::size_t q0, std::size_t q1,
                  std::size_t b0, std::size_t bn, Scratch& s, BoundOf bound_of, OnHits on_hits,
                  bool bound_tightens, std::atomic<std::uint8_t>* halves = nullptr) {
  if (s.prepared_codes == 0 || q1 - q0 < kPreparedMinQueries) {
    // Plain codes; a group walks the block in L1-sized pieces too.
    const kernels::KernelTable& kt = q1 - q0 < kPreparedMinQueries ? s.kt : s.batch;
    const std::size_t piece = q1 - q0 > 1 ? s.piece_codes : bound_tightens ? s.single_piece_codes : bn;
    const bool may_halve = halves && q1 - q0 == 1 && kt.filter_halves && kt.halves_for_size(db.code_size);
    for (std::size_t p0 = b0; p0 < b0 + bn; p0 += piece) {
      const std::size_t pn = std::min(piece, b0 + bn - p0);
      const std::uint8_t* codes = db.codes + p0 * db.code_size;
      for (std::size_t q = q0; q < q1; ++q) {
        const dist_t bound = bound_of(q);
        if (bound < 0) continue;
        const std::uint8_t* query = queries + q * db.code_size;
        if (may_halve && halves[q].load(std::memory_order_relaxed)) {
          bool gave_up = false;
          on_hits(q, p0, kt.filter_halves(query, codes, pn, db.code_size, bound, s.positions, s.distances, &gave_up));
          if (gave_up) halves[q].store(0, std::memory_order_relaxed);
          continue;
        }
        on_hits(q, p0, kt.filter(query, codes, pn, db.code_size, bound, s.positions, s.distances));
      }
    }
    return;
  }
  const kernels::KernelTable& kt = s.batch;
  for (std::size_t p0 = b0; p0 < b0 + bn; p0 += s.prepared_codes) {
    const std::size_t pn = std::min(s.prepared_codes, b0 + bn - p0);
    kt.prepare(db.codes + p0 * db.code_size, pn, db.code_size, s.prepared());
    for (std::size_t q = q0; q < q1; ++q) {
      const dist_t bound = bound_of(q);
      if (bound < 0) continue;
      on_hits(q, p0, kt.filter_prepared(queries + q * db.code_size, s.prepared(), pn, db.code_size,
                                        bound, s.positions, s.distances));
    }
  }
}

// A first bound on each query's k-th distance, from the distances to a sample of the database
// (its first codes, or runs spread over it: see sample_layout; counted in nbits + 1 bins): the
// k-th smallest of them. It is inclusive and holds for every part of the database, so every
// collector of the query starts from it instead of accepting everything until its buffer first
// fills. Where the bound cannot be strict (keyed_by_position) every code at it passes the filter
// until it tightens, so a larger sample pays off at large k (1M x 128-bit codes, ids in random
// order, k = 100: 0.88x -> 0.93-0.95x the speed of the same scan with increasing ids).
std::size_t sample_codes(std::size_t k, bool keyed) {
  return std::max<std::size_t>(1024, (keyed ? 64 : 8) * k);
}

// Codes a single query scans on the calling thread before other threads take slices (see
// knn_scan): 128 KiB of 16-bit codes, a few microseconds.
constexpr std::size_t kHeadCodes = 65536;

// Whether the database holds on average at least 8 copies of every possible code (8-bit codes
// from 2,048 on, 16-bit ones from 524,288): there a query's k nearest are often k exact copies
// found early.
bool duplicates_expected(const ScanView& db) noexcept {
  return db.nbits < 32 && db.n >= (std::size_t{8} << db.nbits);
}

// Where ids do not grow with storage position, the collectors rank candidates by position, keep
// every tie at the k-th distance and look up the ids of the k and of those ties at the end
// (CountingTopK's key -> id map). Looking up each accepted candidate's id was a cache miss per
// candidate (the ids of a block are read sparsely): 1M x 128-bit codes with ids in random order
// scanned 12% slower than with increasing ids at k = 100.
bool keyed_by_position(const ScanView& db) noexcept { return !db.ids_increasing; }

// Where a sample's codes lie: `runs` runs of `run` codes, run r from code r * stride. A scan in id
// order (ids growing with position) samples the first codes, whose k-th distance it can claim as
// slice 0's. A keyed scan samples runs spread over the database: its storage may be sorted by
// code (MIHIndex), where the first codes are near copies of one another and of no query (a
// simulation of the scan over 1M structured 128-bit codes sorted by code, k = 100: 64 runs of 100
// codes let through 1,355 candidates a query, the first 6,400 codes 2,189, a scan in id order
// 1,145; on uniform codes all three about 1,140).
struct SampleLayout {
  std::size_t runs, run, stride;
};
constexpr std::size_t kSampleRuns = 64;

SampleLayout sample_layout(const ScanView& db, std::size_t sample) noexcept {
  if (!keyed_by_position(db) || db.n < 8 * sample) return {1, sample, 0};
  return {kSampleRuns, (sample + kSampleRuns - 1) / kSampleRuns, db.n / kSampleRuns};
}

// Whether a query's filter should test half of each code's bits first (filter_halves), judged from
// its sample: a code passes that test when the bits of its half differ in at most `bound`, which
// is likely where its whole distance is at most about twice that. Where at most one sample code in
// eight lies within 2 * bound + 4, the halves pay (a simulation over 10k-100k clustered codes of
// 128 and 256 bits: 4-7% of the codes passed, the sample estimated 4-8%; on uniform codes every
// code passes and the estimate says so).
bool halves_pay(const std::vector<std::uint32_t>& histogram, dist_t bound) {
  std::size_t near = 0, all = 0;
  const std::size_t reach = 2 * static_cast<std::size_t>(std::max<dist_t>(bound, 0)) + 4;
  for (std::size_t d = 0; d < histogram.size(); ++d) {
    all += histogram[d];
    if (d <= reach) near += histogram[d];
  }
  return all > 0 && 8 * near <= all;
}

// The sample's k-th distance, as a shared bound: a claim of slice 0 (which holds a sample of the
// first codes) when the sample has k codes, else the code length. *halves: whether the query's
// filter should test halves first (halves_pay), where the level has such a filter.
std::uint64_t sample_bound(const ScanView& db, const std::uint8_t* query, std::size_t k, const SampleLayout& at,
                           Scratch& s, bool* halves = nullptr) {
  if (halves) *halves = false;
  s.buf.histogram.assign(static_cast<std::size_t>(db.nbits) + 1, 0);
  for (std::size_t r = 0; r < at.runs; ++r) {
    const std::size_t first = r * at.stride;
    s.kt.distances(query, db.codes + first * db.code_size, at.run, db.code_size, s.distances);
    if (db.skip) {
      for (std::size_t j = 0; j < at.run; ++j)
        s.buf.histogram[static_cast<std::size_t>(s.distances[j])] += !db.skip[first + j];
    } else {
      for (std::size_t j = 0; j < at.run; ++j) ++s.buf.histogram[static_cast<std::size_t>(s.distances[j])];
    }
  }
  std::size_t seen = 0;
  for (std::size_t d = 0; d < s.buf.histogram.size(); ++d) {
    seen += s.buf.histogram[d];
    if (seen < k) continue;
    if (halves && s.kt.filter_halves && s.kt.halves_for_size(db.code_size))
      *halves = halves_pay(s.buf.histogram, static_cast<dist_t>(d));
    return pack_bound(static_cast<dist_t>(d), at.runs == 1 ? 0 : kNoSlice);
  }
  return pack_bound(static_cast<dist_t>(db.nbits), kNoSlice);
}

CountingTopK::KeyToId key_to_id(const ScanView& db) noexcept {
  if (!keyed_by_position(db)) return {};
  return {[](const void* view, CountingTopK::Entry* e, std::size_t n) {
            const ScanView& v = *static_cast<const ScanView*>(view);
            for (std::size_t i = 0; i < n; ++i) e[i].second = v.id_at(static_cast<std::size_t>(e[i].second));
          },
          &db};
}

// Scans codes [begin, end) (slice `slice`) of db for queries [q0, q1), feeding tops[q - q0]
// (reset by the caller to their starting bounds). shared[q] is the best bound on query q's k-th
// distance known to any collector of q (other slices of the database, scanned by other threads;
// see pack_bound): each filter uses the tighter of it and its own, and each new k-th distance is
// published to it.
void scan_range_into(const ScanView& db, const std::uint8_t* queries, std::size_t q0, std::size_t q1,
                     std::size_t begin, std::size_t end, std::size_t slice, CountingTopK* tops,
                     std::atomic<std::uint64_t>* shared, std::atomic<std::uint8_t>* halves, Scratch& s) {
  const std::size_t block = s.block;
  const auto bound_of = [&](std::size_t q) {
    return std::min(tops[q - q0].max_accepted(),
                    bound_for_slice(shared[q].load(std::memory_order_relaxed), slice, db.ids_increasing));
  };
  const auto publish = [&](std::size_t q, dist_t kth) {  // lower the shared bound if ours is tighter
    const std::uint64_t ours = pack_bound(kth, static_cast<std::uint32_t>(slice));
    std::uint64_t cur = shared[q].load(std::memory_order_relaxed);
    while (ours < cur && !shared[q].compare_exchange_weak(cur, ours, std::memory_order_relaxed)) {
    }
  };
  // Whether any query of the group can still accept a code; closes the collectors that hold k
  // codes at distance 0 (ids growing with position: no later code can enter).
  const auto any_open = [&] {
    bool open = false;
    for (std::size_t q = q0; q < q1; ++q) {
      if (tops[q - q0].close_at_zero()) publish(q, 0);
      open = open || bound_of(q) >= 0;
    }
    return open;
  };
  for (std::size_t b0 = begin; b0 < end; b0 += block) {
    if (!any_open()) return;  // the rest of the slice would only be walked past
    const std::size_t bn = std::min(block, end - b0);
    filter_block(db, queries, q0, q1, b0, bn, s, bound_of,
                 [&](std::size_t q, std::size_t first, std::size_t m) {
                   CountingTopK& top = tops[q - q0];
                   const dist_t before = top.kth_distance();
                   for (std::size_t j = 0; j < m; ++j) {
                     const std::size_t pos = first + s.positions[j];
                     if (db.skip && db.skip[pos]) continue;
                     top.push(s.distances[j], keyed_by_position(db) ? static_cast<idx_t>(pos) : db.id_at(pos));
                   }
                   top.close_at_zero();
                   const dist_t kth = top.kth_distance();
                   if (kth < before) publish(q, kth);
                 },
                 /*bound_tightens=*/true, halves);
  }
  any_open();  // closes and publishes what the last block settled
}


void pad_rows(std::size_t nq, std::size_t k, dist_t* distances, idx_t* ids) {
  std::fill(distances, distances + nq * k, kMissingDistance);
  std::fill(ids, ids + nq * k, kMissingId);
}

// How a search is cut into work items: `groups` runs of consecutive queries times `slices`
// contiguous runs of the database. Each item scans its slice for its queries, block by block, so
// a block read from memory serves the whole group: the database is read `groups` times per
// search, not once per few queries. Slices give the threads enough items to share (several per
// thread, so a slower core does not hold the others back); per-slice results are merged at the
// end. Slices stay contiguous, so ids still grow within each.
struct Tiling {
  std::size_t groups, slices;
  std::size_t items() const noexcept { return groups * slices; }
  std::size_t query_begin(std::size_t g, std::size_t nq) const noexcept { return nq * g / groups; }
  std::size_t code_begin(std::size_t c, std::size_t n) const noexcept { return n * c / slices; }
};

// Queries per group at most: enough that a prepared piece of codes is reused by many queries.
constexpr std::size_t kGroupQueries = 256;
// From this k on, a keyed scan with queries for every thread does not split them between slices
// (see plan_tiles): what a slice's collector keeps and maps grows with k, what smaller groups cost
// does not. 1,000 queries over 1M uniform 128-bit codes, k = 100, ids in random order, 2 threads:
// 0.94x-0.96x the speed of the same scan with increasing ids in 2 slices, 0.97x-1.01x in 8 groups
// of one slice (the Intel Xeon, three alternating runs); at k = 10 the two tilings differed by
// less than the machine's noise.
constexpr std::size_t kKeyedGroupsMinK = 32;

Tiling plan_tiles(std::size_t nq, std::size_t n, std::size_t block, std::size_t threads, std::size_t per_query_bytes,
                  bool keyed = false) {
  Tiling t{(nq + kGroupQueries - 1) / kGroupQueries, 1};
  if (threads == 1) return t;
  // Few queries: one slice per thread (each query is split across all of them). Otherwise about
  // four items per thread: by slices, except for keyed collectors (see keyed_by_position) at
  // large k (`keyed`), which each keep every tie at their own k-th distance, look their ids up
  // and are merged with the other slices' by id; those take smaller groups instead.
  const std::size_t wanted = nq < threads ? threads : 4 * threads;
  std::size_t slices = keyed && nq >= threads ? 1 : (wanted + t.groups - 1) / t.groups;
  // A slice of less than a few blocks costs more in seeding and merging than it shares, except for
  // fewer queries than threads, where the alternative leaves threads idle: there a block each
  // (one query over 60,000 codes of 256 bits: 34 -> 22 us on 2 threads).
  const std::size_t min_blocks = nq < threads ? 1 : 4;
  slices = std::min(slices, std::max<std::size_t>(1, n / (min_blocks * block)));
  // Per-slice results are held until the merge: bound them (about 256 MiB).
  const std::size_t held = std::max<std::size_t>(1, nq * per_query_bytes);
  slices = std::max<std::size_t>(1, std::min(slices, (std::size_t{256} << 20) / held));
  if (slices == 1) t.groups = std::min(nq, std::max(t.groups, (keyed ? 2 : 4) * threads));
  t.slices = slices;
  return t;
}

}  // namespace

void knn_scan(const ScanView& db, const std::uint8_t* queries, std::size_t nq, std::size_t k,
              dist_t* distances, idx_t* ids) {
  if (nq == 0 || k == 0) return;
  if (db.n == 0) return pad_rows(nq, k, distances, ids);
  const std::size_t kk = std::min(k, db.n);
  const std::size_t block = block_codes(db.code_size);
  const kernels::WidthPlan plan = kernels::plan_for(db.code_size);
  Tiling t = plan_tiles(nq, db.n, block, static_cast<std::size_t>(get_num_threads()),
                        (2 * kk + 64) * sizeof(CountingTopK::Entry), keyed_by_position(db) && kk >= kKeyedGroupsMinK);
  // Starting bounds from a sample, then shared by the slices of each query.
  std::unique_ptr<std::atomic<std::uint64_t>[]> shared(new std::atomic<std::uint64_t>[nq]);
  // Per query, whether its filter tests halves first (see filter_block); one-query groups only.
  std::unique_ptr<std::atomic<std::uint8_t>[]> halves(new std::atomic<std::uint8_t>[nq]);
  const SampleLayout sample =
      sample_layout(db, std::min(db.n, std::min(block, sample_codes(kk, keyed_by_position(db)))));
  parallel_for(nq, [&](std::size_t q0, std::size_t q1) {
    Scratch s(block, db.code_size, plan);
    for (std::size_t q = q0; q < q1; ++q) {
      bool h = false;
      shared[q].store(sample_bound(db, queries + q * db.code_size, kk, sample, s, &h), std::memory_order_relaxed);
      halves[q].store(h ? 1 : 0, std::memory_order_relaxed);
    }
  }, nq >= 64 ? 0 : 1);
  // tops[c * nq + q]: query q's collector over slice c.
  std::vector<CountingTopK> tops(t.slices * nq);
  const auto reset = [&](std::size_t c, std::size_t q0, std::size_t q1) {
    for (std::size_t q = q0; q < q1; ++q)
      tops[c * nq + q].reset(kk, bound_for_slice(shared[q].load(std::memory_order_relaxed), c, db.ids_increasing),
                             db.ids_increasing, key_to_id(db));
  };
  // Fewer queries than threads over short codes, ids growing with position: this thread first
  // scans the head of slice 0 alone. Where that settles every query (k codes at distance 0: no
  // later code can enter) no other thread is woken: over 1M structured 16-bit codes, where the
  // 10th copy of a query lies 16,000 codes in at the median, waking one made most single queries
  // 1-2 us slower than on one thread. Where queries do not settle, the head is time the other
  // thread idles.
  std::size_t head = 0;
  if (t.slices > 1 && nq < static_cast<std::size_t>(get_num_threads()) && db.ids_increasing &&
      duplicates_expected(db)) {
    head = std::min(t.code_begin(1, db.n), kHeadCodes);
    reset(0, 0, nq);
    {
      Scratch s(block, db.code_size, plan);
      scan_range_into(db, queries, 0, nq, 0, head, 0, tops.data(), shared.get(), halves.get(), s);
    }
    bool settled = true;
    for (std::size_t q = 0; q < nq && settled; ++q)
      settled = bound_for_slice(shared[q].load(std::memory_order_relaxed), 1, true) < 0;
    if (settled) t.slices = 1;
  }
  parallel_for(t.items(), [&](std::size_t i0, std::size_t i1) {
    Scratch s(block, db.code_size, plan);
    for (std::size_t item = i0; item < i1; ++item) {
      const std::size_t g = item / t.slices, c = item % t.slices;
      const std::size_t q0 = t.query_begin(g, nq), q1 = t.query_begin(g + 1, nq);
      const std::size_t begin = c == 0 ? head : t.code_begin(c, db.n);  // slice 0 goes on after its head
      if (c != 0 || head == 0) reset(c, q0, q1);
      CountingTopK* mine = tops.data() + c * nq + q0;
      scan_range_into(db, queries, q0, q1, begin, t.code_begin(c + 1, db.n), c, mine, shared.get(),
                      halves.get(), s);
      if (t.slices == 1)
        for (std::size_t q = q0; q < q1; ++q) mine[q - q0].finish(distances + q * k, ids + q * k, k);
    }
  }, t.items());
  if (t.slices == 1) return;
  parallel_for(nq, [&](std::size_t q0, std::size_t q1) {
    for (std::size_t q = q0; q < q1; ++q) {
      CountingTopK& top = tops[q];
      for (std::size_t c = 1; c < t.slices; ++c) top.merge(tops[c * nq + q]);
      top.finish(distances + q * k, ids + q * k, k);
    }
  });
}

namespace {

// Replaces n storage positions by their items' ids. Looked up while scanning, each hit's id was a
// cache miss in the scan's inner loop (uniform 10M x 64-bit codes in sorted storage, r = 16, 390
// hits a query: 10% of a batch's time, by perf); here the lookups run in one pass, positions
// increasing within each distance's run, each prefetched well ahead.
void map_positions(idx_t* v, std::size_t n, const ScanView& db) {
  constexpr std::size_t kAhead = 16;
  if (db.ids32) {
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kAhead < n) __builtin_prefetch(db.ids32 + v[i + kAhead]);
      v[i] = static_cast<idx_t>(db.ids32[v[i]]);
    }
  } else if (db.ids) {
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kAhead < n) __builtin_prefetch(db.ids + v[i + kAhead]);
      v[i] = db.ids[v[i]];
    }
  }
}

// Sorts one distance's run of range hits by id: a radix sort where the ids are 32-bit (sorted
// multi-index storage: tens of thousands of hits per query at large radii), else std::sort.
void sort_ids(idx_t* ids, std::size_t n, const ScanView& db) {
  if (db.ids32 == nullptr || n < kRadixSortMin) {
    std::sort(ids, ids + n);
    return;
  }
  thread_local std::vector<std::uint32_t> narrow, scratch;
  narrow.resize(n);
  for (std::size_t i = 0; i < n; ++i) narrow[i] = static_cast<std::uint32_t>(ids[i]);
  sort_positions(narrow, scratch, 32);
  for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<idx_t>(narrow[i]);
}

}  // namespace

RangeResult range_scan(const ScanView& db, const std::uint8_t* queries, std::size_t nq, int radius) {
  using Hit = std::pair<dist_t, idx_t>;
  RangeResult res;
  res.lims.assign(nq + 1, 0);
  if (db.n == 0 || nq == 0) return res;
  const std::size_t block = block_codes(db.code_size);
  const kernels::WidthPlan plan = kernels::plan_for(db.code_size);
  const dist_t r = static_cast<dist_t>(std::min(radius, db.nbits));
  const Tiling t = plan_tiles(nq, db.n, block, static_cast<std::size_t>(get_num_threads()), 64 * sizeof(Hit));
  // hits[c * nq + q]: query q's hits in slice c, in storage order.
  std::vector<std::vector<Hit>> hits(t.slices * nq);
  parallel_for(t.items(), [&](std::size_t i0, std::size_t i1) {
    Scratch s(block, db.code_size, plan);
    for (std::size_t item = i0; item < i1; ++item) {
      const std::size_t g = item / t.slices, c = item % t.slices;
      const std::size_t q0 = t.query_begin(g, nq), q1 = t.query_begin(g + 1, nq);
      const std::size_t begin = t.code_begin(c, db.n), end = t.code_begin(c + 1, db.n);
      std::vector<Hit>* out = hits.data() + c * nq;
      for (std::size_t b0 = begin; b0 < end; b0 += block)
        filter_block(db, queries, q0, q1, b0, std::min(block, end - b0), s, [r](std::size_t) { return r; },
                     [&](std::size_t q, std::size_t first, std::size_t m) {
                       std::vector<Hit>& h = out[q];
                       for (std::size_t j = 0; j < m; ++j) {
                         const std::size_t pos = first + s.positions[j];
                         if (db.skip && db.skip[pos]) continue;
                         h.emplace_back(s.distances[j], static_cast<idx_t>(pos));  // its id once placed
                       }
                     },
                     /*bound_tightens=*/false);
    }
  }, t.items());

  for (std::size_t q = 0; q < nq; ++q) {
    std::size_t count = 0;
    for (std::size_t c = 0; c < t.slices; ++c) count += hits[c * nq + q].size();
    res.lims[q + 1] = res.lims[q] + static_cast<std::int64_t>(count);
  }
  res.distances.resize(static_cast<std::size_t>(res.lims[nq]));
  res.ids.resize(res.distances.size());
  // Each query's hits are placed by a counting sort on the distance (nbits + 1 values), which keeps
  // storage order within a distance, then their positions are mapped to ids: that is id order when
  // ids grow with storage; otherwise each distance's run is sorted by id. With fewer queries than
  // threads, the runs are mapped and sorted by all threads, after placing (structured 1M x 128-bit
  // codes in sorted storage, one query, r = 16, 4,450 hits: on one thread that was about 5% of the
  // search).
  const bool few = nq < static_cast<std::size_t>(get_num_threads()) && !db.ids_increasing;
  std::vector<std::pair<std::size_t, std::size_t>> runs;  // few queries: [begin, end) of each run
  const auto place = [&](std::size_t q, std::vector<std::size_t>& start) {
    std::fill(start.begin(), start.end(), 0);
    for (std::size_t c = 0; c < t.slices; ++c)
      for (const Hit& h : hits[c * nq + q]) ++start[static_cast<std::size_t>(h.first) + 1];
    const std::size_t off = static_cast<std::size_t>(res.lims[q]);
    start[0] = off;
    for (std::size_t d = 1; d < start.size(); ++d) start[d] += start[d - 1];
    std::vector<std::size_t> next(start.begin(), start.end() - 1);
    for (std::size_t c = 0; c < t.slices; ++c) {
      for (const Hit& h : hits[c * nq + q]) {
        const std::size_t at = next[static_cast<std::size_t>(h.first)]++;
        res.distances[at] = h.first;
        res.ids[at] = h.second;
      }
      std::vector<Hit>().swap(hits[c * nq + q]);  // release as we go
    }
    if (few) {
      for (std::size_t d = 0; d + 1 < start.size(); ++d)
        if (start[d + 1] > start[d]) runs.emplace_back(start[d], start[d + 1]);
      return;
    }
    map_positions(res.ids.data() + off, start.back() - off, db);
    if (!db.ids_increasing)
      for (std::size_t d = 0; d + 1 < start.size(); ++d) sort_ids(res.ids.data() + start[d], start[d + 1] - start[d], db);
  };
  if (few) {
    std::vector<std::size_t> start(static_cast<std::size_t>(r) + 2);
    for (std::size_t q = 0; q < nq; ++q) place(q, start);
    // The largest runs first, so that no thread is left with a large one at the end.
    std::sort(runs.begin(), runs.end(), [](const auto& x, const auto& y) { return x.second - x.first > y.second - y.first; });
    if (!runs.empty()) parallel_for(runs.size(), [&](std::size_t i0, std::size_t i1) {
      for (std::size_t i = i0; i < i1; ++i) {
        idx_t* v = res.ids.data() + runs[i].first;
        map_positions(v, runs[i].second - runs[i].first, db);
        sort_ids(v, runs[i].second - runs[i].first, db);
      }
    }, runs.size());
    return res;
  }
  parallel_for(nq, [&](std::size_t q0, std::size_t q1) {
    std::vector<std::size_t> start(static_cast<std::size_t>(r) + 2);
    for (std::size_t q = q0; q < q1; ++q) place(q, start);
  });
  return res;
}

}  // namespace deephash
