// The ranking pass of the metrics (ties by index) for AVX2: see RankChunkFn in simd.hpp and the
// AVX-512 build (ranking_avx512.cpp), which this one follows with blocks of 32 items: only the
// histogram runs per item, and a relevant item's count of the earlier items at its distance is
// the histogram before its block plus a byte compare over the block. (Counting a block's
// histogram by compares, as the AVX-512 pass does for short codes, was slower here at 16 and 24
// bits.)
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

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

}  // namespace

std::size_t rank_chunk_avx2(const dist_t* dist, std::size_t len, std::size_t /*max_distance*/,
                            const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                            std::uint8_t key, std::uint32_t* seen,
                            std::uint64_t* records) noexcept {
  // Two passes over the chunk: first every block's distances narrowed to bytes and its relevance
  // mask, then the records and the counts. The counting loop reads the bytes back one at a time;
  // read right after the vector store that wrote them, each block's loads waited on that store.
  constexpr std::size_t kMaxBlocks = 64;  // chunks of up to 2,048 items; longer ones in parts
  if (len > 32 * kMaxBlocks) {
    const std::size_t head = 32 * kMaxBlocks;
    const std::size_t kept = rank_chunk_avx2(dist, head, 0, class_ids, label, keys, key, seen, records);
    return kept + rank_chunk_avx2(dist + head, len - head, 0, class_ids == nullptr ? nullptr : class_ids + head, label,
                                  keys == nullptr ? nullptr : keys + head, key, seen, records + kept);
  }
  alignas(32) std::uint8_t d8[32 * kMaxBlocks];
  std::uint32_t relevant[kMaxBlocks];
  const __m256i label_v = _mm256_set1_epi32(label);
  const std::size_t blocks = (len + 31) / 32;
  for (std::size_t k = 0; k < blocks; ++k) {
    const std::size_t b = 32 * k, n = len - b < 32 ? len - b : 32;
    // A short last block is copied into zeroed buffers: its extra lanes get distance 0 and are
    // neither relevant nor counted.
    alignas(32) std::int32_t tail_dist[32], tail_ids[32];
    alignas(32) std::uint8_t tail_rel[32];
    const dist_t* bd = dist + b;
    const std::int32_t* bi = class_ids == nullptr ? nullptr : class_ids + b;
    const std::uint8_t* br = keys == nullptr ? nullptr : keys + b;
    if (n < 32) {
      std::memset(tail_dist, 0, sizeof tail_dist);
      std::memcpy(tail_dist, bd, n * sizeof(dist_t));
      bd = tail_dist;
      if (bi != nullptr) {
        std::memcpy(tail_ids, bi, n * sizeof(std::int32_t));
        for (std::size_t t = n; t < 32; ++t) tail_ids[t] = label ^ 1;  // any other class
        bi = tail_ids;
      } else {
        std::memset(tail_rel, key ^ 1, sizeof tail_rel);  // any other key
        std::memcpy(tail_rel, br, n);
        br = tail_rel;
      }
    }
    __m256i v[4];
    for (std::size_t q = 0; q < 4; ++q) v[q] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bd + 8 * q));
    _mm256_store_si256(reinterpret_cast<__m256i*>(d8 + b), narrow_distances(v));
    // rel_bytes: 0xff for a relevant item, 0 otherwise.
    __m256i rel_bytes;
    if (bi != nullptr) {
      __m256i eq[4];
      for (std::size_t q = 0; q < 4; ++q)
        eq[q] = _mm256_cmpeq_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bi + 8 * q)), label_v);
      rel_bytes = narrow_to_bytes(eq);
    } else {
      const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(br));
      rel_bytes = _mm256_cmpeq_epi8(r, _mm256_set1_epi8(static_cast<char>(key)));
    }
    relevant[k] = static_cast<std::uint32_t>(_mm256_movemask_epi8(rel_bytes));
  }
  // The loops below read d8 from memory: without this the compiler extracts each byte from the
  // register (VPEXTRB), which is three times slower.
  __asm__ volatile("" : : "r"(d8) : "memory");
  std::size_t kept = 0;
  for (std::size_t k = 0; k < blocks; ++k) {
    const std::size_t b = 32 * k, n = len - b < 32 ? len - b : 32;
    const std::uint8_t* block8 = d8 + b;
    // The records first: they read the histograms as they stood before this block.
    if (relevant[k] != 0) {
      const __m256i block = _mm256_load_si256(reinterpret_cast<const __m256i*>(block8));
      kept += record_block(relevant[k], block8, seen,
                           [&](unsigned p, std::uint32_t d) {
                             const auto same = static_cast<std::uint32_t>(_mm256_movemask_epi8(
                                 _mm256_cmpeq_epi8(block, _mm256_set1_epi8(static_cast<char>(d)))));
                             return static_cast<std::uint64_t>(_mm_popcnt_u32(same & ((std::uint32_t{1} << p) - 1)));
                           },
                           records + kept);
    }
    count_block(block8, n, seen);
  }
  return kept;
}

}  // namespace deephash::kernels
