#include "deephash/flat_scan.hpp"

#include <algorithm>
#include <utility>
#include <vector>

#include "deephash/simd.hpp"
#include "deephash/threads.hpp"
#include "deephash/topk.hpp"

namespace deephash {
namespace {

// About 256 KiB of codes per block (stays in L2 while a group of queries streams over it),
// a multiple of 16 codes (the kernels' unrolled step).
std::size_t block_codes(std::size_t code_size) {
  const std::size_t b = std::max<std::size_t>(256, (256u << 10) / code_size);
  return b / 16 * 16;
}

// Bytes of prepared codes per sub-block: small enough to stay in L1 while a group of queries
// runs over it.
constexpr std::size_t kPreparedBytes = 16u << 10;
// Preparing a code costs about what it saves two or three queries: fewer queries filter the
// plain codes.
constexpr std::size_t kPreparedMinQueries = 4;

struct Scratch {
  std::vector<std::uint32_t> positions;
  std::vector<dist_t> distances;
  std::vector<std::uint32_t> histogram;  // per distance, for seed_from_block
  std::vector<std::uint8_t> prepared;    // a sub-block in the kernel's prepared layout
  std::size_t prepared_codes = 0;        // codes per sub-block; 0: the level has no prepared path
  const kernels::KernelTable& kt;        // one level for the whole search
  Scratch(std::size_t block, std::size_t code_size)
      : positions(block), distances(block), kt(kernels::active()) {
    const std::size_t per_code = kt.prepared_bytes ? kt.prepared_bytes(code_size) : 0;
    if (per_code) {
      prepared_codes = std::max<std::size_t>(16, kPreparedBytes / per_code / 16 * 16);
      prepared.resize(prepared_codes * per_code);
    }
  }
};

// Runs the filter of each query q in [q0, q1) over codes [b0, b0 + bn) with the bound
// bound_of(q) (negative: skip the query) and hands its hits to on_hits(q, first, m): positions
// (relative to `first`) and distances in s.positions / s.distances. Where the kernel level has a
// prepared layout and the group is large enough, the block is walked in L1-sized sub-blocks, each
// prepared once for the group.
template <class BoundOf, class OnHits>
void filter_block(const ScanView& db, const std::uint8_t* queries, std::size_t q0, std::size_t q1,
                  std::size_t b0, std::size_t bn, Scratch& s, BoundOf bound_of, OnHits on_hits) {
  const kernels::KernelTable& kt = s.kt;
  if (s.prepared_codes == 0 || q1 - q0 < kPreparedMinQueries) {
    const std::uint8_t* codes = db.codes + b0 * db.code_size;
    for (std::size_t q = q0; q < q1; ++q) {
      const dist_t bound = bound_of(q);
      if (bound < 0) continue;
      on_hits(q, b0, kt.filter(queries + q * db.code_size, codes, bn, db.code_size, bound,
                               s.positions.data(), s.distances.data()));
    }
    return;
  }
  for (std::size_t p0 = b0; p0 < b0 + bn; p0 += s.prepared_codes) {
    const std::size_t pn = std::min(s.prepared_codes, b0 + bn - p0);
    kt.prepare(db.codes + p0 * db.code_size, pn, db.code_size, s.prepared.data());
    for (std::size_t q = q0; q < q1; ++q) {
      const dist_t bound = bound_of(q);
      if (bound < 0) continue;
      on_hits(q, p0, kt.filter_prepared(queries + q * db.code_size, s.prepared.data(), pn, db.code_size,
                                        bound, s.positions.data(), s.distances.data()));
    }
  }
}

// A query's first block, scanned before its collector holds anything: every distance is computed,
// the k-th smallest is found by counting (nbits + 1 bins), and only codes at or below it are
// pushed. Filtering against the initial bound instead would push every code of the block and
// re-select the k best every k + 64 pushes, which costs most at large k.
void seed_from_block(const ScanView& db, const std::uint8_t* query, std::size_t b0, std::size_t bn,
                     CountingTopK& top, Scratch& s) {
  s.kt.distances(query, db.codes + b0 * db.code_size, bn, db.code_size, s.distances.data());
  s.histogram.assign(static_cast<std::size_t>(db.nbits) + 1, 0);
  for (std::size_t j = 0; j < bn; ++j)
    if (!(db.skip && db.skip[b0 + j])) ++s.histogram[static_cast<std::size_t>(s.distances[j])];
  dist_t kth = static_cast<dist_t>(db.nbits);
  std::size_t seen = 0;
  for (std::size_t d = 0; d < s.histogram.size(); ++d) {
    seen += s.histogram[d];
    if (seen >= top.k()) {
      kth = static_cast<dist_t>(d);
      break;
    }
  }
  for (std::size_t j = 0; j < bn; ++j) {
    const std::size_t pos = b0 + j;
    if (s.distances[j] > kth || (db.skip && db.skip[pos])) continue;
    top.push(s.distances[j], db.id_at(pos));
  }
}

// Scans codes [begin, end) of db for queries [q0, q1), feeding tops[q - q0] (empty on entry).
void scan_range_into(const ScanView& db, const std::uint8_t* queries, std::size_t q0, std::size_t q1,
                     std::size_t begin, std::size_t end, CountingTopK* tops, Scratch& s) {
  const std::size_t block = s.positions.size();
  for (std::size_t b0 = begin; b0 < end; b0 += block) {
    const std::size_t bn = std::min(block, end - b0);
    // Collectors still empty (all of them on the first block; later only if every code so far
    // was removed) take the whole block by counting instead, and the filter below skips them for
    // this block. Only a leading run of empty ones is seeded; any other query is merely filtered
    // against its initial bound, which is slower but gives the same answer.
    std::size_t seeded_below = q0;
    if (bn >= 4 * tops[0].k()) {
      for (std::size_t q = q0; q < q1 && tops[q - q0].empty(); ++q) {
        seed_from_block(db, queries + q * db.code_size, b0, bn, tops[q - q0], s);
        seeded_below = q + 1;
      }
      if (seeded_below == q1) continue;
    }
    filter_block(db, queries, q0, q1, b0, bn, s,
                 [&](std::size_t q) { return q < seeded_below ? dist_t{-1} : tops[q - q0].max_accepted(); },
                 [&](std::size_t q, std::size_t first, std::size_t m) {
                   CountingTopK& top = tops[q - q0];
                   for (std::size_t j = 0; j < m; ++j) {
                     const std::size_t pos = first + s.positions[j];
                     if (db.skip && db.skip[pos]) continue;
                     top.push(s.distances[j], db.id_at(pos));
                   }
                 });
  }
}

void pad_rows(std::size_t nq, std::size_t k, dist_t* distances, idx_t* ids) {
  std::fill(distances, distances + nq * k, kMissingDistance);
  std::fill(ids, ids + nq * k, kMissingId);
}

}  // namespace

void knn_scan(const ScanView& db, const std::uint8_t* queries, std::size_t nq, std::size_t k,
              dist_t* distances, idx_t* ids) {
  if (nq == 0 || k == 0) return;
  if (db.n == 0) return pad_rows(nq, k, distances, ids);
  const std::size_t kk = std::min(k, db.n);
  const std::size_t threads = static_cast<std::size_t>(num_threads());
  const std::size_t block = block_codes(db.code_size);

  if (nq >= threads || db.n < 4 * block) {
    // Query-parallel: several chunks per thread so a slower core does not hold the others back.
    const std::size_t chunks = std::min(nq, threads == 1 ? 1 : 8 * threads);
    parallel_for(nq, [&](std::size_t q0, std::size_t q1) {
      std::vector<CountingTopK> tops(q1 - q0);
      for (auto& t : tops) t.reset(kk, db.nbits, db.ids_increasing);
      Scratch s(block, db.code_size);
      scan_range_into(db, queries, q0, q1, 0, db.n, tops.data(), s);
      for (std::size_t q = q0; q < q1; ++q) tops[q - q0].finish(distances + q * k, ids + q * k, k);
    }, chunks);
    return;
  }

  // Database-parallel for few queries: contiguous slices (ids stay increasing inside each).
  const std::size_t slices = threads;
  std::vector<std::vector<CountingTopK>> partial(slices, std::vector<CountingTopK>(nq));
  parallel_for(slices, [&](std::size_t c0, std::size_t c1) {
    Scratch s(block, db.code_size);
    for (std::size_t c = c0; c < c1; ++c) {
      const std::size_t begin = db.n * c / slices, end = db.n * (c + 1) / slices;
      for (auto& t : partial[c]) t.reset(kk, db.nbits, db.ids_increasing);
      scan_range_into(db, queries, 0, nq, begin, end, partial[c].data(), s);
    }
  }, slices);
  for (std::size_t q = 0; q < nq; ++q) {
    CountingTopK& top = partial[0][q];
    for (std::size_t c = 1; c < slices; ++c) top.merge(partial[c][q]);
    top.finish(distances + q * k, ids + q * k, k);
  }
}

RangeResult range_scan(const ScanView& db, const std::uint8_t* queries, std::size_t nq, int radius) {
  using Hit = std::pair<dist_t, idx_t>;
  std::vector<std::vector<Hit>> hits(nq);
  const std::size_t threads = static_cast<std::size_t>(num_threads());
  const std::size_t block = block_codes(db.code_size);
  const dist_t r = static_cast<dist_t>(std::min(radius, db.nbits));

  auto scan = [&](std::size_t q0, std::size_t q1, std::size_t begin, std::size_t end,
                  std::vector<Hit>* out, Scratch& s) {
    for (std::size_t b0 = begin; b0 < end; b0 += block)
      filter_block(db, queries, q0, q1, b0, std::min(block, end - b0), s, [r](std::size_t) { return r; },
                   [&](std::size_t q, std::size_t first, std::size_t m) {
                     for (std::size_t j = 0; j < m; ++j) {
                       const std::size_t pos = first + s.positions[j];
                       if (db.skip && db.skip[pos]) continue;
                       out[q - q0].emplace_back(s.distances[j], db.id_at(pos));
                     }
                   });
  };

  if (db.n > 0 && nq > 0) {
    if (nq >= threads || db.n < 4 * block) {
      parallel_for(nq, [&](std::size_t q0, std::size_t q1) {
        Scratch s(block, db.code_size);
        scan(q0, q1, 0, db.n, hits.data() + q0, s);
      }, std::min(nq, threads == 1 ? 1 : 4 * threads));
    } else {
      const std::size_t slices = threads;
      std::vector<std::vector<std::vector<Hit>>> partial(slices, std::vector<std::vector<Hit>>(nq));
      parallel_for(slices, [&](std::size_t c0, std::size_t c1) {
        Scratch s(block, db.code_size);
        for (std::size_t c = c0; c < c1; ++c)
          scan(0, nq, db.n * c / slices, db.n * (c + 1) / slices, partial[c].data(), s);
      }, slices);
      for (std::size_t q = 0; q < nq; ++q)
        for (std::size_t c = 0; c < slices; ++c)
          hits[q].insert(hits[q].end(), partial[c][q].begin(), partial[c][q].end());
    }
  }

  RangeResult res;
  res.lims.resize(nq + 1, 0);
  for (std::size_t q = 0; q < nq; ++q) res.lims[q + 1] = res.lims[q] + static_cast<std::int64_t>(hits[q].size());
  res.distances.resize(static_cast<std::size_t>(res.lims[nq]));
  res.ids.resize(res.distances.size());
  parallel_for(nq, [&](std::size_t q0, std::size_t q1) {
    for (std::size_t q = q0; q < q1; ++q) {
      auto& h = hits[q];
      // Hits arrive in storage order: with increasing ids a stable sort by distance suffices.
      if (db.ids_increasing)
        std::stable_sort(h.begin(), h.end(), [](const Hit& a, const Hit& b) { return a.first < b.first; });
      else
        std::sort(h.begin(), h.end());
      const std::size_t off = static_cast<std::size_t>(res.lims[q]);
      for (std::size_t j = 0; j < h.size(); ++j) {
        res.distances[off + j] = h[j].first;
        res.ids[off + j] = h[j].second;
      }
    }
  });
  return res;
}

}  // namespace deephash
