// AVX2 Hamming kernels (x86-64). Compiled with -mavx2 -mpopcnt on this file alone.
//
// Instructions relied on: VPXOR, VPAND, VPSRLW, VPSHUFB (nibble-table popcount of bytes),
// VPADDB, VPSADBW (byte sums into 64-bit lanes, also doing the low + high nibble add),
// VPUNPCK{L,H}QDQ, VPERM2I128, VPERMQ, VPCMPGTQ + VMOVMSKPD (threshold test of 4 codes at once), POPCNT (tails, other code sizes),
// VPBLENDD (halves of two codes in one register), VPMADDUBSW + VPMADDWD (4-byte sums), VPERMD.
//
// 2- and 4-byte codes: 16 and 8 per register, summed per code by VPMADDUBSW / VPMADDWD;
// 8-byte codes: 4 codes per register ("vertical"); 16-byte codes: 2 per register;
// 32/64/128/256-byte codes: a group of 4 codes is reduced to one register of 4 counts.
// Other sizes use the portable loop, which here compiles to hardware POPCNT. Batches of queries
// take prepared layouts (nibble-split once per piece): the word layout at 5-32 bytes (8 excepted),
// padded vectors above.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "avx2_nibbles.hpp"
#include "bank_kernels.hpp"
#include "ranking_kernels.hpp"
#include "deephash/simd.hpp"

namespace deephash::kernels {
namespace avx2_impl {
#include "hamming_portable.inl"

// Four codes' partial sums (a..d, 4 uint64 lanes each) -> one register of their 4 totals.
static inline __m256i sum_lanes_of_four(__m256i a, __m256i b, __m256i c, __m256i d) noexcept {
  const __m256i ab = _mm256_add_epi64(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
  const __m256i cd = _mm256_add_epi64(_mm256_unpacklo_epi64(c, d), _mm256_unpackhi_epi64(c, d));
  return _mm256_add_epi64(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));
}

// Each "Quad" computes the distances of 4 consecutive codes as 4 uint64 lanes. `stride` is the
// number of bytes from one code to the next; `reach` the number of bytes one call may read from
// its first code (whole vectors can reach past the fourth code's end: the loops below stop while
// that stays inside the codes and leave the last few codes to the portable loop).
struct Quad8 {  // 8-byte codes: one register holds 4 codes
  static constexpr std::size_t stride = 8, reach = 32;
  __m256i q;
  explicit Quad8(const std::uint8_t* query) noexcept : q(_mm256_set1_epi64x(static_cast<long long>(load_u64(query)))) {}
  __m256i operator()(const std::uint8_t* c) const noexcept {
    return popcount_lanes(_mm256_xor_si256(loadu(c), q));
  }
};

// [a0 a1 | b0 b1] and [c0 c1 | d0 d1] (two partial counts per code) -> [a b c d].
static inline __m256i sum_pairs_of_two(__m256i ab, __m256i cd) noexcept {
  const __m256i s = _mm256_add_epi64(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
  return _mm256_permute4x64_epi64(s, 0xD8);  // [a c | b d] -> [a b c d]
}

struct Quad16 {  // 16-byte codes: one register holds 2 codes
  static constexpr std::size_t stride = 16, reach = 64;
  __m256i q;
  explicit Quad16(const std::uint8_t* query) noexcept
      : q(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(query)))) {}
  __m256i operator()(const std::uint8_t* c) const noexcept {
    return sum_pairs_of_two(popcount_lanes(_mm256_xor_si256(loadu(c), q)),
                            popcount_lanes(_mm256_xor_si256(loadu(c + 32), q)));
  }
};

static inline __m256i loadu2(const std::uint8_t* hi, const std::uint8_t* lo) noexcept {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(lo))),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi)), 1);
}

// The query's first `cs` bytes, zero-padded to `size` bytes (size <= 128).
struct PaddedQuery {
  alignas(32) std::uint8_t bytes[128];
  PaddedQuery(const std::uint8_t* query, std::size_t cs, std::size_t size) noexcept {
    std::memset(bytes, 0, size);
    std::memcpy(bytes, query, cs);
  }
};

