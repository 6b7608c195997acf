// Compiled with -mavx2: codes split into low and high nibbles before timing (one byte each), so a
// query costs VPXOR, VPSHUFB (offset nibble tables) and VPSADBW per 32 bytes, VPCMPGTQ + VMOVMSKPD
// per 4 codes.
#include <immintrin.h>

#include <cstring>

#include "bound.hpp"

namespace bound {

namespace {
inline __m256i loadu(const std::uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Offset nibble tables: lo = popcount + 4, hi = 4 - popcount, so VPSADBW(lo, hi) is the sum of
// the byte counts (also over sums of several such vectors).
inline __m256i lo_table() {
  return _mm256_setr_epi8(4, 5, 5, 6, 5, 6, 6, 7, 5, 6, 6, 7, 6, 7, 7, 8, 4, 5, 5, 6, 5, 6, 6, 7, 5, 6, 6, 7, 6, 7, 7, 8);
}
inline __m256i hi_table() {
  return _mm256_setr_epi8(4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0, 4, 3, 3, 2, 3, 2, 2, 1, 3, 2, 2, 1, 2, 1, 1, 0);
}

inline unsigned passing(__m256i counts, __m256i limit) {  // lanes with count < limit
  return static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(limit, counts))));
}

// Adds 1 to each lane of acc whose count is below the limit (a compare gives -1 there).
inline __m256i tally(__m256i acc, __m256i counts, __m256i limit) {
  return _mm256_sub_epi64(acc, _mm256_cmpgt_epi64(limit, counts));
}

inline std::uint64_t lanes_sum(__m256i acc) {
  alignas(32) std::uint64_t l[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(l), acc);
  return l[0] + l[1] + l[2] + l[3];
}

// Counts codes [begin, end) below the limit, four(i) giving the counts of codes i .. i + 3 (the
// layouts are padded so that a last partial group can be read whole).
template <class Four>
std::uint64_t count_fours(std::size_t begin, std::size_t end, __m256i limit, Four four) {
  __m256i acc = _mm256_setzero_si256();
  std::size_t i = begin;
  for (; i + 4 <= end; i += 4) acc = tally(acc, four(i), limit);
  std::uint64_t hits = lanes_sum(acc);
  if (i < end) hits += static_cast<unsigned>(__builtin_popcount(passing(four(i), limit) & ((1u << (end - i)) - 1)));
  return hits;
}

// The query split like the codes: low nibbles then high nibbles of `bytes` bytes.
struct SplitQuery {
  alignas(32) std::uint8_t lo[128], hi[128];
  SplitQuery(const std::uint8_t* q, std::size_t bytes) {
    for (std::size_t b = 0; b < bytes; ++b) {
      lo[b] = q[b] & 0x0f;
      hi[b] = q[b] >> 4;
    }
  }
};

inline __m256i split_counts(const std::uint8_t* lo, const std::uint8_t* hi, __m256i qlo, __m256i qhi) {
  return _mm256_sad_epu8(_mm256_shuffle_epi8(lo_table(), _mm256_xor_si256(loadu(lo), qlo)),
                         _mm256_shuffle_epi8(hi_table(), _mm256_xor_si256(loadu(hi), qhi)));
}

