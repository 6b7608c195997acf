// Runtime SIMD dispatch for the Hamming kernels.
//
// The levels this CPU runs come from CPUID (x86-64) or the build target (ARM). Each code size
// runs the level measured fastest for it (plan_for), unless the environment variable
// DEEPHASH_SIMD=scalar|avx2|avx512|neon forces one level everywhere; set_simd_level() forces or
// un-forces later (tests use it to run every level).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "deephash/common.hpp"

namespace deephash {

enum class SimdLevel : int { Scalar = 0, AVX2 = 1, AVX512 = 2, NEON = 3 };

const char* simd_level_name(SimdLevel level) noexcept;

namespace kernels {

// distances[i] = popcount(query XOR codes[i]) for i < n.
using DistancesFn = void (*)(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                             std::size_t code_size, dist_t* distances) noexcept;

// Writes the positions i < n (and their distances) whose distance is <= max_distance, in
// increasing order of i; returns how many. `positions` and `distances` must hold n entries.
using FilterFn = std::size_t (*)(const std::uint8_t* query, const std::uint8_t* codes,
                                 std::size_t n, std::size_t code_size, dist_t max_distance,
                                 std::uint32_t* positions, dist_t* distances) noexcept;

// distances[i] = popcount(query XOR codes[positions[i]]) for i < n: scattered candidates (multi-index
// hashing), with software prefetch ahead of the loads.
using GatherFn = void (*)(const std::uint8_t* query, const std::uint8_t* codes, const std::uint32_t* positions,
                          std::size_t n, std::size_t code_size, dist_t* distances) noexcept;

// A test on one substring of a code, for gather_new: the 8 bytes at byte `offset` of the code (a
// little-endian word; codes shorter than 8 bytes: all of them), shifted right by `shift` and
// masked, against the query's value. The code fails when they differ in at most `max_distance` bits.
struct SubstringTest {
  std::uint64_t mask;
  std::uint64_t query_value;
  std::uint32_t offset;
  std::uint32_t shift;
  dist_t max_distance;
};

// For i < n, in order: the code at positions[i] is kept unless it fails one of the tests; kept
// positions and their distances go to out_positions / out_distances; returns how many. The
// scattered codes are prefetched ahead. (Multi-index hashing tells a candidate met for the
// first time from its substrings: no earlier probe reached it.)
using GatherNewFn = std::size_t (*)(const std::uint8_t* query, const std::uint8_t* codes,
                                    const std::uint32_t* positions, std::size_t n, std::size_t code_size,
                                    const SubstringTest* tests, std::size_t ntests,
                                    std::uint32_t* out_positions, dist_t* out_distances) noexcept;

// filter's contract, for one query over codes whose distances to it are mostly far above
// max_distance (clustered codes, a tight k-th distance): each code is first bounded from below by
// the bits of half its bytes, and only codes within max_distance there get their full distance.
// Where more than one code in eight passes that first test the bound is not paying: the call
// finishes as filter() would and sets *gave_up. A level has one only for the code sizes where it
// pays (halves_for_size); callers test that first.
using FilterHalvesFn = std::size_t (*)(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                                       std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                                       dist_t* distances, bool* gave_up) noexcept;
using HalvesForSizeFn = bool (*)(std::size_t code_size) noexcept;

// Bytes per code of a level's prepared block layout for this code size, or 0 where it has none.
using PreparedBytesFn = std::size_t (*)(std::size_t code_size) noexcept;

// Rewrites n codes into the prepared layout, prepared_bytes(code_size) bytes each. A layout may
// work in groups of up to kPreparedGroup codes: `out` must hold round_up(n, kPreparedGroup) codes.
inline constexpr std::size_t kPreparedGroup = 16;
using PrepareFn = void (*)(const std::uint8_t* codes, std::size_t n, std::size_t code_size,
                           std::uint8_t* out) noexcept;

// The bank passes of the deep losses: deephash/logistic.hpp and deephash/contrastive.hpp state
// their contracts.
using SigmoidSoftplusFn = double (*)(float* x, std::size_t n) noexcept;
using ContrastivePassFn = double (*)(float* r, const float* s, std::size_t rows, std::size_t cols,
                                     const float* u_norm, const float* v_norm, float margin,
                                     float* row_weight) noexcept;

// The recording pass of the metrics with ties by index, over one chunk of `len` database items
// for one query whose distances (each < kRankBins) are `dist`. Each item adds 1 to its distance's
// count in one of kRankHistograms histograms of kRankBins counters, laid out one after the other in
// `seen` (the caller adds them up afterwards); each relevant item appends, in index order,
// d << 32 | (the items at its distance d before it: every histogram on entry plus this chunk's
// earlier items). An item is relevant when class_ids[i] == label, or, with class_ids null, when
// keys[i] == key. max_distance: the largest distance there can be (the code length in bits), which
// a pass may use to choose how it counts. Returns the number of records appended.
inline constexpr std::size_t kRankHistograms = 4, kRankBins = 256;
using RankChunkFn = std::size_t (*)(const dist_t* dist, std::size_t len, std::size_t max_distance,
                                    const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                                    std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept;

// The metrics' distances as bytes, for codes of at most kRankByteCodeSize bytes (every distance
// below kRankBins). The database is rewritten once into a level's layout: rank_prepare writes
// rank_prepared_size(n, code_size) bytes for n codes, in blocks of 32 codes, each block's part
// depending on its codes alone (so the codes from a multiple of 32 on start at
// rank_prepared_size(first, code_size)); `out` and `prepared` are 32-byte aligned. rank_distances
// then writes the distances of one query (code_size bytes) to the n codes of a prepared part, one
// byte each, to out[0 .. n); it may write up to the next multiple of 32.
inline constexpr std::size_t kRankByteCodeSize = 31;
inline constexpr std::size_t rank_prepared_size(std::size_t n, std::size_t code_size) noexcept {
  // Bytes a code: each code as nibbles in a lane of 2, 4 or 8 * words bytes.
  const std::size_t per_code = code_size <= 2 ? 4 : code_size <= 4 ? 8 : 16 * ((code_size + 7) / 8);
  return (n + 31) / 32 * 32 * per_code;
}
using RankPrepareFn = void (*)(const std::uint8_t* codes, std::size_t n, std::size_t code_size,
                               std::uint8_t* out) noexcept;
using RankDistancesFn = void (*)(const std::uint8_t* prepared, std::size_t n, std::size_t code_size,
                                 const std::uint8_t* query, std::uint8_t* out) noexcept;
// The recording pass (RankChunkFn's contract) over distances given as bytes; dist may be read up
// to the next multiple of 32 past len (those bytes are neither counted nor recorded).
using RankBytesFn = std::size_t (*)(const std::uint8_t* dist, std::size_t len, std::size_t max_distance,
                                    const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                                    std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept;

// Every field is set by each level (nullptr where a level has no such path), in this order.
struct KernelTable {
  SimdLevel level;
  DistancesFn distances;
  FilterFn filter;
  GatherFn gather;
  GatherNewFn gather_new;
  // Optional path for one block scanned by many queries: the block is rewritten once into a
  // layout that moves the query-independent part of the work out of the per-query loop, then
  // filter_prepared (same contract as filter, with `codes` the prepared block and the query in
  // the plain layout) runs each query over it. nullptr on levels that gain nothing.
  PreparedBytesFn prepared_bytes;
  PrepareFn prepare;
  FilterFn filter_prepared;
  // The bank passes, and the instruction set their builds were compiled for (a level without
  // builds of its own enters the best ones it runs: AVX-512 enters AVX2's).
  SigmoidSoftplusFn sigmoid_softplus;
  ContrastivePassFn contrastive_pass;
  SimdLevel bank_level;
  // The metrics' ranking pass; nullptr on levels that use the portable loop (metrics/).
  RankChunkFn rank_chunk;
  // The same pass over byte distances, and the byte distances over a prepared database; all
  // three nullptr on levels without them.
  RankPrepareFn rank_prepare;
  RankDistancesFn rank_distances;
  RankBytesFn rank_bytes;
  // The single-query filter with a lower bound first, and the code sizes it serves; both nullptr
  // on levels without one.
  FilterHalvesFn filter_halves;
  HalvesForSizeFn halves_for_size;
};

// One table per instruction set, each defined in its own translation unit (src/kernels/).
const KernelTable& scalar_table() noexcept;
#if defined(__x86_64__) || defined(_M_X64)
const KernelTable& avx2_table() noexcept;
const KernelTable& avx512_table() noexcept;
#endif
#if defined(__aarch64__)
const KernelTable& neon_table() noexcept;
#endif

// The table of the forced level, or of the best level this CPU has (thread-safe; the
// environment variable is read once, on first call).
const KernelTable& active() noexcept;

// The tables a scan of codes of one size runs: `single` for one query at a time (filter,
// distances, gather), `batch` for a group of queries over a cached piece of codes (the level's
// prepared layout where it has one). While a level is forced both are that level's table, for
// every size. Otherwise each size is calibrated on first use: every SIMD level this CPU runs is
// timed on a small synthetic block (well under a millisecond; scalar, the reference, only runs when
// forced or alone) and the fastest is kept for the life of the process.
struct WidthPlan {
  const KernelTable* single;
  const KernelTable* batch;
};
WidthPlan plan_for(std::size_t code_size) noexcept;

// What the calibration measured for this code size with the planned levels, in nanoseconds per
// code and query on one core, codes in L1: one query at a time, and a group of queries over a
// piece (preparing the piece included). Measured on first use like the plan (also while a level
// is forced); cost models compare them with the cost of other work.
struct ScanSpeed {
  double single_ns;
  double batch_ns;
};
ScanSpeed scan_speed(std::size_t code_size) noexcept;

// A level's table; nullptr for levels not compiled in or not supported by this CPU.
const KernelTable* table_for(SimdLevel level) noexcept;
// The forced level's table, nullptr while none is forced.
const KernelTable* forced_table() noexcept;

}  // namespace kernels

// Levels compiled into this build AND supported by this CPU, scalar first.
std::vector<SimdLevel> available_simd_levels();
// Levels compiled into this build (whether or not this CPU runs them).
std::vector<SimdLevel> compiled_simd_levels();
// The forced level, or the best level this CPU runs when none is forced.
SimdLevel simd_level() noexcept;
// Whether a level is forced (by DEEPHASH_SIMD or set_simd_level), rather than chosen per code size.
bool simd_level_forced() noexcept;
// Force a level by name ("scalar", "avx2", "avx512", "neon"), or "auto" to go back to the
// per-code-size plans. Throws InvalidArgument for an unknown name or one that this CPU cannot run.
void set_simd_level(const std::string& name);
SimdLevel best_simd_level() noexcept;

// The code sizes (bytes) calibrated so far in this process and their plans, smallest first.
std::vector<std::pair<std::size_t, kernels::WidthPlan>> simd_plans();

// Distances through the plan for this code size.
inline void hamming_distances(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                              std::size_t code_size, dist_t* out) noexcept {
  kernels::plan_for(code_size).single->distances(query, codes, n, code_size, out);
}

}  // namespace deephash