// Codes of 1..7 bytes: two 16-byte loads bring 4 codes, VPSHUFB moves each into its own 64-bit
// lane with zeros above it.
struct QuadSmall {
  std::size_t stride, reach;
  __m256i spread, q;
  QuadSmall(const std::uint8_t* query, std::size_t cs) noexcept : stride(cs), reach(2 * cs + 16) {
    alignas(32) std::int8_t idx[32];
    for (std::size_t b = 0; b < 32; ++b) {
      const std::size_t slot = (b % 16) / 8, byte = b % 8;
      idx[b] = static_cast<std::int8_t>(byte < cs ? slot * cs + byte : 0x80);
    }
    spread = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx));
    const PaddedQuery p(query, cs, 8);
    q = _mm256_set1_epi64x(static_cast<long long>(load_u64(p.bytes)));
  }
  __m256i operator()(const std::uint8_t* c) const noexcept {
    const __m256i v = _mm256_shuffle_epi8(loadu2(c + 2 * stride, c), spread);
    return popcount_lanes(_mm256_xor_si256(v, q));
  }
};

// Codes of 9..15 bytes: one per 128-bit lane, the bytes past the code masked off.
struct QuadMid {
  std::size_t stride, reach;
  __m256i keep, q;
  QuadMid(const std::uint8_t* query, std::size_t cs) noexcept : stride(cs), reach(3 * cs + 16) {
    alignas(32) std::int8_t mask[32];
    for (std::size_t b = 0; b < 32; ++b) mask[b] = static_cast<std::int8_t>(b % 16 < cs ? -1 : 0);
    keep = _mm256_load_si256(reinterpret_cast<const __m256i*>(mask));
    const PaddedQuery p(query, cs, 16);
    q = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(p.bytes)));
  }
  __m256i operator()(const std::uint8_t* c) const noexcept {
    const __m256i ab = _mm256_and_si256(loadu2(c + stride, c), keep);
    const __m256i cd = _mm256_and_si256(loadu2(c + 3 * stride, c + 2 * stride), keep);
    return sum_pairs_of_two(popcount_lanes(_mm256_xor_si256(ab, q)), popcount_lanes(_mm256_xor_si256(cd, q)));
  }
};

// Codes of up to 32 * NV bytes (more than 32 * (NV - 1)): NV loads per code, the last one masked
// to the code's bytes unless the size is exactly 32 * NV.
template <std::size_t NV, bool Masked>
struct QuadWide {
  std::size_t stride, reach;
  __m256i q[NV], keep;
  QuadWide(const std::uint8_t* query, std::size_t cs) noexcept : stride(cs), reach(3 * cs + 32 * NV) {
    const PaddedQuery p(query, cs, 32 * NV);
    for (std::size_t v = 0; v < NV; ++v) q[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.bytes + 32 * v));
    alignas(32) std::int8_t mask[32];
    for (std::size_t b = 0; b < 32; ++b) mask[b] = static_cast<std::int8_t>(32 * (NV - 1) + b < cs ? -1 : 0);
    keep = _mm256_load_si256(reinterpret_cast<const __m256i*>(mask));
  }
  __m256i chunk(const std::uint8_t* c, std::size_t v) const noexcept {
    const __m256i x = loadu(c + 32 * v);
    return _mm256_xor_si256(Masked && v == NV - 1 ? _mm256_and_si256(x, keep) : x, q[v]);
  }
  __m256i one(const std::uint8_t* c) const noexcept {  // 4 partial sums of one code
    NibbleCounts acc = nibble_counts(chunk(c, 0));
    for (std::size_t v = 1; v < NV; ++v) {  // byte sums stay <= 8 * NV <= 32: no overflow
      const NibbleCounts n = nibble_counts(chunk(c, v));
      acc.lo = _mm256_add_epi8(acc.lo, n.lo);
      acc.hi = _mm256_add_epi8(acc.hi, n.hi);
    }
    return _mm256_sad_epu8(acc.lo, acc.hi);
  }
  __m256i operator()(const std::uint8_t* c) const noexcept {
    return sum_lanes_of_four(one(c), one(c + stride), one(c + 2 * stride), one(c + 3 * stride));
  }
};

