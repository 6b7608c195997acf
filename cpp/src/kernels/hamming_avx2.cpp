// AVX2 Hamming kernels (x86-64). Compiled with -mavx2 -mpopcnt on this file alone.
//
// Instructions relied on: VPXOR, VPAND, VPSRLW, VPSHUFB (nibble-table popcount of bytes),
// VPADDB, VPSADBW (byte sums into 64-bit lanes, also doing the low + high nibble add),
// VPUNPCK{L,H}QDQ, VPERM2I128, VPERMQ, VPCMPGTQ + VMOVMSKPD (threshold test of 4 codes at once), POPCNT (tails, other code sizes).
//
// 8-byte codes: 4 codes per register ("vertical"); 16-byte codes: 2 per register;
// 32/64/128/256-byte codes: a group of 4 codes is reduced to one register of 4 counts.
// Other sizes use the portable loop, which here compiles to hardware POPCNT.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "deephash/simd.hpp"

namespace deephash::kernels {
namespace avx2_impl {
#include "hamming_portable.inl"

// Byte popcounts split into two offset halves so that VPSADBW does the final add:
// lo = popcount(low nibble) + 4 (4..8) and hi = 4 - popcount(high nibble) (0..4), so
// lo - hi = popcount(byte) >= 0 and sad(lo, hi) = sum of |lo - hi| = the bytes' popcount.
// Sums of several such vectors keep lo >= hi byte by byte, so they can be accumulated first.
struct NibbleCounts {
  __m256i lo, hi;
};

static inline __m256i lo_table() noexcept {  // popcount(nibble) + 4
  return _mm256_setr_epi8(4, 5, 5, 6, 5, 6, 6, 7, 5, 6, 6, 7, 6, 7, 7, 8,
                          4, 5, 5, 6, 5, 6, 6, 7, 5, 6, 6, 7, 6, 7, 7, 8);
}

static inline __m256i hi_table() noexcept {  // 4 - popcount(nibble)
  return _mm256_setr_epi8(4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0,
                          4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0);
}

static inline NibbleCounts nibble_counts(__m256i v) noexcept {
  const __m256i low = _mm256_set1_epi8(0x0f);
  return {_mm256_shuffle_epi8(lo_table(), _mm256_and_si256(v, low)),
          _mm256_shuffle_epi8(hi_table(), _mm256_and_si256(_mm256_srli_epi16(v, 4), low))};
}

// Popcount of each 8-byte lane of v, as 4 uint64 lanes.
static inline __m256i popcount_lanes(__m256i v) noexcept {
  const NibbleCounts c = nibble_counts(v);
  return _mm256_sad_epu8(c.lo, c.hi);
}

static inline __m256i loadu(const std::uint8_t* p) noexcept {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
}

// Four codes' partial sums (a..d, 4 uint64 lanes each) -> one register of their 4 totals.
static inline __m256i sum_lanes_of_four(__m256i a, __m256i b, __m256i c, __m256i d) noexcept {
  const __m256i ab = _mm256_add_epi64(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
  const __m256i cd = _mm256_add_epi64(_mm256_unpacklo_epi64(c, d), _mm256_unpackhi_epi64(c, d));
  return _mm256_add_epi64(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));
}

// Each "Quad" computes the distances of 4 consecutive codes as 4 uint64 lanes.
struct Quad8 {  // 8-byte codes: one register holds 4 codes
  static constexpr std::size_t kCodeSize = 8, kStride = 8;
  __m256i q;
  explicit Quad8(const std::uint8_t* query) noexcept : q(_mm256_set1_epi64x(static_cast<long long>(load_u64(query)))) {}
  __m256i operator()(const std::uint8_t* c) const noexcept {
    return popcount_lanes(_mm256_xor_si256(loadu(c), q));
  }
};

struct Quad16 {  // 16-byte codes: one register holds 2 codes
  static constexpr std::size_t kCodeSize = 16, kStride = 16;
  __m256i q;
  explicit Quad16(const std::uint8_t* query) noexcept
      : q(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(query)))) {}
  __m256i operator()(const std::uint8_t* c) const noexcept {
    const __m256i ab = popcount_lanes(_mm256_xor_si256(loadu(c), q));
    const __m256i cd = popcount_lanes(_mm256_xor_si256(loadu(c + 32), q));
    // ab = [a0 a1 | b0 b1], cd = [c0 c1 | d0 d1] -> [a c | b d] -> [a b c d]
    const __m256i s = _mm256_add_epi64(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd));
    return _mm256_permute4x64_epi64(s, 0xD8);
  }
};