inline __m256i sum_four(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_add_epi64(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
  const __m256i cd = _mm256_add_epi64(_mm256_unpacklo_epi64(c, d), _mm256_unpackhi_epi64(c, d));
  return _mm256_add_epi64(_mm256_permute2x128_si256(ab, cd, 0x20), _mm256_permute2x128_si256(ab, cd, 0x31));
}

// Rows of 32 * NV bytes: each row's NV low-nibble vectors, then its NV high-nibble vectors.
template <std::size_t NV>
inline __m256i row_lanes(const std::uint8_t* r, const __m256i* qlo, const __m256i* qhi) {
  const __m256i lt = lo_table(), ht = hi_table();
  __m256i l = _mm256_shuffle_epi8(lt, _mm256_xor_si256(loadu(r), qlo[0]));
  __m256i h = _mm256_shuffle_epi8(ht, _mm256_xor_si256(loadu(r + 32 * NV), qhi[0]));
  for (std::size_t v = 1; v < NV; ++v) {
    l = _mm256_add_epi8(l, _mm256_shuffle_epi8(lt, _mm256_xor_si256(loadu(r + 32 * v), qlo[v])));
    h = _mm256_add_epi8(h, _mm256_shuffle_epi8(ht, _mm256_xor_si256(loadu(r + 32 * NV + 32 * v), qhi[v])));
  }
  return _mm256_sad_epu8(l, h);
}

template <std::size_t NV>
std::uint64_t count_wide(const SplitQuery& sq, const std::uint8_t* rows, std::size_t begin, std::size_t end,
                         __m256i limit) {
  constexpr std::size_t stride = 64 * NV;
  __m256i qlo[NV], qhi[NV];
  for (std::size_t v = 0; v < NV; ++v) {
    qlo[v] = loadu(sq.lo + 32 * v);
    qhi[v] = loadu(sq.hi + 32 * v);
  }
  return count_fours(begin, end, limit, [&](std::size_t i) {  // the layout is padded to whole groups of 4 rows
    const std::uint8_t* r = rows + i * stride;
    return sum_four(row_lanes<NV>(r, qlo, qhi), row_lanes<NV>(r + stride, qlo, qhi),
                    row_lanes<NV>(r + 2 * stride, qlo, qhi), row_lanes<NV>(r + 3 * stride, qlo, qhi));
  });
}

// Plain rows (no nibble split: the layout a single query would scan), nibble-table popcount.
inline __m256i plain_counts(__m256i v) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  return _mm256_sad_epu8(_mm256_shuffle_epi8(lo_table(), _mm256_and_si256(v, low)),
                         _mm256_shuffle_epi8(hi_table(), _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
}

template <std::size_t NV>
inline __m256i plain_row(const std::uint8_t* r, const __m256i* q) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  __m256i l = _mm256_setzero_si256(), h = _mm256_setzero_si256();
  for (std::size_t v = 0; v < NV; ++v) {
    const __m256i x = _mm256_xor_si256(loadu(r + 32 * v), q[v]);
    l = _mm256_add_epi8(l, _mm256_shuffle_epi8(lo_table(), _mm256_and_si256(x, low)));
    h = _mm256_add_epi8(h, _mm256_shuffle_epi8(hi_table(), _mm256_and_si256(_mm256_srli_epi16(x, 4), low)));
  }
  return _mm256_sad_epu8(l, h);
}

template <std::size_t NV>
std::uint64_t count_plain_wide(const std::uint8_t* query, const std::uint8_t* rows, std::size_t begin,
                               std::size_t end, __m256i limit) {
  constexpr std::size_t row = 32 * NV;
  __m256i q[NV];
  for (std::size_t v = 0; v < NV; ++v) q[v] = loadu(query + 32 * v);
  const auto four = [&](std::size_t i) {
    const std::uint8_t* r = rows + i * row;
    return sum_four(plain_row<NV>(r, q), plain_row<NV>(r + row, q), plain_row<NV>(r + 2 * row, q),
                    plain_row<NV>(r + 3 * row, q));
  };
  return count_fours(begin, end, limit, four);
}
}  // namespace

Layout nibble_split_rows(const std::uint8_t* codes, std::size_t n, std::size_t code_size) {
  Layout l;
  l.n = n;
  l.code_size = code_size;
  l.row = code_size <= 8 ? 8 : code_size <= 16 ? 16 : (code_size + 31) / 32 * 32;
  const std::size_t per_group = l.row < 32 ? 32 / l.row : 1, groups = (n + 3) / 4 * 4 / per_group + 1;
  l.bytes.assign(groups * 2 * 32 * (l.row < 32 ? 1 : l.row / 32), 0);
  for (std::size_t i = 0; i < n; ++i) {
    std::uint8_t* base;
    std::size_t half;  // bytes from a group's low nibbles to its high nibbles
    if (l.row < 32) {
      base = l.bytes.data() + (i / per_group) * 64 + (i % per_group) * l.row;
      half = 32;
    } else {
      base = l.bytes.data() + i * 2 * l.row;
      half = l.row;
    }
    for (std::size_t b = 0; b < code_size; ++b) {
      base[b] = codes[i * code_size + b] & 0x0f;
      base[half + b] = codes[i * code_size + b] >> 4;
    }
  }
  return l;
}