// Prepared layout for codes of up to 32 * NV bytes: each code, zero-padded to 32 * NV bytes, as
// its low nibbles (one per byte) then its high nibbles. The AND / shift that split a code into
// table indices are done once per block instead of once per query; a query then costs XOR,
// VPSHUFB and VPSADBW per 32 bytes. Padding bytes are zero in code and query: they count 0.
template <std::size_t NV>
struct PreparedWide {
  static constexpr std::size_t stride = 64 * NV, reach = 4 * 64 * NV;
  __m256i lo[NV], hi[NV];  // the query's nibbles
  PreparedWide(const std::uint8_t* query, std::size_t cs) noexcept {
    const PaddedQuery p(query, cs, 32 * NV);
    const __m256i low = _mm256_set1_epi8(0x0f);
    for (std::size_t v = 0; v < NV; ++v) {
      const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.bytes + 32 * v));
      lo[v] = _mm256_and_si256(x, low);
      hi[v] = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    }
  }
  __m256i one(const std::uint8_t* p) const noexcept {
    const __m256i lo_tab = lo_table(), hi_tab = hi_table();
    __m256i l = _mm256_shuffle_epi8(lo_tab, _mm256_xor_si256(loadu(p), lo[0]));
    __m256i h = _mm256_shuffle_epi8(hi_tab, _mm256_xor_si256(loadu(p + 32 * NV), hi[0]));
    for (std::size_t v = 1; v < NV; ++v) {
      l = _mm256_add_epi8(l, _mm256_shuffle_epi8(lo_tab, _mm256_xor_si256(loadu(p + 32 * v), lo[v])));
      h = _mm256_add_epi8(h, _mm256_shuffle_epi8(hi_tab, _mm256_xor_si256(loadu(p + 32 * NV + 32 * v), hi[v])));
    }
    return _mm256_sad_epu8(l, h);
  }
  __m256i operator()(const std::uint8_t* p) const noexcept {
    return sum_lanes_of_four(one(p), one(p + stride), one(p + 2 * stride), one(p + 3 * stride));
  }
};

// One prepared code at a time (the tail of a block): the nibble bytes of code and query differ in
// exactly the bits where the codes differ, so the plain 64-bit popcount loop over the 64 * NV
// prepared bytes gives the distance.
template <std::size_t NV>
struct PreparedTail {
  std::uint64_t q[8 * NV];
  PreparedTail(const std::uint8_t* query, std::size_t cs) noexcept {
    const PaddedQuery p(query, cs, 32 * NV);
    for (std::size_t w = 0; w < 4 * NV; ++w) {
      const std::uint64_t x = load_u64(p.bytes + 8 * w);
      q[w] = x & 0x0f0f0f0f0f0f0f0fULL;
      q[4 * NV + w] = (x >> 4) & 0x0f0f0f0f0f0f0f0fULL;
    }
  }
  dist_t operator()(const std::uint8_t* p) const noexcept {
    int d = 0;
    for (std::size_t w = 0; w < 8 * NV; ++w) d += __builtin_popcountll(q[w] ^ load_u64(p + 8 * w));
    return d;
  }
};

// The first code index the vector loops leave to the scalar tail: groups of `group` codes run
// while everything a call reads lies inside the n codes.
template <class Quad>
static std::size_t vector_end(const Quad& quad, std::size_t n, std::size_t group) noexcept {
  // A group starting at i reads up to (i + group - 4) * stride + reach.
  const std::size_t total = n * quad.stride;
  if ((group - 4) * quad.stride + quad.reach > total) return 0;
  const std::size_t last_start = (total - quad.reach) / quad.stride - (group - 4);
  return (last_start / group + 1) * group;
}

// Distances of codes [0, end) with end = vector_end(quad, n, 4); returns end.
template <class Quad>
static std::size_t distances_quads(const Quad& quad, const std::uint8_t* codes, std::size_t n, dist_t* out) noexcept {
  const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0);
  const std::size_t end = vector_end(quad, n, 4);
  for (std::size_t i = 0; i < end; i += 4) {
    const __m256i d = _mm256_permutevar8x32_epi32(quad(codes + i * quad.stride), pick);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(d));
  }
  return end;
}

// Filters codes [0, end) with end = vector_end(quad, n, 16); returns the hits, sets *done = end.
template <class Quad>
static std::size_t filter_quads(const Quad& quad, const std::uint8_t* codes, std::size_t n, dist_t max_distance,
                                std::uint32_t* positions, dist_t* distances, std::size_t* done) noexcept {
  const std::size_t cs = quad.stride;
  const __m256i limit = _mm256_set1_epi64x(static_cast<long long>(max_distance) + 1);
  alignas(32) std::uint64_t lanes[16];
  std::size_t m = 0;
  const std::size_t end = vector_end(quad, n, 16);
  for (std::size_t i = 0; i < end; i += 16) {
    const __m256i d0 = quad(codes + i * cs);
    const __m256i d1 = quad(codes + (i + 4) * cs);
    const __m256i d2 = quad(codes + (i + 8) * cs);
    const __m256i d3 = quad(codes + (i + 12) * cs);
    unsigned mask = static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(limit, d0))));
    mask |= static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(limit, d1)))) << 4;
    mask |= static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(limit, d2)))) << 8;
    mask |= static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(limit, d3)))) << 12;
    if (mask == 0) continue;  // the common case once the threshold is low
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), d0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 4), d1);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8), d2);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 12), d3);
    while (mask) {
      const unsigned b = static_cast<unsigned>(__builtin_ctz(mask));
      positions[m] = static_cast<std::uint32_t>(i + b);
      distances[m] = static_cast<dist_t>(lanes[b]);
      ++m;
      mask &= mask - 1;
    }
  }
  *done = end;
  return m;
}

