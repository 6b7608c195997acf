// The metrics' passes for AVX2: the ranking pass (ties by index; RankChunkFn and RankBytesFn in
// simd.hpp) and the distances as bytes over a prepared database (RankPrepareFn, RankDistancesFn).
//
// The ranking pass follows the AVX-512 build (ranking_avx512.cpp) with blocks of 32 items: only
// the histogram runs per item, and a relevant item's count of the earlier items at its distance is
// the histogram before its block plus a byte compare over the block. (Counting a block's histogram
// by compares, as the AVX-512 pass does for short codes, was slower here at 16 and 24 bits.)
//
// The byte distances serve codes of up to 31 bytes, prepared once in blocks of 32 codes split into
// low and high nibbles (so a query costs XOR and VPSHUFB per nibble register):
// - codes of 5 to 31 bytes: 8 registers per 8-byte word of a code, register k holding word v of
//   codes k, k + 8, k + 16 and k + 24 (one per 64-bit lane). One VPSADBW per register gives four
//   codes' counts, and the eight counts of a lane are shifted into its bytes: lane j of the result
//   holds codes 8j .. 8j + 7 in order, so the 32 distances come out in code order with no shuffle;
// - codes of up to 2 (up to 4) bytes: 16 (8) codes a register in code order, each code's counts
//   summed in its own 16-bit (32-bit) lane by VPMADDUBSW (and VPMADDWD), then packed to bytes.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "avx2_nibbles.hpp"
#include "ranking_kernels.hpp"

namespace deephash::kernels {

namespace {

// 32 int32 values (each in [-1, 255]) to 32 bytes, in order.
inline __m256i narrow_to_bytes(const __m256i* v) noexcept {
  const __m256i a = _mm256_packs_epi32(v[0], v[1]);  // lanes: 0-3 8-11 | 4-7 12-15
  const __m256i b = _mm256_packs_epi32(v[2], v[3]);
  const __m256i c = _mm256_packs_epi16(a, b);  // signed: -1 stays -1, 0..255 would saturate at 127
  return _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

inline __m256i narrow_distances(const __m256i* v) noexcept {
  const __m256i a = _mm256_packs_epi32(v[0], v[1]);
  const __m256i b = _mm256_packs_epi32(v[2], v[3]);
  const __m256i c = _mm256_packus_epi16(a, b);  // unsigned: 0..255 kept
  return _mm256_permutevar8x32_epi32(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Chunks of up to 2,048 items are ranked at once; longer ones in parts.
constexpr std::size_t kMaxBlocks = 64;

// One bit per item of a block of n <= 32 items, set for the relevant ones.
inline std::uint32_t block_relevance(const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                                     std::uint8_t key, std::size_t n) noexcept {
  // A short block is copied into buffers first, so that nothing past the items is read.
  alignas(32) std::int32_t tail_ids[32];
  alignas(32) std::uint8_t tail_keys[32];
  if (n < 32) {
    if (class_ids != nullptr) {
      std::memset(tail_ids, 0, sizeof tail_ids);
      std::memcpy(tail_ids, class_ids, n * sizeof(std::int32_t));
      class_ids = tail_ids;
    } else {
      std::memset(tail_keys, 0, sizeof tail_keys);
      std::memcpy(tail_keys, keys, n);
      keys = tail_keys;
    }
  }
  __m256i rel_bytes;  // 0xff for a relevant item, 0 otherwise
  if (class_ids != nullptr) {
    const __m256i label_v = _mm256_set1_epi32(label);
    __m256i eq[4];
    for (std::size_t q = 0; q < 4; ++q)
      eq[q] = _mm256_cmpeq_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(class_ids + 8 * q)), label_v);
    rel_bytes = narrow_to_bytes(eq);
  } else {
    rel_bytes = _mm256_cmpeq_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(keys)),
                                  _mm256_set1_epi8(static_cast<char>(key)));
  }
  const auto mask = static_cast<std::uint32_t>(_mm256_movemask_epi8(rel_bytes));
  return n < 32 ? mask & ((std::uint32_t{1} << n) - 1) : mask;
}

// The records and the counts of a chunk of len <= 32 * kMaxBlocks items whose distances are the
// bytes d8 (readable up to the next multiple of 32) and relevance masks `relevant`.
std::size_t record_and_count(const std::uint8_t* d8, std::size_t len, const std::uint32_t* relevant,
                             std::uint32_t* seen, std::uint64_t* records) noexcept {
  std::size_t kept = 0;
  for (std::size_t b = 0; b < len; b += 32) {
    const std::size_t n = len - b < 32 ? len - b : 32;
    const std::uint8_t* block8 = d8 + b;
    const std::uint32_t rel = relevant[b / 32];
    // The records first: they read the histograms as they stood before this block.
    if (rel != 0) {
      const __m256i block = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block8));
      kept += record_block(rel, block8, seen,
                           [&](unsigned p, std::uint32_t d) {
                             const auto same = static_cast<std::uint32_t>(_mm256_movemask_epi8(
                                 _mm256_cmpeq_epi8(block, _mm256_set1_epi8(static_cast<char>(d)))));
                             return static_cast<std::uint64_t>(_mm_popcnt_u32(same & ((std::uint32_t{1} << p) - 1)));
                           },
                           records + kept);
    }
    if (n == 32)
      count_block_words(block8, 32, seen);
    else
      count_block(block8, n, seen);
  }
  return kept;
}