std::uint64_t count_avx2(const std::uint8_t* query, const Layout& codes, std::size_t begin, std::size_t end,
                         int threshold) {
  const __m256i limit = _mm256_set1_epi64x(threshold + 1);
  const std::uint8_t* groups = codes.bytes.data();
  const SplitQuery sq(query, codes.row);
  if (codes.row == 8) {  // 4 rows per group: 32 low-nibble bytes, 32 high-nibble bytes
    std::uint64_t lo, hi;
    std::memcpy(&lo, sq.lo, 8);
    std::memcpy(&hi, sq.hi, 8);
    const __m256i qlo = _mm256_set1_epi64x(static_cast<long long>(lo)), qhi = _mm256_set1_epi64x(static_cast<long long>(hi));
    return count_fours(begin, end, limit, [&](std::size_t i) {  // begin is a multiple of 16
      const std::uint8_t* g = groups + (i / 4) * 64;
      return split_counts(g, g + 32, qlo, qhi);
    });
  }
  if (codes.row == 16) {  // 2 rows per group
    const __m256i qlo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sq.lo)));
    const __m256i qhi = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sq.hi)));
    const auto four = [&](std::size_t i) {
      const std::uint8_t* g = groups + (i / 2) * 64;
      const __m256i ab = split_counts(g, g + 32, qlo, qhi), cd = split_counts(g + 64, g + 96, qlo, qhi);
      return _mm256_permute4x64_epi64(_mm256_add_epi64(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd)),
                                      0xD8);
    };
    return count_fours(begin, end, limit, four);
  }
  switch (codes.row / 32) {
    case 1: return count_wide<1>(sq, groups, begin, end, limit);
    case 2: return count_wide<2>(sq, groups, begin, end, limit);
    case 3: return count_wide<3>(sq, groups, begin, end, limit);
    case 4: return count_wide<4>(sq, groups, begin, end, limit);
    default: return 0;  // rows above 128 bytes: not measured
  }
}

}  // namespace bound

namespace bound {

std::uint64_t count_avx2_rows(const std::uint8_t* query, const Layout& codes, std::size_t begin, std::size_t end,
                              int threshold) {
  const __m256i limit = _mm256_set1_epi64x(threshold + 1);
  const std::uint8_t* rows = codes.bytes.data();
  if (codes.row == 8 || codes.row == 16) {  // 4 or 2 rows per register (the layout has 64 spare bytes)
    const __m256i q = codes.row == 8 ? _mm256_set1_epi64x([&] { long long v; std::memcpy(&v, query, 8); return v; }())
                                     : _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(query)));
    const auto four = [&](std::size_t i) {
      if (codes.row == 8) return plain_counts(_mm256_xor_si256(loadu(rows + 8 * i), q));
      const __m256i ab = plain_counts(_mm256_xor_si256(loadu(rows + 16 * i), q));
      const __m256i cd = plain_counts(_mm256_xor_si256(loadu(rows + 16 * i + 32), q));
      return _mm256_permute4x64_epi64(_mm256_add_epi64(_mm256_unpacklo_epi64(ab, cd), _mm256_unpackhi_epi64(ab, cd)),
                                      0xD8);
    };
    return count_fours(begin, end, limit, four);
  }
  switch (codes.row / 32) {
    case 1: return count_plain_wide<1>(query, rows, begin, end, limit);
    case 2: return count_plain_wide<2>(query, rows, begin, end, limit);
    case 3: return count_plain_wide<3>(query, rows, begin, end, limit);
    case 4: return count_plain_wide<4>(query, rows, begin, end, limit);
    default: return 0;  // rows above 128 bytes: not measured
  }
}

}  // namespace bound