// Calls visit(quad) with the vector functor for this code size; returns false for sizes that have
// none (above 128 bytes), which run the portable loop (hardware POPCNT here).
template <class Visit>
static bool with_quad(const std::uint8_t* query, std::size_t cs, Visit&& visit) noexcept {
  if (cs < 8) return visit(QuadSmall(query, cs)), true;
  if (cs == 8) return visit(Quad8(query)), true;
  if (cs < 16) return visit(QuadMid(query, cs)), true;
  if (cs == 16) return visit(Quad16(query)), true;
  if (cs < 32) return visit(QuadWide<1, true>(query, cs)), true;
  if (cs == 32) return visit(QuadWide<1, false>(query, cs)), true;
  if (cs < 64) return visit(QuadWide<2, true>(query, cs)), true;
  if (cs == 64) return visit(QuadWide<2, false>(query, cs)), true;
  if (cs < 96) return visit(QuadWide<3, true>(query, cs)), true;
  if (cs == 96) return visit(QuadWide<3, false>(query, cs)), true;
  if (cs < 128) return visit(QuadWide<4, true>(query, cs)), true;
  if (cs == 128) return visit(QuadWide<4, false>(query, cs)), true;
  return false;
}

// 2- and 4-byte codes (16 and 32 bits): 16 or 8 codes a register, each code's byte counts summed
// into its own 16- or 32-bit lane by VPMADDUBSW (then VPMADDWD), with no lane shuffles
// (QuadSmall spread 4 codes over 64-bit lanes with a shuffle, then needed another to gather their
// sums).
template <std::size_t CS>
struct Narrow {
  static_assert(CS == 2 || CS == 4, "16- and 32-bit lanes");
  static constexpr std::size_t per_register = 32 / CS;
  using Lane = std::conditional_t<CS == 2, std::int16_t, std::int32_t>;
  __m256i q;
  explicit Narrow(const std::uint8_t* query) noexcept {
    Lane code;
    std::memcpy(&code, query, CS);
    q = CS == 2 ? _mm256_set1_epi16(static_cast<std::int16_t>(code)) : _mm256_set1_epi32(static_cast<std::int32_t>(code));
  }
  __m256i operator()(const std::uint8_t* c) const noexcept {  // the distances of codes c .. c + per_register - 1
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                           0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i x = _mm256_xor_si256(loadu(c), q);
    const __m256i bytes = _mm256_add_epi8(_mm256_shuffle_epi8(table, _mm256_and_si256(x, low)),
                                          _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(x, 4), low)));
    const __m256i pairs = _mm256_maddubs_epi16(bytes, _mm256_set1_epi8(1));
    return CS == 2 ? pairs : _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
  }
  // One bit per code of two registers, in code order: those within the bound.
  static unsigned passing(__m256i limit, __m256i d0, __m256i d1) noexcept {
    if (CS == 4)
      return static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(limit, d0)))) |
             static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(limit, d1)))) << 8;
    // The 16-bit compares narrowed to bytes (VPACKSSWB works within 128-bit lanes: VPERMQ restores
    // the order), then VPMOVMSKB.
    return static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_permute4x64_epi64(
        _mm256_packs_epi16(_mm256_cmpgt_epi16(limit, d0), _mm256_cmpgt_epi16(limit, d1)), 0xD8)));
  }
};

template <std::size_t CS>
static std::size_t distances_narrow(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                                    dist_t* out) noexcept {
  const Narrow<CS> narrow(query);
  std::size_t i = 0;
  for (; i + Narrow<CS>::per_register <= n; i += Narrow<CS>::per_register) {
    const __m256i d = narrow(codes + CS * i);
    if (CS == 4) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), d);
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_cvtepu16_epi32(_mm256_castsi256_si128(d)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 8), _mm256_cvtepu16_epi32(_mm256_extracti128_si256(d, 1)));
    }
  }
  return i;
}