template <std::size_t NV>  // codes of 32 * NV bytes
struct QuadWide {
  static constexpr std::size_t kCodeSize = 32 * NV, kStride = 32 * NV;
  __m256i q[NV];
  explicit QuadWide(const std::uint8_t* query) noexcept {
    for (std::size_t v = 0; v < NV; ++v) q[v] = loadu(query + 32 * v);
  }
  __m256i one(const std::uint8_t* c) const noexcept {  // 4 partial sums of one code
    NibbleCounts acc = nibble_counts(_mm256_xor_si256(loadu(c), q[0]));
    for (std::size_t v = 1; v < NV; ++v) {  // byte sums stay <= 8 * NV <= 32: no overflow
      const NibbleCounts n = nibble_counts(_mm256_xor_si256(loadu(c + 32 * v), q[v]));
      acc.lo = _mm256_add_epi8(acc.lo, n.lo);
      acc.hi = _mm256_add_epi8(acc.hi, n.hi);
    }
    return _mm256_sad_epu8(acc.lo, acc.hi);
  }
  __m256i operator()(const std::uint8_t* c) const noexcept {
    return sum_lanes_of_four(one(c), one(c + kStride), one(c + 2 * kStride), one(c + 3 * kStride));
  }
};

// Prepared layout for 32 * NV-byte codes: each code as its low nibbles (one per byte, 32 * NV
// bytes) then its high nibbles. The AND / shift that split a code into table indices are done once
// per block instead of once per query; a query then costs XOR, VPSHUFB and VPSADBW per 32 bytes.
template <std::size_t NV>
struct PreparedWide {
  static constexpr std::size_t kCodeSize = 32 * NV, kStride = 64 * NV;
  __m256i lo[NV], hi[NV];  // the query's nibbles
  explicit PreparedWide(const std::uint8_t* query) noexcept {
    const __m256i low = _mm256_set1_epi8(0x0f);
    for (std::size_t v = 0; v < NV; ++v) {
      const __m256i x = loadu(query + 32 * v);
      lo[v] = _mm256_and_si256(x, low);
      hi[v] = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    }
  }
  __m256i one(const std::uint8_t* p) const noexcept {
    const __m256i lo_tab = lo_table(), hi_tab = hi_table();
    __m256i l = _mm256_shuffle_epi8(lo_tab, _mm256_xor_si256(loadu(p), lo[0]));
    __m256i h = _mm256_shuffle_epi8(hi_tab, _mm256_xor_si256(loadu(p + kCodeSize), hi[0]));
    for (std::size_t v = 1; v < NV; ++v) {
      l = _mm256_add_epi8(l, _mm256_shuffle_epi8(lo_tab, _mm256_xor_si256(loadu(p + 32 * v), lo[v])));
      h = _mm256_add_epi8(h, _mm256_shuffle_epi8(hi_tab, _mm256_xor_si256(loadu(p + kCodeSize + 32 * v), hi[v])));
    }
    return _mm256_sad_epu8(l, h);
  }
  __m256i operator()(const std::uint8_t* p) const noexcept {
    return sum_lanes_of_four(one(p), one(p + kStride), one(p + 2 * kStride), one(p + 3 * kStride));
  }
};

// One prepared code at a time (the tail of a block): the nibble bytes of code and query differ in
// exactly the bits where the codes differ, so the plain 64-bit popcount loop over 2 * code_size
// bytes gives the distance.
template <std::size_t NV>
struct PreparedTail {
  std::uint64_t q[8 * NV];
  explicit PreparedTail(const std::uint8_t* query) noexcept {
    for (std::size_t w = 0; w < 4 * NV; ++w) {
      const std::uint64_t x = load_u64(query + 8 * w);
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

template <class Quad, class Tail>
static void distances_quads(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                            dist_t* out) noexcept {
  constexpr std::size_t cs = Quad::kCodeSize;
  const Quad quad(query);
  const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 0, 0, 0);
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256i d = _mm256_permutevar8x32_epi32(quad(codes + i * cs), pick);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(d));
  }
  portable_distances_with(Tail(query), codes + i * cs, n - i, cs, out + i);
}

