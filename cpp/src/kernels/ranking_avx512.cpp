// The ranking pass of the metrics (ties by index) for AVX-512BW: see RankChunkFn in simd.hpp.
//
// The portable pass (metrics/query_ranking.cpp) writes a record for every item, branch-free, and
// keeps a running count per distance that each item reads and writes back. Here only the
// histogram runs per item: a relevant item's count of the earlier items at its distance is the
// histogram as it stood before its block of 64 items plus a byte compare over the block, so the
// irrelevant items (most of them) only add to their bin. Measured in docs/benchmarks.md
// ("Metrics"). The same pass runs over distances given as bytes (RankBytesFn), one load per 64
// items, which rank_distances_avx512 computes over a database prepared once (RankPrepareFn): in
// each block of 32 codes, word v of codes 0-7, 8-15, 16-23 and 24-31 in four registers (VPOPCNTQ,
// summed over the words and narrowed by VPMOVQB), or each code of up to 4 bytes in a 32-bit lane
// (VPOPCNTD). That layout fills half the room rank_prepared_size gives a block (the AVX2 layout's
// nibble halves need all of it), so both levels share the size and offsets.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ranking_kernels.hpp"

namespace deephash::kernels {

// Below this many distances the block's histogram is counted by compares (see the pass).
static constexpr std::size_t kFewDistances = 32;

namespace {

// The pass over blocks of 64 items; load(b, valid, buffer) returns block b's distances as bytes in
// a register (lanes past the end 0) and a pointer to them in memory (buffer, or the caller's own
// bytes).
template <typename Load>
std::size_t rank_blocks(std::size_t len, std::size_t max_distance, const std::int32_t* class_ids, std::int32_t label,
                        const std::uint8_t* keys, std::uint8_t key, std::uint32_t* seen, std::uint64_t* records,
                        Load load) noexcept {
  std::size_t kept = 0;
  alignas(64) std::uint8_t buffer[64];
  const __m512i label_v = _mm512_set1_epi32(label);
  const __m512i key_v = _mm512_set1_epi8(static_cast<char>(key));
  for (std::size_t b = 0; b < len; b += 64) {
    const std::size_t n = len - b < 64 ? len - b : 64;
    const std::uint64_t valid = n == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
    // The block's relevance mask.
    std::uint64_t rel = 0;
    if (class_ids != nullptr) {
      for (std::size_t q = 0; q < 4; ++q) {
        const auto m = static_cast<__mmask16>(valid >> (16 * q));
        const __m512i ids = _mm512_maskz_loadu_epi32(m, class_ids + b + 16 * q);
        rel |= std::uint64_t{_mm512_mask_cmpeq_epi32_mask(m, ids, label_v)} << (16 * q);
      }
    } else {
      rel = _mm512_mask_cmpeq_epi8_mask(valid, _mm512_maskz_loadu_epi8(valid, keys + b), key_v);
    }
    const std::uint8_t* d8 = nullptr;
    const __m512i block = load(b, valid, buffer, d8);
    // The records first: they read the histograms as they stood before this block.
    if (rel != 0)
      kept += record_block(rel, d8, seen,
                           [&](unsigned p, std::uint32_t d) {
                             const std::uint64_t same =
                                 _mm512_cmpeq_epi8_mask(block, _mm512_set1_epi8(static_cast<char>(d)));
                             return static_cast<std::uint64_t>(_mm_popcnt_u64(same & ((std::uint64_t{1} << p) - 1)));
                           },
                           records + kept);
    if (max_distance < kFewDistances) {
      // Few distances: one compare per distance over the block.
      for (std::uint32_t v = 0; v <= max_distance; ++v)
        seen[v] += static_cast<std::uint32_t>(
            _mm_popcnt_u64(_mm512_mask_cmpeq_epi8_mask(valid, block, _mm512_set1_epi8(static_cast<char>(v)))));
    } else if (n == 64) {
      count_block_words(d8, 64, seen);
    } else {
      count_block(d8, n, seen);
    }
  }
  return kept;
}

}  // namespace

std::size_t rank_chunk_avx512(const dist_t* dist, std::size_t len, std::size_t max_distance,
                              const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                              std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept {
  return rank_blocks(len, max_distance, class_ids, label, keys, key, seen, records,
                     [&](std::size_t b, std::uint64_t valid, std::uint8_t* buffer, const std::uint8_t*& d8) {
                       // The int32 distances narrowed to bytes (lanes past the end hold 0), put
                       // together in registers (a load of four just-written pieces would wait for
                       // them to reach the cache); the buffer is the copy the scalar loops read.
                       __m128i quarter[4];
                       for (std::size_t q = 0; q < 4; ++q) {
                         const auto m = static_cast<__mmask16>(valid >> (16 * q));
                         quarter[q] = _mm512_cvtepi32_epi8(_mm512_maskz_loadu_epi32(m, dist + b + 16 * q));
                       }
                       const __m512i block = _mm512_inserti64x4(
                           _mm512_castsi256_si512(
                               _mm256_inserti128_si256(_mm256_castsi128_si256(quarter[0]), quarter[1], 1)),
                           _mm256_inserti128_si256(_mm256_castsi128_si256(quarter[2]), quarter[3], 1), 1);
                       _mm512_store_si512(buffer, block);
                       d8 = buffer;
                       return block;
                     });
}

std::size_t rank_bytes_avx512(const std::uint8_t* dist, std::size_t len, std::size_t max_distance,
                              const std::int32_t* class_ids, std::int32_t label, const std::uint8_t* keys,
                              std::uint8_t key, std::uint32_t* seen, std::uint64_t* records) noexcept {
  return rank_blocks(len, max_distance, class_ids, label, keys, key, seen, records,
                     [&](std::size_t b, std::uint64_t valid, std::uint8_t*, const std::uint8_t*& d8) {
                       d8 = dist + b;
                       return _mm512_maskz_loadu_epi8(valid, d8);
                     });
}

void rank_prepare_avx512(const std::uint8_t* codes, std::size_t n, std::size_t cs, std::uint8_t* out) noexcept {
  const std::size_t blocks = (n + 31) / 32;
  if (cs <= 4) {
    // Each code zero-extended to 32 bits, in code order: two registers a block, at the start of
    // the block's room.
    for (std::size_t b = 0; b < blocks; ++b) {
      auto* dst = reinterpret_cast<std::uint32_t*>(out + rank_prepared_size(32 * b, cs));
      for (std::size_t j = 0; j < 32; ++j) {
        const std::size_t i = 32 * b + j;
        std::uint32_t x = 0;
        if (i < n) std::memcpy(&x, codes + i * cs, cs);
        dst[j] = x;
      }
    }
    return;
  }
  // Word v of the block's codes 0-7, 8-15, 16-23, 24-31: four registers from byte 256v of the
  // block's room (the first half of it).
  const std::size_t words = (cs + 7) / 8;
  for (std::size_t b = 0; b < blocks; ++b) {
    auto* dst = reinterpret_cast<std::uint64_t*>(out + rank_prepared_size(32 * b, cs));
    for (std::size_t v = 0; v < words; ++v)
      for (std::size_t j = 0; j < 32; ++j) {
        const std::size_t i = 32 * b + j;
        dst[32 * v + j] = i < n ? code_word(codes + i * cs, v, cs, (n - i) * cs) : 0;
      }
  }
}

namespace {

template <std::size_t W>
void distances_words(const std::uint8_t* prepared, std::size_t n, std::size_t cs, const std::uint8_t* query,
                     std::uint8_t* out) noexcept {
  __m512i q[W];
  for (std::size_t v = 0; v < W; ++v) q[v] = _mm512_set1_epi64(static_cast<long long>(code_word(query, v, cs, cs)));
  const std::size_t blocks = (n + 31) / 32, room = rank_prepared_size(32, cs);
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint8_t* p = prepared + b * room;
    for (std::size_t j = 0; j < 4; ++j) {
      __m512i acc = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(p + 64 * j), q[0]));
      for (std::size_t v = 1; v < W; ++v)
        acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_loadu_si512(p + 256 * v + 64 * j), q[v])));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out + 32 * b + 8 * j), _mm512_cvtepi64_epi8(acc));
    }
  }
}