// Filters whole pairs of registers of codes (one branch per pair); returns the hits, sets *done.
template <std::size_t CS>
static std::size_t filter_narrow(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                                 dist_t max_distance, std::uint32_t* positions, dist_t* distances,
                                 std::size_t* done) noexcept {
  using N = Narrow<CS>;
  const N narrow(query);
  // Counts are 0..8 * CS: a bound outside [-1, 8 * CS] is the same as that range's end.
  const auto bound = std::min<dist_t>(std::max<dist_t>(max_distance, -1), static_cast<dist_t>(8 * CS)) + 1;
  const __m256i limit = CS == 2 ? _mm256_set1_epi16(static_cast<std::int16_t>(bound)) : _mm256_set1_epi32(bound);
  alignas(32) typename N::Lane lanes[2 * N::per_register];
  std::size_t m = 0, i = 0;
  for (; i + 2 * N::per_register <= n; i += 2 * N::per_register) {
    const __m256i d0 = narrow(codes + CS * i), d1 = narrow(codes + CS * i + 32);
    unsigned mask = N::passing(limit, d0, d1);
    if (mask == 0) continue;
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), d0);
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + N::per_register), d1);
    for (; mask; mask &= mask - 1) {
      const unsigned b = static_cast<unsigned>(__builtin_ctz(mask));
      positions[m] = static_cast<std::uint32_t>(i + b);
      distances[m] = lanes[b];
      ++m;
    }
  }
  *done = i;
  return m;
}

static void distances(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                      std::size_t code_size, dist_t* out) noexcept {
  std::size_t i = 0;
  if (code_size == 2)
    i = distances_narrow<2>(query, codes, n, out);
  else if (code_size == 4)
    i = distances_narrow<4>(query, codes, n, out);
  else
    with_quad(query, code_size, [&](const auto& quad) { i = distances_quads(quad, codes, n, out); });
  portable_distances(query, codes + i * code_size, n - i, code_size, out + i);
}

static std::size_t filter(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                          std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                          dist_t* dists) noexcept {
  std::size_t m = 0, i = 0;
  if (code_size == 2 || code_size == 4) {
    m = code_size == 2 ? filter_narrow<2>(query, codes, n, max_distance, positions, dists, &i)
                       : filter_narrow<4>(query, codes, n, max_distance, positions, dists, &i);
    return m + portable_filter_from(i, query, codes, n, code_size, max_distance, positions + m, dists + m);
  }
  with_quad(query, code_size,
            [&](const auto& quad) { m = filter_quads(quad, codes, n, max_distance, positions, dists, &i); });
  return m + portable_filter_from(i, query, codes, n, code_size, max_distance, positions + m, dists + m);
}

// Prepared layouts. Codes of 5 to 32 bytes (8 excepted): the word layout below. Codes of 33 to 128
// bytes: PreparedWide, each code padded to 32 * NV bytes (NV = 2..4 registers).
static std::size_t prepared_vectors(std::size_t code_size) noexcept {
  return code_size > 32 && code_size <= 128 ? (code_size + 31) / 32 : 0;
}

// The word layout (5-32-byte codes, 8 bytes excepted): groups of 16 codes, each code as W = 1 to 4
// 8-byte words (zero past its end) split into nibbles. Register k of a group holds word v of codes
// k, k + 4, k + 8 and k + 12, one per 64-bit lane, so one VPSADBW gives four whole codes' counts
// with no lane sums (the plain 16-byte filter spends most of its work summing each code's two
// halves), and the four registers' counts shifted into 16-bit fields come out in code order.
// 8-byte codes already fill a lane each in the plain filter, which runs as fast. A group of 16
// codes of 20 bytes costs 3/4 of the registers that padding them to 32 bytes did (FAISS has a
// routine of its own for 20 bytes); an earlier head layout for 17-20 bytes ran 0.84x as fast.
constexpr std::size_t kWordGroup = 16;
constexpr std::size_t word_group_bytes(std::size_t words) noexcept { return 4 * words * 64; }

static std::size_t layout_words(std::size_t code_size) noexcept {
  return code_size >= 5 && code_size <= 32 && code_size != 8 ? (code_size + 7) / 8 : 0;
}