// Runs part(at, n, relevant, out) over the chunk in parts of at most 32 * kMaxBlocks items, each
// with its blocks' relevance masks; part appends its records at `out` and returns their number.
template <typename Part>
std::size_t in_parts(std::size_t len, const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                     std::uint8_t key, std::uint64_t* records, Part part) noexcept {
  std::size_t kept = 0;
  for (std::size_t at = 0; at < len; at += 32 * kMaxBlocks) {
    const std::size_t n = std::min<std::size_t>(len - at, 32 * kMaxBlocks);
    std::uint32_t relevant[kMaxBlocks];
    for (std::size_t b = 0; b < n; b += 32)
      relevant[b / 32] = block_relevance(class_ids == nullptr ? nullptr : class_ids + at + b, label,
                                         keys == nullptr ? nullptr : keys + at + b, key,
                                         std::min<std::size_t>(n - b, 32));
    kept += part(at, n, relevant, records + kept);
  }
  return kept;
}

}  // namespace

std::size_t rank_chunk_avx2(const dist_t* dist, std::size_t len, std::size_t /*max_distance*/,
                            const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                            std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept {
  // Two passes over each part: first every block's distances narrowed to bytes, then the records
  // and the counts. The counting loop reads the bytes back one at a time; read right after the
  // vector store that wrote them, each block's loads waited on that store.
  return in_parts(len, class_ids, label, keys, key, records,
                  [&](std::size_t at, std::size_t n, const std::uint32_t* relevant, std::uint64_t* out) {
                    alignas(32) std::uint8_t d8[32 * kMaxBlocks];
                    for (std::size_t b = 0; b < n; b += 32) {
                      // A short last block's distances are copied into a zeroed buffer first.
                      alignas(32) std::int32_t tail_dist[32];
                      const dist_t* bd = dist + at + b;
                      if (n - b < 32) {
                        std::memset(tail_dist, 0, sizeof tail_dist);
                        std::memcpy(tail_dist, bd, (n - b) * sizeof(dist_t));
                        bd = tail_dist;
                      }
                      __m256i v[4];
                      for (std::size_t q = 0; q < 4; ++q)
                        v[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bd + 8 * q));
                      _mm256_store_si256(reinterpret_cast<__m256i*>(d8 + b), narrow_distances(v));
                    }
                    // The loops that follow read d8 from memory: without this the compiler
                    // extracts each byte from the register (VPEXTRB), which is three times slower.
                    __asm__ volatile("" : : "r"(d8) : "memory");
                    return record_and_count(d8, n, relevant, seen, out);
                  });
}