void distances_narrow(const std::uint8_t* prepared, std::size_t n, std::size_t cs, const std::uint8_t* query,
                      std::uint8_t* out) noexcept {
  std::uint32_t word = 0;
  std::memcpy(&word, query, cs);
  const __m512i q = _mm512_set1_epi32(static_cast<int>(word));
  const std::size_t blocks = (n + 31) / 32, room = rank_prepared_size(32, cs);
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::uint8_t* p = prepared + b * room;
    const __m128i lo = _mm512_cvtepi32_epi8(_mm512_popcnt_epi32(_mm512_xor_si512(_mm512_loadu_si512(p), q)));
    const __m128i hi = _mm512_cvtepi32_epi8(_mm512_popcnt_epi32(_mm512_xor_si512(_mm512_loadu_si512(p + 64), q)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 32 * b), _mm256_set_m128i(hi, lo));
  }
}

}  // namespace

void rank_distances_avx512(const std::uint8_t* prepared, std::size_t n, std::size_t cs, const std::uint8_t* query,
                           std::uint8_t* out) noexcept {
  switch ((cs + 7) / 8) {
    case 1:
      return cs <= 4 ? distances_narrow(prepared, n, cs, query, out) : distances_words<1>(prepared, n, cs, query, out);
    case 2:
      return distances_words<2>(prepared, n, cs, query, out);
    case 3:
      return distances_words<3>(prepared, n, cs, query, out);
    default:
      return distances_words<4>(prepared, n, cs, query, out);
  }
}

}  // namespace deephash::kernels