static void prepare_words(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::uint8_t* out) noexcept {
  const std::size_t words = layout_words(code_size), total = n * code_size;
  const __m256i low = _mm256_set1_epi8(0x0f);
  // Words 2p and 2p + 1 of code i (zero past its end): one load where the bytes after them are
  // readable, masked to the code.
  alignas(16) std::int8_t keep_bytes[2][16];
  for (std::size_t p = 0; p < 2; ++p)
    for (std::size_t b = 0; b < 16; ++b) keep_bytes[p][b] = static_cast<std::int8_t>(16 * p + b < code_size ? -1 : 0);
  auto pair = [&](std::size_t i, std::size_t p) {
    if (i >= n) return _mm_setzero_si128();
    const std::size_t at = i * code_size + 16 * p;
    if (at + 16 <= total)
      return _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + at)),
                           _mm_load_si128(reinterpret_cast<const __m128i*>(keep_bytes[p])));
    alignas(16) std::uint8_t buf[16] = {};
    std::memcpy(buf, codes + at, std::min<std::size_t>(16, code_size - 16 * p));
    return _mm_load_si128(reinterpret_cast<const __m128i*>(buf));
  };
  auto store = [&](std::uint8_t* r, __m256i x) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(r), _mm256_and_si256(x, low));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(r + 32), _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
  };
  for (std::size_t g0 = 0; g0 < n; g0 += kWordGroup) {
    std::uint8_t* group = out + g0 / kWordGroup * word_group_bytes(words);
    for (std::size_t k = 0; k < 4; ++k) {
      for (std::size_t p = 0; 2 * p < words; ++p) {
        // [code k | code k + 8] and [code k + 4 | code k + 12]: their low and high words
        // interleaved give words 2p and 2p + 1 of codes k, k + 4, k + 8, k + 12.
        const __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(pair(g0 + k, p)), pair(g0 + k + 8, p), 1);
        const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(pair(g0 + k + 4, p)), pair(g0 + k + 12, p), 1);
        std::uint8_t* r = group + (k * words + 2 * p) * 64;
        store(r, _mm256_unpacklo_epi64(a, b));
        if (2 * p + 1 < words) store(r + 64, _mm256_unpackhi_epi64(a, b));
      }
    }
  }
}

// The 16 distances of one group of the word layout, in 16-bit fields in code order.
template <std::size_t W>
struct WordGroup {
  static constexpr std::size_t bytes = word_group_bytes(W);
  __m256i qlo[W], qhi[W];
  WordGroup(const std::uint8_t* query, std::size_t code_size) noexcept {
    const __m256i low = _mm256_set1_epi8(0x0f);
    for (std::size_t v = 0; v < W; ++v) {
      const __m256i x = _mm256_set1_epi64x(static_cast<long long>(code_word(query, v, code_size, code_size)));
      qlo[v] = _mm256_and_si256(x, low);
      qhi[v] = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    }
  }
  __m256i counts(const std::uint8_t* r) const noexcept {  // codes k, k + 4, k + 8, k + 12: 64-bit lanes
    __m256i l = _mm256_shuffle_epi8(lo_table(), _mm256_xor_si256(loadu(r), qlo[0]));
    __m256i h = _mm256_shuffle_epi8(hi_table(), _mm256_xor_si256(loadu(r + 32), qhi[0]));
    for (std::size_t v = 1; v < W; ++v) {
      l = _mm256_add_epi8(l, _mm256_shuffle_epi8(lo_table(), _mm256_xor_si256(loadu(r + 64 * v), qlo[v])));
      h = _mm256_add_epi8(h, _mm256_shuffle_epi8(hi_table(), _mm256_xor_si256(loadu(r + 64 * v + 32), qhi[v])));
    }
    return _mm256_sad_epu8(l, h);
  }
  __m256i operator()(const std::uint8_t* g) const noexcept {
    __m256i d = counts(g);
    d = _mm256_or_si256(d, _mm256_slli_epi64(counts(g + 64 * W), 16));
    d = _mm256_or_si256(d, _mm256_slli_epi64(counts(g + 128 * W), 32));
    return _mm256_or_si256(d, _mm256_slli_epi64(counts(g + 192 * W), 48));
  }
};

template <std::size_t W>
static std::size_t filter_words(const std::uint8_t* query, const std::uint8_t* prepared, std::size_t n,
                                std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                                dist_t* dists) noexcept {
  if (max_distance < 0) return 0;
  const WordGroup<W> group(query, code_size);
  // Distances are at most 8 * code_size: a wider bound is the same as that.
  const __m256i limit = _mm256_set1_epi16(
      static_cast<short>(std::min<dist_t>(max_distance, static_cast<dist_t>(8 * code_size)) + 1));
  alignas(32) std::uint16_t lanes[kWordGroup];
  std::size_t m = 0;
  for (std::size_t g0 = 0; g0 < n; g0 += kWordGroup) {
    const __m256i d = group(prepared + g0 / kWordGroup * WordGroup<W>::bytes);
    // Two mask bits a code (VPMOVMSKB of 16-bit lanes): keep the even ones.
    unsigned mask = static_cast<unsigned>(_mm256_movemask_epi8(_mm256_cmpgt_epi16(limit, d))) & 0x55555555u;
    if (mask == 0) continue;
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), d);
    for (; mask; mask &= mask - 1) {
      const std::size_t lane = static_cast<std::size_t>(__builtin_ctz(mask)) / 2;
      if (g0 + lane >= n) break;  // the padding codes of the last group
      positions[m] = static_cast<std::uint32_t>(g0 + lane);
      dists[m] = lanes[lane];
      ++m;
    }
  }
  return m;
}