std::size_t rank_bytes_avx2(const std::uint8_t* dist, std::size_t len, std::size_t /*max_distance*/,
                            const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                            std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept {
  return in_parts(len, class_ids, label, keys, key, records,
                  [&](std::size_t at, std::size_t n, const std::uint32_t* relevant, std::uint64_t* out) {
                    return record_and_count(dist + at, n, relevant, seen, out);
                  });
}

namespace {

template <std::size_t W>
void distances_words(const std::uint8_t* prepared, std::size_t n, std::size_t cs, const std::uint8_t* query,
                     std::uint8_t* out) noexcept {
  using avx2_impl::hi_table;
  using avx2_impl::lo_table;
  const __m256i low = _mm256_set1_epi8(0x0f);
  __m256i qlo[W], qhi[W];
  for (std::size_t v = 0; v < W; ++v) {
    const __m256i x = _mm256_set1_epi64x(static_cast<long long>(code_word(query, v, cs, cs)));
    qlo[v] = _mm256_and_si256(x, low);
    qhi[v] = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
  }
  const __m256i lo_tab = lo_table(), hi_tab = hi_table();
  // Counts of register k of a block (codes k, k + 8, k + 16, k + 24), one per 64-bit lane.
  auto counts = [&](const std::uint8_t* r) {
    __m256i l = _mm256_shuffle_epi8(lo_tab, _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(r)), qlo[0]));
    __m256i h = _mm256_shuffle_epi8(hi_tab, _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(r + 32)), qhi[0]));
    for (std::size_t v = 1; v < W; ++v) {  // lo - hi per byte stays <= 8 * W <= 32: sums fit
      l = _mm256_add_epi8(l, _mm256_shuffle_epi8(lo_tab, _mm256_xor_si256(
                                                           _mm256_load_si256(reinterpret_cast<const __m256i*>(r + 64 * v)), qlo[v])));
      h = _mm256_add_epi8(h, _mm256_shuffle_epi8(hi_tab, _mm256_xor_si256(
                                                           _mm256_load_si256(reinterpret_cast<const __m256i*>(r + 64 * v + 32)), qhi[v])));
    }
    return _mm256_sad_epu8(l, h);
  };
  const std::size_t blocks = (n + 31) / 32;
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint8_t* p = prepared + b * 512 * W;
    // Each count is below 256: register k's go to byte k of their lanes.
    __m256i d = counts(p);
    d = _mm256_or_si256(d, _mm256_slli_epi64(counts(p + 64 * W), 8));
    d = _mm256_or_si256(d, _mm256_slli_epi64(counts(p + 2 * 64 * W), 16));
    d = _mm256_or_si256(d, _mm256_slli_epi64(counts(p + 3 * 64 * W), 24));
    d = _mm256_or_si256(d, _mm256_slli_epi64(counts(p + 4 * 64 * W), 32));
    d = _mm256_or_si256(d, _mm256_slli_epi64(counts(p + 5 * 64 * W), 40));
    d = _mm256_or_si256(d, _mm256_slli_epi64(counts(p + 6 * 64 * W), 48));
    d = _mm256_or_si256(d, _mm256_slli_epi64(counts(p + 7 * 64 * W), 56));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * b), d);
  }
}

