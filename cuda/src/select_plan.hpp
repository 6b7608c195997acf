// The arithmetic of GPU search that needs no GPU: how the database is cut into chunks, how many
// queries one pass takes, and how a k-NN selection by counting turns per-chunk histograms into
// exact output slots. Every function here is plain C++ usable from device code (DH_HD), so the
// kernels and the CPU unit tests (cuda/tests/test_select_plan.cpp) run the very same code.
//
// The k-NN selection (no cap on k), per query, with the codes stored in increasing id order so
// that (distance, position) order is (distance, id) order:
//   1. histogram pass: hist[c][d] = how many codes of chunk c lie at distance d;
//   2. threshold: t = the smallest distance with at least k codes at distance <= t;
//      below = codes at distance < t (all taken), take = k - below codes at distance t (the
//      `take` of smallest position);
//   3. slots: the output row is laid out by distance, then chunk: the codes of chunk c at
//      distance d < t go to [base(d) + sum_{c' < c} hist[c'][d], ...); at distance t, chunk c
//      takes the first quota(c) of its codes in position order, where the chunks before it
//      already took min(take, their total) (at most one chunk takes part of its codes: the
//      boundary chunk, which the collect pass walks in position order);
//   4. collect pass: every selected code writes key(d, position) into its slot range (in any
//      order within a (chunk, distance) range, in position order in the boundary chunk);
//   5. sort each query's k keys (by distance, then position) and map positions to ids.
// The output memory is exact (k keys per query), whatever the distribution of distances.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define DH_HD __host__ __device__
#else
#define DH_HD
#endif