static std::size_t prepared_bytes(std::size_t code_size) noexcept {
  if (layout_words(code_size)) return word_group_bytes(layout_words(code_size)) / kWordGroup;
  return 64 * prepared_vectors(code_size);
}

static void prepare(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::uint8_t* out) noexcept {
  if (layout_words(code_size)) return prepare_words(codes, n, code_size, out);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const std::size_t nv = prepared_vectors(code_size), total = n * code_size;
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t at = i * code_size;
    std::uint8_t* p = out + 64 * nv * i;
    for (std::size_t v = 0; v < nv; ++v) {
      const std::size_t begin = at + 32 * v, len = std::min<std::size_t>(32, code_size - 32 * v);
      __m256i x;
      if (len == 32) {
        x = loadu(codes + begin);
      } else if (begin + 32 <= total) {  // the next code's bytes follow: mask them off
        alignas(32) std::int8_t mask[32];
        for (std::size_t b = 0; b < 32; ++b) mask[b] = static_cast<std::int8_t>(b < len ? -1 : 0);
        x = _mm256_and_si256(loadu(codes + begin), _mm256_load_si256(reinterpret_cast<const __m256i*>(mask)));
      } else {  // the last code: never read past it
        alignas(32) std::uint8_t buf[32] = {};
        std::memcpy(buf, codes + begin, len);
        x = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 32 * v), _mm256_and_si256(x, low));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 32 * nv + 32 * v),
                          _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
    }
  }
}

template <std::size_t NV>
static std::size_t filter_prepared_nv(const std::uint8_t* query, const std::uint8_t* prepared, std::size_t n,
                                      std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                                      dist_t* dists) noexcept {
  std::size_t i = 0;
  std::size_t m = filter_quads(PreparedWide<NV>(query, code_size), prepared, n, max_distance, positions, dists, &i);
  const PreparedTail<NV> tail(query, code_size);
  for (; i < n; ++i) {
    const dist_t d = tail(prepared + 64 * NV * i);
    positions[m] = static_cast<std::uint32_t>(i);
    dists[m] = d;
    m += d <= max_distance;
  }
  return m;
}

static std::size_t filter_prepared(const std::uint8_t* query, const std::uint8_t* prepared, std::size_t n,
                                   std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                                   dist_t* dists) noexcept {
  switch (layout_words(code_size)) {
    case 1: return filter_words<1>(query, prepared, n, code_size, max_distance, positions, dists);
    case 2: return filter_words<2>(query, prepared, n, code_size, max_distance, positions, dists);
    case 3: return filter_words<3>(query, prepared, n, code_size, max_distance, positions, dists);
    case 4: return filter_words<4>(query, prepared, n, code_size, max_distance, positions, dists);
    default: break;
  }
  switch (prepared_vectors(code_size)) {
    case 2: return filter_prepared_nv<2>(query, prepared, n, code_size, max_distance, positions, dists);
    case 3: return filter_prepared_nv<3>(query, prepared, n, code_size, max_distance, positions, dists);
    case 4: return filter_prepared_nv<4>(query, prepared, n, code_size, max_distance, positions, dists);
    default: return 0;  // prepared_bytes() is 0 for every other size: never called
  }
}


// ---- One query, a lower bound first (filter_halves) ------------------------------------------
// A code's distance is at least the number of differing bits in any part of it. Here each code is
// bounded by half its bytes, and the halves of several codes share one register, so the first
// test costs about half the vector work of the full count (the nibble table's VPSHUFB and shifts,
// which on AVX2 cores share two ports, are the limit). A blend of two plain loads picks the
// halves, different ones for neighbouring codes: lanes come out in code order 0, 2, 1, 3.
//
// 32-byte codes: one 16-byte half of each of 2 codes per register ([c0.lo | c1.hi]); two such
// registers give [c0, c2 | c1, c3].
struct Halves32 {
  static constexpr std::size_t stride = 32;
  __m256i q;
  explicit Halves32(const std::uint8_t* query) noexcept : q(loadu(query)) {}
  __m256i operator()(const std::uint8_t* c) const noexcept {
    const __m256i x = popcount_lanes(_mm256_xor_si256(_mm256_blend_epi32(loadu(c), loadu(c + 32), 0xF0), q));
    const __m256i y = popcount_lanes(_mm256_xor_si256(_mm256_blend_epi32(loadu(c + 64), loadu(c + 96), 0xF0), q));
    return _mm256_add_epi64(_mm256_unpacklo_epi64(x, y), _mm256_unpackhi_epi64(x, y));
  }
};