// Codes of up to CS = 2 or 4 bytes: 32 / CS codes a register, each in its own lane.
template <std::size_t CS>
void distances_narrow(const std::uint8_t* prepared, std::size_t n, std::size_t cs, const std::uint8_t* query,
                      std::uint8_t* out) noexcept {
  constexpr std::size_t kRegisters = CS;  // 32 codes of CS bytes
  const __m256i low = _mm256_set1_epi8(0x0f);
  const auto word = static_cast<std::uint32_t>(code_word(query, 0, cs, cs));
  const __m256i x = CS == 2 ? _mm256_set1_epi16(static_cast<short>(word)) : _mm256_set1_epi32(static_cast<int>(word));
  const __m256i qlo = _mm256_and_si256(x, low), qhi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
  const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  auto counts = [&](const std::uint8_t* r) {  // the codes of one register, one per 16- or 32-bit lane
    const __m256i lo = _mm256_load_si256(reinterpret_cast<const __m256i*>(r));
    const __m256i hi = _mm256_load_si256(reinterpret_cast<const __m256i*>(r + 32));
    const __m256i bytes = _mm256_add_epi8(_mm256_shuffle_epi8(table, _mm256_xor_si256(lo, qlo)),
                                          _mm256_shuffle_epi8(table, _mm256_xor_si256(hi, qhi)));
    const __m256i pairs = _mm256_maddubs_epi16(bytes, ones8);
    return CS == 2 ? pairs : _mm256_madd_epi16(pairs, ones16);
  };
  const std::size_t blocks = (n + 31) / 32;
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint8_t* p = prepared + b * 64 * kRegisters;
    __m256i d;
    if (CS == 2) {  // VPACKUSWB interleaves the registers' 128-bit halves: VPERMQ restores the order
      d = _mm256_permute4x64_epi64(_mm256_packus_epi16(counts(p), counts(p + 64)), 0xD8);
    } else {
      const __m256i a = _mm256_packs_epi32(counts(p), counts(p + 64));
      const __m256i c = _mm256_packs_epi32(counts(p + 128), counts(p + 192));
      d = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(a, c), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * b), d);
  }
}

}  // namespace

void rank_prepare_avx2(const std::uint8_t* codes, std::size_t n, std::size_t cs, std::uint8_t* out) noexcept {
  const std::size_t words = (cs + 7) / 8, total = n * cs;
  const __m256i low = _mm256_set1_epi8(0x0f);
  if (cs <= 4) {
    // Codes in code order, zero-extended to 2 or 4 bytes: one register of 16 or 8 codes at a time.
    const std::size_t lane = cs <= 2 ? 2 : 4, per_register = 32 / lane;
    for (std::size_t r = 0; r < (n + 31) / 32 * lane; ++r) {
      alignas(32) std::uint8_t bytes[32] = {};
      for (std::size_t j = 0; j < per_register; ++j) {
        const std::size_t i = r * per_register + j;
        if (i < n) std::memcpy(bytes + lane * j, codes + i * cs, cs);
      }
      const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(bytes));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 64 * r), _mm256_and_si256(x, low));
      _mm256_store_si256(reinterpret_cast<__m256i*>(out + 64 * r + 32), _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
    }
    return;
  }
  for (std::size_t b = 0; b < (n + 31) / 32; ++b) {
    for (std::size_t k = 0; k < 8; ++k) {
      for (std::size_t v = 0; v < words; ++v) {
        alignas(32) std::uint64_t lanes[4];
        for (std::size_t j = 0; j < 4; ++j) {
          const std::size_t i = 32 * b + 8 * j + k;
          lanes[j] = i < n ? code_word(codes + i * cs, v, cs, total - i * cs) : 0;
        }
        const __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(lanes));
        std::uint8_t* r = out + b * 512 * words + (k * words + v) * 64;
        _mm256_store_si256(reinterpret_cast<__m256i*>(r), _mm256_and_si256(x, low));
        _mm256_store_si256(reinterpret_cast<__m256i*>(r + 32), _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
      }
    }
  }
}

void rank_distances_avx2(const std::uint8_t* prepared, std::size_t n, std::size_t cs, const std::uint8_t* query,
                         std::uint8_t* out) noexcept {
  if (cs <= 2) return distances_narrow<2>(prepared, n, cs, query, out);
  if (cs <= 4) return distances_narrow<4>(prepared, n, cs, query, out);
  switch ((cs + 7) / 8) {
    case 1: distances_words<1>(prepared, n, cs, query, out); break;
    case 2: distances_words<2>(prepared, n, cs, query, out); break;
    case 3: distances_words<3>(prepared, n, cs, query, out); break;
    default: distances_words<4>(prepared, n, cs, query, out); break;
  }
}

}  // namespace deephash::kernels
