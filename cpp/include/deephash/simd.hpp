// Runtime SIMD dispatch for the Hamming kernels.
//
// The kernel table is chosen once, on first use, from CPUID (x86-64) or the build target (ARM),
// unless the environment variable DEEPHASH_SIMD=scalar|avx2|avx512|neon forces a level.
// set_simd_level() switches it later (tests use it to run every level).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
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

// Bytes per code of a level's prepared block layout for this code size, or 0 where it has none.
using PreparedBytesFn = std::size_t (*)(std::size_t code_size) noexcept;

// Rewrites n codes into the prepared layout, prepared_bytes(code_size) bytes each. A layout may
// work in groups of up to kPreparedGroup codes: `out` must hold round_up(n, kPreparedGroup) codes.
inline constexpr std::size_t kPreparedGroup = 16;
using PrepareFn = void (*)(const std::uint8_t* codes, std::size_t n, std::size_t code_size,
                           std::uint8_t* out) noexcept;

struct KernelTable {
  SimdLevel level;
  DistancesFn distances;
  FilterFn filter;
  GatherFn gather;
  // Optional path for one block scanned by many queries: the block is rewritten once into a
  // layout that moves the query-independent part of the work out of the per-query loop, then
  // filter_prepared (same contract as filter, with `codes` the prepared block and the query in
  // the plain layout) runs each query over it. Absent (nullptr) on levels that gain nothing.
  PreparedBytesFn prepared_bytes = nullptr;
  PrepareFn prepare = nullptr;
  FilterFn filter_prepared = nullptr;
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

// The table in use (thread-safe; resolved once on first call).
const KernelTable& active() noexcept;

}  // namespace kernels

// Levels compiled into this build AND supported by this CPU, scalar first.
std::vector<SimdLevel> available_simd_levels();
// Levels compiled into this build (whether or not this CPU runs them).
std::vector<SimdLevel> compiled_simd_levels();
SimdLevel simd_level() noexcept;
// Select a level by name ("scalar", "avx2", "avx512", "neon", or "auto" for the best one).
// Throws InvalidArgument for an unknown name or one that this CPU cannot run.
void set_simd_level(const std::string& name);
SimdLevel best_simd_level() noexcept;

// Convenience wrappers over the active table.
inline void hamming_distances(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                              std::size_t code_size, dist_t* out) noexcept {
  kernels::active().distances(query, codes, n, code_size, out);
}

}  // namespace deephash