// 32-byte codes only: for 16-byte codes (4 words of 4 codes a register) the test cost half of
// filter() where no code passed it, but as much as filter() where 5% did, and single queries over
// clustered 128-bit codes ran no faster (10k-100k codes, the AVX2-only EPYC).
static bool halves_for_size(std::size_t code_size) noexcept { return code_size == 32; }

// Codes are tested in chunks of kHalvesChunk. After a chunk in which more than one code in eight
// passed the first test, the rest of the call runs filter(): codes that mostly pass cost the bound
// and the full count both. (Listing a group's survivors without a branch, by a table of lane
// masks, cost more than the mispredicted branches it saved: 0.47 against 0.26 ns a 16-byte code
// where none passes, level where 5% pass.)
constexpr std::size_t kHalvesChunk = 256;

static std::size_t filter_halves32(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                                   dist_t max_distance, std::uint32_t* positions, dist_t* distances,
                                   bool* gave_up) noexcept {
  constexpr std::size_t cs = Halves32::stride, W = cs / 8;
  const Halves32 h(query);
  std::uint64_t qw[W];
  for (std::size_t w = 0; w < W; ++w) qw[w] = load_u64(query + 8 * w);
  const __m256i limit = _mm256_set1_epi64x(static_cast<long long>(max_distance) + 1);
  const std::size_t end = n / 16 * 16;  // a group of 16 reads its own 16 codes only
  std::size_t m = 0, i = 0;
  *gave_up = false;
  while (i < end) {
    const std::size_t chunk_end = std::min(end, i + kHalvesChunk);
    std::size_t passed = 0;
    for (; i < chunk_end; i += 16) {
      unsigned mask = 0;
      for (std::size_t g = 0; g < 4; ++g) {
        const __m256i d = h(codes + (i + 4 * g) * cs);
        mask |= static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(limit, d)))) << (4 * g);
      }
      if (mask == 0) continue;
      mask = (mask & 0x9999u) | ((mask & 0x2222u) << 1) | ((mask & 0x4444u) >> 1);  // lanes 0 2 1 3 -> code order
      passed += static_cast<std::size_t>(__builtin_popcount(mask));
      do {
        const std::size_t j = i + static_cast<std::size_t>(__builtin_ctz(mask));
        const std::uint8_t* code = codes + j * cs;
        int d = 0;
        for (std::size_t w = 0; w < W; ++w) d += __builtin_popcountll(qw[w] ^ load_u64(code + 8 * w));
        positions[m] = static_cast<std::uint32_t>(j);
        distances[m] = d;
        m += d <= max_distance;
        mask &= mask - 1;
      } while (mask);
    }
    if (8 * passed > kHalvesChunk) {
      *gave_up = true;
      break;
    }
  }
  if (i == n) return m;
  // The rest: filter() from code i (vector groups, then the portable tail).
  const std::size_t rest = filter(query, codes + i * cs, n - i, cs, max_distance, positions + m, distances + m);
  for (std::size_t j = 0; j < rest; ++j) positions[m + j] += static_cast<std::uint32_t>(i);
  return m + rest;
}

static std::size_t filter_halves(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                                 std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                                 dist_t* distances, bool* gave_up) noexcept {
  if (code_size == 32) return filter_halves32(query, codes, n, max_distance, positions, distances, gave_up);
  *gave_up = true;
  return filter(query, codes, n, code_size, max_distance, positions, distances);
}

}  // namespace avx2_impl

const KernelTable& avx2_table() noexcept {
  static const KernelTable table{SimdLevel::AVX2,           &avx2_impl::distances,
                                 &avx2_impl::filter,        &avx2_impl::portable_gather, &avx2_impl::portable_gather_new,
                                 &avx2_impl::prepared_bytes, &avx2_impl::prepare,
                                 &avx2_impl::filter_prepared, &sigmoid_softplus_avx2,
                                 &contrastive_pass_avx2,      SimdLevel::AVX2,
                                 &rank_chunk_avx2,            &rank_prepare_avx2,
                                 &rank_distances_avx2,        &rank_bytes_avx2,
                                 &avx2_impl::filter_halves,   &avx2_impl::halves_for_size};
  return table;
}

}  // namespace deephash::kernels
