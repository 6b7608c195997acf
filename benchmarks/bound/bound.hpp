// The bare kernel bound: loops that only count, for each query, the codes within a Hamming
// threshold. No top-k, no ids, no output beyond one count, no Python. benchmarks/bench_bound.py
// builds this program and reports the engine's scan as a fraction of what these loops reach on
// the same codes, queries and threads.
//
// Each instruction set has one counting loop over a layout of its choosing, built before timing:
// - scalar: codes zero-padded to whole 64-bit words, POPCNT per word;
// - avx2: rows padded to 8, 16 or a multiple of 32 bytes and split into low and high nibbles (one
//   byte each), 4, 2 or 1 rows per register: VPXOR, VPSHUFB with offset tables, VPSADBW (the
//   layout a group of queries amortises); avx2-rows: the same loop over plain padded rows, which
//   reads half the bytes (the layout one query is best served by);
// - avx512: groups of 16 codes interleaved 32-bit word by word (word w of 16 codes in one
//   register), VPOPCNTD and VPADDD per word, one compare per 16 codes: no lane sums at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace bound {

// Codes laid out for one loop: `stride` bytes per row (plain layouts) or per group of 16
// (interleaved), `n` codes.
struct Layout {
  std::vector<std::uint8_t> bytes;
  std::size_t n = 0, code_size = 0, row = 0;  // row: padded bytes per code
};

// Counts codes i in [begin, end) with popcount(query ^ code_i) <= threshold. `query` is in the
// same padded row form as the layout's codes (zero bytes past the code).
using CountFn = std::uint64_t (*)(const std::uint8_t* query, const Layout& codes, std::size_t begin,
                                  std::size_t end, int threshold);

std::uint64_t count_scalar(const std::uint8_t* query, const Layout& codes, std::size_t begin, std::size_t end,
                           int threshold);
std::uint64_t count_avx2(const std::uint8_t* query, const Layout& codes, std::size_t begin, std::size_t end,
                         int threshold);
std::uint64_t count_avx2_rows(const std::uint8_t* query, const Layout& codes, std::size_t begin, std::size_t end,
                              int threshold);
std::uint64_t count_avx512(const std::uint8_t* query, const Layout& codes, std::size_t begin, std::size_t end,
                           int threshold);

// Rows of `row` bytes (the code, then zeros).
Layout padded_rows(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::size_t row);
// Rows padded to 8, 16 or 32 * k bytes, split into low and high nibble bytes: groups of 4 (8-byte
// rows) or 2 (16-byte rows) rows, 32 low-nibble bytes then 32 high-nibble bytes; wider rows each
// as their low nibbles then their high nibbles.
Layout nibble_split_rows(const std::uint8_t* codes, std::size_t n, std::size_t code_size);
// Groups of 16 codes, 32-bit word w of the 16 codes together (64 bytes), zero-padded.
Layout interleaved_words(const std::uint8_t* codes, std::size_t n, std::size_t code_size);

// The arithmetic ceilings of two loops, on the calling thread for about `seconds`: how many of the
// loop's steps a second the core retires with everything in registers (no loads, no compares, no
// loop over codes). A step is one word of the code: avx512, one 32-bit word of 16 codes (VPXORD,
// VPOPCNTD, VPADDD); scalar, one 64-bit word of one code (XOR, POPCNT, ADD). A code of c bytes
// then needs ceil(c / 4) / 16 (avx512) or ceil(c / 8) (scalar) steps, so no loop built of these
// instructions counts more codes a second than the steps a second over that.
double ceiling_avx512_steps_per_s(double seconds);
double ceiling_scalar_steps_per_s(double seconds);

}  // namespace bound