namespace deephash::cuda::plan {

// ---- keys: (distance, position) in one 64-bit integer whose order is theirs ---------------------
inline constexpr int kPositionBits = 43;  // positions < 2^43 codes
inline constexpr std::uint64_t kPositionMask = (std::uint64_t{1} << kPositionBits) - 1;
inline constexpr int kMaxGpuBits = 4096;  // distances < 2^13: 13 + 43 bits fit a key

DH_HD inline std::uint64_t make_key(std::uint32_t distance, std::uint64_t position) {
  return (static_cast<std::uint64_t>(distance) << kPositionBits) | position;
}
DH_HD inline std::uint32_t key_distance(std::uint64_t key) { return static_cast<std::uint32_t>(key >> kPositionBits); }
DH_HD inline std::uint64_t key_position(std::uint64_t key) { return key & kPositionMask; }

// ---- chunks ---------------------------------------------------------------------------------------
// Chunk c of `nchunks` over n codes: [begin, end), contiguous, in order, sizes differing by at most 1.
struct Range {
  std::uint64_t begin, end;
};
DH_HD inline Range chunk_range(std::uint64_t n, std::uint32_t nchunks, std::uint32_t c) {
  const std::uint64_t base = n / nchunks, extra = n % nchunks;
  const std::uint64_t begin = c * base + (c < extra ? c : extra);
  return {begin, begin + base + (c < extra ? 1 : 0)};
}

// ---- the threshold of one query --------------------------------------------------------------------
struct Threshold {
  std::uint32_t t;       // the k-th smallest distance
  std::uint64_t below;   // codes at distance < t (all selected)
  std::uint64_t take;    // codes selected at distance t (1 ..)
};

// totals[d] = codes at distance d over the whole database (nbins = nbits + 1); 1 <= k <= sum.
DH_HD inline Threshold select_threshold(const std::uint64_t* totals, int nbins, std::uint64_t k) {
  std::uint64_t below = 0;
  for (int d = 0; d < nbins; ++d) {
    if (below + totals[d] >= k) return {static_cast<std::uint32_t>(d), below, k - below};
    below += totals[d];
  }
  return {static_cast<std::uint32_t>(nbins - 1), below, 0};  // k > sum: callers never ask
}

// Per-query record the collect pass reads.
struct QuerySelection {
  std::uint32_t t;
  std::uint32_t boundary_chunk;  // the chunk taking part of its codes at distance t; kNoChunk if none
  std::uint64_t below;
  std::uint64_t take;
};
inline constexpr std::uint32_t kNoChunk = 0xffffffffu;

// Turns one distance column of a query's histogram (hist[c * nbins + d], c < nchunks) into slot
// offsets in place. For d < t: hist[c][d] becomes base + the counts of the chunks before c, where
// base = codes at distance < d. For d == t: hist[c][t] becomes below + the codes at distance t of the
// chunks before c, quota[c] the number chunk c selects (its first ones in position order), and the
// return value is the boundary chunk (kNoChunk when every chunk takes all or none of its codes).
DH_HD inline std::uint32_t column_to_offsets(std::uint32_t* hist, std::uint32_t* quota, int nbins,
                                             std::uint32_t nchunks, std::uint32_t d, const QuerySelection& sel,
                                             std::uint64_t base) {
  // Eight cells are read before any is written, so that on a device their loads are in flight
  // together (one at a time, a column of a thousand chunks cost one L2 round trip per chunk).
  constexpr std::uint32_t kBatch = 8;
  std::uint32_t boundary = kNoChunk;
  std::uint64_t running = 0;
  for (std::uint32_t c0 = 0; c0 < nchunks; c0 += kBatch) {
    std::uint32_t counts[kBatch];
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (std::uint32_t i = 0; i < kBatch; ++i)
      counts[i] = c0 + i < nchunks ? hist[static_cast<std::uint64_t>(c0 + i) * nbins + d] : 0;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
    for (std::uint32_t i = 0; i < kBatch; ++i) {
      const std::uint32_t c = c0 + i;
      if (c < nchunks) {
        std::uint32_t* cell = hist + static_cast<std::uint64_t>(c) * nbins + d;
        const std::uint64_t count = counts[i];
        if (d < sel.t) {
          *cell = static_cast<std::uint32_t>(base + running);
        } else {
          *cell = static_cast<std::uint32_t>(sel.below + running);
          const std::uint64_t q = running >= sel.take ? 0 : (sel.take - running < count ? sel.take - running : count);
          quota[c] = static_cast<std::uint32_t>(q);
          if (q > 0 && q < count) boundary = c;
        }
        running += count;
      }
    }
  }
  return boundary;
}

// ---- how a search is cut up ------------------------------------------------------------------------
struct DeviceShape {
  int sm_count = 1;
  std::uint64_t memory_budget = 0;  // bytes this search may allocate on the device
};

struct KnnPlan {
  std::uint64_t query_tile = 0;        // queries per pass (the last pass may have fewer)
  std::uint32_t queries_per_block = 0; // queries a thread block holds in shared memory
  std::uint32_t nchunks = 0;           // database chunks (one thread block each, per query group)
  std::uint64_t bytes_per_tile = 0;    // device memory one pass allocates
};

#ifndef DEEPHASH_CUDA_THREADS_PER_BLOCK
#define DEEPHASH_CUDA_THREADS_PER_BLOCK 256
#endif
// Threads per block of the scan kernels (the CPU emulation of the tests runs fewer, as fibers).
inline constexpr std::uint32_t kThreadsPerBlock = DEEPHASH_CUDA_THREADS_PER_BLOCK;
inline constexpr std::uint32_t kSharedHistogramBytes = 32 * 1024;
inline constexpr std::uint32_t kMaxQueriesPerBlock = 32;
inline constexpr std::uint64_t kMinChunk = 4 * kThreadsPerBlock;  // codes; smaller chunks waste blocks
inline constexpr std::uint64_t kMaxSortItems = (std::uint64_t{1} << 31) - 1;  // CUB's int item count

// Queries one block holds: their per-distance histograms must fit its shared memory.
DH_HD inline std::uint32_t queries_per_block(int nbits, std::uint64_t nq) {
  const std::uint64_t by_smem = kSharedHistogramBytes / (4u * static_cast<std::uint32_t>(nbits + 1));
  std::uint64_t q = by_smem < kMaxQueriesPerBlock ? by_smem : kMaxQueriesPerBlock;
  if (q < 1) q = 1;
  if (q > nq) q = nq;
  return static_cast<std::uint32_t>(q < 1 ? 1 : q);
}

// Chunks for a pass of `tile` queries over n codes: enough blocks to fill the device (8 per SM),
// none shorter than kMinChunk codes, none longer than 2^31 codes (32-bit counts).
DH_HD inline std::uint32_t chunks_for(std::uint64_t n, std::uint64_t tile, std::uint32_t qpb, int sm_count) {
  const std::uint64_t groups = (tile + qpb - 1) / qpb;
  const std::uint64_t want_blocks = 8ull * static_cast<std::uint64_t>(sm_count > 0 ? sm_count : 1);
  std::uint64_t c = (want_blocks + groups - 1) / groups;
  const std::uint64_t by_size = (n + kMinChunk - 1) / kMinChunk;
  if (c > by_size) c = by_size;
  const std::uint64_t min_for_counts = (n + (std::uint64_t{1} << 31) - 1) >> 31;
  if (c < min_for_counts) c = min_for_counts;
  if (c < 1) c = 1;
  if (c > 1u << 20) c = 1u << 20;
  return static_cast<std::uint32_t>(c);
}

// Device bytes of one k-NN pass: histograms (becoming offsets) and quotas, per-query records, the
// queries, keys twice (unsorted, sorted), segment offsets, the results, and CUB's sort workspace
// (bounded here by another copy of the keys).
DH_HD inline std::uint64_t knn_tile_bytes(std::uint64_t tile, std::uint32_t nchunks, int nbits, std::uint64_t k,
                                          std::uint64_t k_eff, std::uint64_t stride_bytes) {
  const std::uint64_t nbins = static_cast<std::uint64_t>(nbits) + 1;
  return tile * nchunks * (nbins + 1) * 4 + tile * (sizeof(QuerySelection) + stride_bytes + 8) +
         3 * tile * k_eff * 8 + tile * k * (4 + 8) + 4096;
}

// The largest query tile (<= nq) whose pass fits the budget, with its block and chunk counts;
// query_tile == 0 when not even one query fits (the caller reports the bytes one query needs).
inline KnnPlan plan_knn(std::uint64_t n, std::uint64_t nq, std::uint64_t k, int nbits, std::uint64_t stride_bytes,
                        const DeviceShape& dev) {
  const std::uint64_t k_eff = k < n ? k : n;
  KnnPlan p;
  std::uint64_t tile = nq;
  if (k_eff > 0 && tile > kMaxSortItems / k_eff) tile = kMaxSortItems / k_eff;
  if (tile > 32768) tile = 32768;  // query groups stay within the grid's y limit (65535)
  while (tile >= 1) {
    const std::uint32_t qpb = queries_per_block(nbits, tile);
    const std::uint32_t nchunks = chunks_for(n, tile, qpb, dev.sm_count);
    const std::uint64_t bytes = knn_tile_bytes(tile, nchunks, nbits, k, k_eff, stride_bytes);
    if (bytes <= dev.memory_budget) {
      p.query_tile = tile;
      p.queries_per_block = qpb;
      p.nchunks = nchunks;
      p.bytes_per_tile = bytes;
      return p;
    }
    tile = tile / 2;
  }
  const std::uint32_t nchunks = chunks_for(n, 1, 1, dev.sm_count);
  p.bytes_per_tile = knn_tile_bytes(1, nchunks, nbits, k, k_eff, stride_bytes);
  return p;
}

// A range search pass: per-(query, chunk) counts, their offsets, per-query limits; the hits are
// allocated after counting, exactly.
struct RangePlan {
  std::uint64_t query_tile = 0;
  std::uint32_t queries_per_block = 0;
  std::uint32_t nchunks = 0;
};

inline RangePlan plan_range(std::uint64_t n, std::uint64_t nq, std::uint64_t stride_bytes, const DeviceShape& dev) {
  RangePlan p;
  std::uint64_t tile = nq < 32768 ? nq : 32768;
  while (tile >= 1) {
    const std::uint32_t qpb = tile < kMaxQueriesPerBlock ? static_cast<std::uint32_t>(tile) : kMaxQueriesPerBlock;
    const std::uint32_t nchunks = chunks_for(n, tile, qpb, dev.sm_count);
    const std::uint64_t bytes = tile * nchunks * (4 + 8 + 8) + tile * (stride_bytes + 8) + 4096;
    if (bytes <= dev.memory_budget) {
      p.query_tile = tile;
      p.queries_per_block = qpb;
      p.nchunks = nchunks;
      return p;
    }
    tile /= 2;
  }
  return p;
}

// ---- one pass for small k: candidates within an estimated radius ---------------------------------
// For k up to kCandidateMaxK the search reads the database once: a histogram of a sample of the
// codes (kSampleRows of them, evenly spaced) gives each query a radius r expected to hold about
// 2k + 64 codes; one pass appends every code within r to the query's candidate buffer (capacity
// `cap`); when at least k codes and at most cap arrived, the k smallest candidates are the answer
// (every code within r is among them). Otherwise that query falls back to the counting selection.
#ifndef DEEPHASH_CUDA_SAMPLE_ROWS
#define DEEPHASH_CUDA_SAMPLE_ROWS 65536
#endif
inline constexpr std::uint64_t kSampleRows = DEEPHASH_CUDA_SAMPLE_ROWS;
inline constexpr std::uint64_t kCandidateMaxK = 4096;

// Candidate buffer slots per query for k results over n codes.
DH_HD inline std::uint64_t candidate_capacity(std::uint64_t k, std::uint64_t n) {
  const std::uint64_t cap = 16 * k + 4096;
  return cap < n ? cap : n;
}

// Sample position i of `sample_n` spread evenly over n codes.
DH_HD inline std::uint64_t sample_position(std::uint64_t i, std::uint64_t sample_n, std::uint64_t n) {
  return static_cast<std::uint64_t>((static_cast<double>(i) * static_cast<double>(n)) / static_cast<double>(sample_n));
}

// The smallest radius whose expected count over the n codes (the sample's count scaled by
// n / sample_n) reaches 2k + 64; nbins - 1 (every code) when none does.
DH_HD inline std::uint32_t estimate_radius(const std::uint64_t* sample_totals, int nbins, std::uint64_t sample_n,
                                           std::uint64_t n, std::uint64_t k) {
  const double want = 2.0 * static_cast<double>(k) + 64.0;
  const double scale = sample_n ? static_cast<double>(n) / static_cast<double>(sample_n) : 1.0;
  std::uint64_t cum = 0;
  for (int d = 0; d < nbins; ++d) {
    cum += sample_totals[d];
    if (static_cast<double>(cum) * scale >= want) return static_cast<std::uint32_t>(d);
  }
  return static_cast<std::uint32_t>(nbins - 1);
}

// Up to kRankMaxK results, a query's candidates are ranked in one block's shared memory
// (knn_rank_finish) when they number at most kRankMaxCandidates: no sort, no segment table, one
// launch. Expected counts are about 2k + 64 (at most 576 here), so nearly every query stays on that
// path; a query with more is sorted by the segmented sort instead.
inline constexpr std::uint64_t kRankMaxK = 256;
inline constexpr std::uint64_t kRankMaxCandidates = 2048;

// Did query q's candidate pass find its answer? (count: codes within its radius)
DH_HD inline bool candidates_suffice(std::uint64_t count, std::uint64_t k_eff, std::uint64_t cap) {
  return count >= k_eff && count <= cap;
}

struct CandidatePlan {
  std::uint64_t query_tile = 0;
  std::uint32_t queries_per_block = 0;
  std::uint32_t nchunks = 0;         // chunks of the database pass
  std::uint32_t sample_chunks = 0;   // chunks of the sample's histogram pass
  std::uint64_t capacity = 0;        // candidate slots per query
  std::uint64_t bytes_per_tile = 0;
};

inline CandidatePlan plan_candidates(std::uint64_t n, std::uint64_t nq, std::uint64_t k, std::uint64_t k_eff,
                                     int nbits, std::uint64_t stride_bytes, const DeviceShape& dev) {
  CandidatePlan p;
  const std::uint64_t cap = candidate_capacity(k_eff, n);
  const std::uint64_t sample_n = n < kSampleRows ? n : kSampleRows;
  const std::uint64_t nbins = static_cast<std::uint64_t>(nbits) + 1;
  std::uint64_t tile = nq < 32768 ? nq : 32768;
  if (tile > kMaxSortItems / cap) tile = kMaxSortItems / cap;
  while (tile >= 1) {
    const std::uint32_t qpb = queries_per_block(nbits, tile);
    const std::uint32_t nchunks = chunks_for(n, tile, qpb, dev.sm_count);
    const std::uint32_t schunks = chunks_for(sample_n, tile, qpb, dev.sm_count);
    const std::uint64_t bytes = tile * (3 * cap * 8 + stride_bytes + 8 + 4 + 16 + k * 12) +
                                tile * schunks * nbins * 4 + 4096;
    if (bytes <= dev.memory_budget) {
      p.query_tile = tile;
      p.queries_per_block = qpb;
      p.nchunks = nchunks;
      p.sample_chunks = schunks;
      p.capacity = cap;
      p.bytes_per_tile = bytes;
      return p;
    }
    tile /= 2;
  }
  return p;
}

// Row stride of a code on the device: whole 32-bit words, the padding bytes zero (they add 0 to
// every distance), so every width reads aligned words.
DH_HD inline std::uint64_t device_stride_words(std::uint64_t code_size) { return (code_size + 3) / 4; }

}  // namespace deephash::cuda::plan