template <class Quad, class Tail>
static std::size_t filter_quads(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                                dist_t max_distance, std::uint32_t* positions, dist_t* distances) noexcept {
  constexpr std::size_t cs = Quad::kStride;  // bytes from one code to the next
  const Quad quad(query);
  const __m256i limit = _mm256_set1_epi64x(static_cast<long long>(max_distance) + 1);
  alignas(32) std::uint64_t lanes[16];
  std::size_t m = 0, i = 0;
  for (; i + 16 <= n; i += 16) {
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
  const std::size_t rest = portable_filter_with(Tail(query), codes + i * cs, n - i, cs, max_distance,
                                                positions + m, distances + m);
  for (std::size_t j = m; j < m + rest; ++j) positions[j] += static_cast<std::uint32_t>(i);
  return m + rest;
}

static void distances(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                      std::size_t code_size, dist_t* out) noexcept {
  switch (code_size) {
    case 8: return distances_quads<Quad8, FixedQuery<1>>(query, codes, n, out);
    case 16: return distances_quads<Quad16, FixedQuery<2>>(query, codes, n, out);
    case 32: return distances_quads<QuadWide<1>, FixedQuery<4>>(query, codes, n, out);
    case 64: return distances_quads<QuadWide<2>, FixedQuery<8>>(query, codes, n, out);
    case 128: return distances_quads<QuadWide<4>, FixedQuery<16>>(query, codes, n, out);
    default: return portable_distances(query, codes, n, code_size, out);
  }
}

static std::size_t filter(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                          std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                          dist_t* dists) noexcept {
  switch (code_size) {
    case 8: return filter_quads<Quad8, FixedQuery<1>>(query, codes, n, max_distance, positions, dists);
    case 16: return filter_quads<Quad16, FixedQuery<2>>(query, codes, n, max_distance, positions, dists);
    case 32: return filter_quads<QuadWide<1>, FixedQuery<4>>(query, codes, n, max_distance, positions, dists);
    case 64: return filter_quads<QuadWide<2>, FixedQuery<8>>(query, codes, n, max_distance, positions, dists);
    case 128: return filter_quads<QuadWide<4>, FixedQuery<16>>(query, codes, n, max_distance, positions, dists);
    default: return portable_filter(query, codes, n, code_size, max_distance, positions, dists);
  }
}

static std::size_t prepared_bytes(std::size_t code_size) noexcept {
  return code_size == 32 || code_size == 64 || code_size == 128 ? 2 * code_size : 0;
}

static void prepare(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::uint8_t* out) noexcept {
  const __m256i low = _mm256_set1_epi8(0x0f);
  const std::size_t nv = code_size / 32;
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* c = codes + i * code_size;
    std::uint8_t* p = out + 2 * i * code_size;
    for (std::size_t v = 0; v < nv; ++v) {
      const __m256i x = loadu(c + 32 * v);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + 32 * v), _mm256_and_si256(x, low));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + code_size + 32 * v),
                         _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
    }
  }
}

static std::size_t filter_prepared(const std::uint8_t* query, const std::uint8_t* prepared, std::size_t n,
                                   std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                                   dist_t* dists) noexcept {
  switch (code_size) {
    case 32: return filter_quads<PreparedWide<1>, PreparedTail<1>>(query, prepared, n, max_distance, positions, dists);
    case 64: return filter_quads<PreparedWide<2>, PreparedTail<2>>(query, prepared, n, max_distance, positions, dists);
    case 128: return filter_quads<PreparedWide<4>, PreparedTail<4>>(query, prepared, n, max_distance, positions, dists);
    default: return 0;  // prepared_bytes() is 0 for every other size: never called
  }
}

}  // namespace avx2_impl

const KernelTable& avx2_table() noexcept {
  static const KernelTable table{SimdLevel::AVX2,           &avx2_impl::distances,
                                 &avx2_impl::filter,        &avx2_impl::portable_gather,
                                 &avx2_impl::prepared_bytes, &avx2_impl::prepare,
                                 &avx2_impl::filter_prepared};
  return table;
}

}  // namespace deephash::kernels
