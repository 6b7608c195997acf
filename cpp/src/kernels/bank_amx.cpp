// AMX-BF16 bank products (x86-64): compiled with -mamx-tile -mamx-bf16 -mavx512f -mavx512bw
// -mavx512vl -mavx512bf16 on this file alone, entered only where bank_products_available(). Two
// bank steps share one pipeline: the logistic one (DPSH, DSDH, DHN) and the contrastive one (DSH).
//
// Every float is split into bfloat16 halves hi + lo (hi = x rounded to bfloat16, lo = the rest
// rounded again), and a product a.b is taken as hi_a.hi_b + lo_a.hi_b + hi_a.lo_b by one tile
// product over a tripled inner dimension: the batch side is laid out as [hi | lo | hi], the bank
// side's inner steps read [hi | hi | lo].
//
// Tile shapes: every tile is 16 rows of 64 bytes. An A tile is 16 rows of 32 bfloat16, a C tile
// 16 x 16 floats, and a B tile 16 rows of 16 bfloat16 pairs (row r holds, for each of 16 output
// columns, the pair of inner indices 2r and 2r + 1).
//
// Bank layouts (uint16 arrays, one 512-element tile after another):
// - `t` (theta = U V^T, the bank is B with its rows as output columns): tile (g, s) for rows
//   16g..16g+15 and dimensions 32s..32s+31 holds at [r][c][j] the value V[16g + c][32s + 2r + j].
// - `v` (P V, the bank is B with its rows as the inner index): tile (h, s) for rows 32h..32h+31
//   and dimensions 16s..16s+15 holds at [r][c][j] the value V[32h + 2r + j][16s + c].
//
// One call walks the bank in chunks of kChunk rows, a range of chunks per thread, as a software
// pipeline: step `it` computes theta of chunk it and P V of chunk it - 2 on the tile unit, and
// between their tile steps (a row every few steps) the logistic pass of chunk it - 1 (theta in,
// the halves of P out, the sums), while it prefetches what the next step reads. The passes are
// this file's own AVX-512 loops (the logistic one with the AVX2 kernel's polynomial, a reciprocal
// estimate and one Newton step), writing the bfloat16 halves directly. The contrastive pair
// weights are -1, 0 or 1, exact in bfloat16, so its second product takes two tile products, not
// three. Measured here (Intel Xeon with AMX,
// one core, batch 128 against 60,000 64-dimensional rows): 6.3 ms with caches cold, where the
// same steps one after the other took 8.0 ms and torch's float32 products with the AVX2 pass
// about 15 ms.
#include "bank_amx.hpp"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <type_traits>
#include <vector>

#include "huge_pages.hpp"
#include "deephash/threads.hpp"

namespace deephash::kernels {

namespace {

constexpr std::size_t kTile = 512;    // uint16 elements of a tile
constexpr std::size_t kChunk = 256;  // bank rows per chunk: theta of a 128 batch is 128 KiB

struct alignas(64) TileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

// Loads the all-16 x 64-byte configuration for this thread now, releases the tiles on exit.
struct TileScope {
  TileScope() noexcept {
    TileConfig config;
    for (int t = 0; t < 8; ++t) {
      config.colsb[t] = 64;
      config.rows[t] = 16;
    }
    _tile_loadconfig(&config);
  }
  ~TileScope() { _tile_release(); }
  TileScope(const TileScope&) = delete;
  TileScope& operator=(const TileScope&) = delete;
};

inline std::uint32_t float_bits(float x) noexcept {
  std::uint32_t b;
  std::memcpy(&b, &x, 4);
  return b;
}

inline float bits_float(std::uint32_t b) noexcept {
  float x;
  std::memcpy(&x, &b, 4);
  return x;
}

// x rounded to the nearest bfloat16, ties to even (NaN stays NaN).
inline std::uint16_t to_bf16(float x) noexcept {
  std::uint32_t b = float_bits(x);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((b >> 16) | 0x40);
  b += 0x7fffu + ((b >> 16) & 1u);
  return static_cast<std::uint16_t>(b >> 16);
}

inline void split(float x, std::uint16_t& hi, std::uint16_t& lo) noexcept {
  hi = to_bf16(x);
  lo = to_bf16(x - bits_float(static_cast<std::uint32_t>(hi) << 16));
}

// hi[i], lo[i] = the halves of x[i] for i < n (AVX512-BF16 conversions, round to nearest even).
inline void split_row(const float* x, std::size_t n, std::uint16_t* hi, std::uint16_t* lo) noexcept {
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m256i h = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
    const __m512 back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    const __m256i l = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_sub_ps(v, back)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + i), h);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + i), l);
  }
  for (; i < n; ++i) split(x[i], hi[i], lo[i]);
}

// e^x for x in [-87, 0], 16 lanes: x = n ln 2 + r with |r| <= ln2 / 2, the degree-7 polynomial of
// the AVX2 logistic kernel (kernels/logistic_avx2.cpp) for e^r, then scaling by 2^n. NaN
// propagates.
inline __m512 exp_nonpositive(__m512 x) noexcept {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  const __m512 r4 = _mm512_mul_ps(r2, r2);
  const __m512 c01 = _mm512_add_ps(_mm512_set1_ps(1.0f), r);
  const __m512 c23 = _mm512_fmadd_ps(_mm512_set1_ps(1.6666665459e-1f), r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 c45 = _mm512_fmadd_ps(_mm512_set1_ps(8.3334519073e-3f), r, _mm512_set1_ps(4.1665795894e-2f));
  const __m512 c67 = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
  const __m512 low = _mm512_fmadd_ps(c23, r2, c01);
  const __m512 high = _mm512_fmadd_ps(c67, r2, c45);
  return _mm512_scalef_ps(_mm512_fmadd_ps(high, r4, low), n);
}

// The running sums of one chunk's logistic pass, per lane: the product of the factors
// d = 1 + e^-|t| (rescaled to [1, 2) after each row, its exponents counted in `exponents`) and the
// sum of max(t, 0) in double.
struct LogisticSums {
  __m512 product = _mm512_set1_ps(1.0f);
  __m512 exponents = _mm512_setzero_ps();
  __m512d relu_lo = _mm512_setzero_pd(), relu_hi = _mm512_setzero_pd();

  // sum over the lanes of max(t, 0) + log(d): the chunk's sum of softplus(t).
  double total() const noexcept {
    alignas(64) float mantissas[16], counts[16];
    alignas(64) double relu[16];
    _mm512_store_ps(mantissas, product);
    _mm512_store_ps(counts, exponents);
    _mm512_store_pd(relu, relu_lo);
    _mm512_store_pd(relu + 8, relu_hi);
    double sum = 0.0;
    for (int i = 0; i < 16; ++i)
      sum += relu[i] + std::log(static_cast<double>(mantissas[i])) + counts[i] * 0.69314718055994530942;
    return sum;
  }
};

// One row of a chunk: the logits t[0 .. valid) of `width` (a multiple of 32). Writes the halves of
// sigmoid(t) to hi and lo, zeros from `valid` to `width`, and adds the row's softplus terms to
// `sums`. sigmoid(t) = r for t >= 0 and e r for t < 0, with e = e^-|t| and r = 1 / (1 + e) from
// the reciprocal estimate and one Newton step.
inline void logistic_row(const float* t, std::size_t valid, std::size_t width, std::uint16_t* hi,
                         std::uint16_t* lo, LogisticSums& sums) noexcept {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), max_arg = _mm512_set1_ps(87.0f);
  __m512 relu = zero;
  for (std::size_t c = 0; c < width; c += 16) {
    const __mmask16 in = c + 16 <= valid ? __mmask16(0xffff)
                                         : (c < valid ? __mmask16((1u << (valid - c)) - 1) : __mmask16(0));
    const __m512 x = _mm512_maskz_loadu_ps(in, t + c);
    // min(87, |x|) with |x| second: a NaN is passed through, not replaced by 87.
    const __m512 a = _mm512_min_ps(max_arg, _mm512_abs_ps(x));
    const __m512 e = exp_nonpositive(_mm512_sub_ps(zero, a));
    const __m512 d = _mm512_add_ps(one, e);
    __m512 r = _mm512_rcp14_ps(d);
    r = _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, one), r);
    const __mmask16 negative = _mm512_cmp_ps_mask(x, zero, _CMP_LT_OQ);
    const __m512 p = _mm512_maskz_mov_ps(in, _mm512_mask_mul_ps(r, negative, e, r));
    relu = _mm512_mask_add_ps(relu, in, relu, _mm512_max_ps(zero, x));  // x second: NaN passes
    sums.product = _mm512_mask_mul_ps(sums.product, in, sums.product, d);
    // halves of p: hi = p truncated to bfloat16 (exact), lo = the rest rounded (p's error is below
    // 2^-16 of it, twice what rounding hi would leave, for 12% less time in this loop)
    const __m512 top = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(p), _mm512_set1_epi32(-65536)));
    const __m512i halves = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_sub_ps(p, top), top));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi + c), _mm512_castsi512_si256(halves));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo + c), _mm512_extracti64x4_epi64(halves, 1));
  }
  sums.relu_lo = _mm512_add_pd(sums.relu_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(relu)));
  sums.relu_hi = _mm512_add_pd(sums.relu_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(relu), 1))));
  // at most 16 factors in [1, 2) since the last rescale: the product is below 2^16
  sums.exponents = _mm512_add_ps(sums.exponents, _mm512_getexp_ps(sums.product));
  sums.product = _mm512_getmant_ps(sums.product, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
}

// The contrastive terms of one row (deephash/contrastive.hpp) over r[0 .. valid) of `width`
// (a multiple of 32), r = 2 u.v: d = max(|u|^2 + |v|^2 - r, 0), similar where the classes are
// equal. Writes the pair weights s - (1 - s)[d < margin] as bfloat16 (exact: -1, 0 or 1; zeros from
// `valid` on), adds their sum to `weight` and returns the sum of s d + (1 - s) max(margin - d, 0).
inline float contrastive_row(const float* r, std::size_t valid, std::size_t width, float u_norm,
                             std::int32_t u_class, const float* v_norm, const std::int32_t* v_class, float margin,
                             std::uint16_t* w, float& weight) noexcept {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f), minus_one = _mm512_set1_ps(-1.0f);
  const __m512 m = _mm512_set1_ps(margin), un = _mm512_set1_ps(u_norm);
  const __m512i uc = _mm512_set1_epi32(u_class);
  __m512 values = zero, weights = zero;
  for (std::size_t c = 0; c < width; c += 16) {
    const __mmask16 in = c + 16 <= valid ? __mmask16(0xffff)
                                         : (c < valid ? __mmask16((1u << (valid - c)) - 1) : __mmask16(0));
    const __m512 x = _mm512_maskz_loadu_ps(in, r + c);
    const __m512 vn = _mm512_maskz_loadu_ps(in, v_norm + c);
    const __m512i vc = _mm512_maskz_loadu_epi32(in, v_class + c);
    // max(0, .) with the difference second: a NaN is passed through, as in the scalar loop
    const __m512 d = _mm512_max_ps(zero, _mm512_sub_ps(_mm512_add_ps(un, vn), x));
    const __mmask16 similar = _mm512_mask_cmpeq_epi32_mask(in, vc, uc);
    const __mmask16 inside = _mm512_mask_cmp_ps_mask(in, d, m, _CMP_LT_OQ);
    const __m512 hinge = _mm512_max_ps(zero, _mm512_sub_ps(m, d));
    values = _mm512_mask_add_ps(values, in, values, _mm512_mask_blend_ps(similar, hinge, d));
    const __m512 pair = _mm512_mask_mov_ps(_mm512_maskz_mov_ps(inside, minus_one), similar, one);
    weights = _mm512_add_ps(weights, pair);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(w + c), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(pair)));
  }
  weight += _mm512_reduce_add_ps(weights);
  return _mm512_reduce_add_ps(values);
}

// Software prefetch of the bank regions the next step reads (up to four), a few lines at a time,
// spread over the steps of the current one.
struct Prefetch {
  const char* base[4] = {};
  std::size_t bytes[4] = {};
  std::size_t regions = 0, region = 0, offset = 0, per_tick = 0;

  void add(const void* p, std::size_t n) noexcept {
    base[regions] = static_cast<const char*>(p);
    bytes[regions++] = n;
  }
  void step() noexcept {
    for (std::size_t k = 0; k < per_tick && region < regions; ++k) {
      _mm_prefetch(base[region] + offset, _MM_HINT_T1);
      offset += 64;
      if (offset >= bytes[region]) {
        ++region;
        offset = 0;
      }
    }
  }
};

// The passes, as policies of the pipeline: `row` turns row i of a chunk's products into the halves
// of its pair weights and adds to the chunk's sums; `chunk_total` ends a chunk. kExactWeights:
// the weights are exact in bfloat16 (no low half).
struct LogisticPass {
  static constexpr bool kExactWeights = false;
  static constexpr float kScale = 1.0f;  // theta = u.v
  LogisticSums sums;

  void row(std::size_t, const float* theta, std::size_t, std::size_t valid, std::size_t width, std::uint16_t* hi,
           std::uint16_t* lo) noexcept {
    logistic_row(theta, valid, width, hi, lo, sums);
  }
  double chunk_total(std::size_t valid) noexcept {
    const double total = valid ? sums.total() : 0.0;
    sums = LogisticSums();
    return total;
  }
};

struct ContrastivePass {
  static constexpr bool kExactWeights = true;
  static constexpr float kScale = 2.0f;  // r = 2 u.v
  const float* u_norm = nullptr;
  const std::int32_t* u_class = nullptr;
  const float* v_norm = nullptr;
  const std::int32_t* v_class = nullptr;
  float margin = 0.0f;
  float* row_weight = nullptr;  // this thread's sums of the weights of each batch row
  double value = 0.0;

  void row(std::size_t i, const float* r, std::size_t start, std::size_t valid, std::size_t width,
           std::uint16_t* hi, std::uint16_t*) noexcept {
    value += contrastive_row(r, valid, width, u_norm[i], u_class[i], v_norm + start, v_class + start, margin, hi,
                             row_weight[i]);
  }
  double chunk_total(std::size_t) noexcept {
    const double total = value;
    value = 0.0;
    return total;
  }
};

// One chunk's pass, a row at a time, so that it can be interleaved with the tile products of
// other chunks (the product loops call tick() after each step of tile products).
template <class Pass>
struct PassCursor {
  Pass* pass = nullptr;
  const float* theta = nullptr;
  std::uint16_t* p_hi = nullptr;
  std::uint16_t* p_lo = nullptr;
  std::size_t start = 0, rows = 0, valid = 0, width = 0, next = 0;
  std::size_t every = 1, ticks = 0;  // one row every `every` ticks
  Prefetch prefetch;

  void row() noexcept {
    pass->row(next, theta + next * kChunk, start, valid, width, p_hi + next * kChunk, p_lo + next * kChunk);
    ++next;
  }
  void tick() noexcept {
    prefetch.step();
    if (next < rows && ++ticks >= every) {
      ticks = 0;
      row();
    }
  }
  void finish() noexcept {
    while (next < rows) row();
  }
};

// theta[i][c] = (batch side row i) . (bank row start + c) for the chunk's `width` rows.
// 2 x 2 output tiles at a time, each load right before its first use (about 10% faster here
// than the four loads first).
template <class Cursor>
void chunk_theta(const std::uint16_t* a, std::size_t a_stride, std::size_t batch_pad, std::size_t steps,
                 const std::uint16_t* t_hi, const std::uint16_t* t_lo, std::size_t start, std::size_t width,
                 float* theta, Cursor& cursor) noexcept {
  const std::size_t per_dim = steps / 3;  // tiles along the dimension in each third
  for (std::size_t i = 0; i < batch_pad; i += 32) {
    const std::uint16_t* a0 = a + i * a_stride;
    const std::uint16_t* a1 = a0 + 16 * a_stride;
    for (std::size_t c = 0; c < width; c += 32) {
      const std::size_t g = (start + c) / 16;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (std::size_t s = 0; s < steps; ++s) {
        const std::uint16_t* bank = s < 2 * per_dim ? t_hi : t_lo;
        const std::size_t d = s % per_dim;
        _tile_loadd(4, a0 + 32 * s, a_stride * 2);
        _tile_loadd(6, bank + (g * per_dim + d) * kTile, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, bank + ((g + 1) * per_dim + d) * kTile, 64);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a1 + 32 * s, a_stride * 2);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        cursor.tick();
      }
      float* out = theta + i * kChunk + c;
      _tile_stored(0, out, kChunk * 4);
      _tile_stored(1, out + 16, kChunk * 4);
      _tile_stored(2, out + 16 * kChunk, kChunk * 4);
      _tile_stored(3, out + 16 * kChunk + 16, kChunk * 4);
    }
  }
}

// chunk_theta for dim_pad = 32 T with T <= 2 (codes of up to 64 bits): the batch side's halves of
// 16 rows stay in tiles 4-7 while the chunk's bank rows stream past, 16 at a time into one output
// tile: 2 T loads for 3 T tile products, where the 2 x 2 blocking needs one load a product.
template <int T, class Cursor>
void chunk_theta_resident(const std::uint16_t* a, std::size_t a_stride, std::size_t batch_pad,
                          const std::uint16_t* t_hi, const std::uint16_t* t_lo, std::size_t start,
                          std::size_t width, float* theta, Cursor& cursor) noexcept {
  static_assert(T == 1 || T == 2);
  for (std::size_t i = 0; i < batch_pad; i += 16) {
    const std::uint16_t* rows = a + i * a_stride;  // [hi | lo | hi], 32 T columns each
    _tile_loadd(4, rows, a_stride * 2);            // hi, dimensions 0-31
    _tile_loadd(5, rows + 32 * T, a_stride * 2);   // lo, dimensions 0-31
    if constexpr (T == 2) {
      _tile_loadd(6, rows + 32, a_stride * 2);       // hi, dimensions 32-63
      _tile_loadd(7, rows + 32 * T + 32, a_stride * 2);  // lo, dimensions 32-63
    }
    for (std::size_t c = 0; c < width; c += 16) {
      const std::size_t tile = (start + c) / 16 * T * kTile;
      _tile_zero(0);
      _tile_loadd(1, t_hi + tile, 64);
      _tile_dpbf16ps(0, 4, 1);
      _tile_dpbf16ps(0, 5, 1);
      _tile_loadd(2, t_lo + tile, 64);
      _tile_dpbf16ps(0, 4, 2);
      if constexpr (T == 2) {
        _tile_loadd(3, t_hi + tile + kTile, 64);
        _tile_dpbf16ps(0, 6, 3);
        _tile_dpbf16ps(0, 7, 3);
        _tile_loadd(1, t_lo + tile + kTile, 64);
        _tile_dpbf16ps(0, 6, 1);
      }
      _tile_stored(0, theta + i * kChunk + c, kChunk * 4);
      if (c % 32 == 16) cursor.tick();
    }
  }
}

// sums (batch_pad x dim_pad) += P V over the chunk, P given by its halves (batch_pad x kChunk;
// the high half alone when Exact). Q output tiles along the dimension at a time (2 or 4).
template <int Q, bool Exact, class Cursor>
void chunk_times_bank(const std::uint16_t* p_hi, const std::uint16_t* p_lo, std::size_t batch_pad,
                      const std::uint16_t* v_hi, const std::uint16_t* v_lo, std::size_t dim_pad,
                      std::size_t start, std::size_t width, float* sums, Cursor& cursor) noexcept {
  const std::size_t tiles_per_pair_block = dim_pad / 16;
  for (std::size_t b = 0; b < batch_pad; b += 16) {
    for (std::size_t q0 = 0; q0 < tiles_per_pair_block; q0 += Q) {
      float* out = sums + b * dim_pad + q0 * 16;
      _tile_loadd(0, out, dim_pad * 4);
      _tile_loadd(1, out + 16, dim_pad * 4);
      if constexpr (Q == 4) {
        _tile_loadd(2, out + 32, dim_pad * 4);
        _tile_loadd(3, out + 48, dim_pad * 4);
      }
      for (std::size_t c = 0; c < width; c += 32) {
        _tile_loadd(4, p_hi + b * kChunk + c, kChunk * 2);
        if constexpr (!Exact) _tile_loadd(5, p_lo + b * kChunk + c, kChunk * 2);
        const std::size_t base = ((start + c) / 32 * tiles_per_pair_block + q0) * kTile;
#define DEEPHASH_AMX_STEP(q)                                   \
  _tile_loadd(6, v_hi + base + (q) * kTile, 64);               \
  _tile_dpbf16ps(q, 4, 6);                                     \
  if constexpr (!Exact) _tile_dpbf16ps(q, 5, 6);               \
  _tile_loadd(7, v_lo + base + (q) * kTile, 64);               \
  _tile_dpbf16ps(q, 4, 7);
        DEEPHASH_AMX_STEP(0)
        DEEPHASH_AMX_STEP(1)
        if constexpr (Q == 4) {
          DEEPHASH_AMX_STEP(2)
          DEEPHASH_AMX_STEP(3)
        }
#undef DEEPHASH_AMX_STEP
        cursor.tick();
      }
      _tile_stored(0, out, dim_pad * 4);
      _tile_stored(1, out + 16, dim_pad * 4);
      if constexpr (Q == 4) {
        _tile_stored(2, out + 32, dim_pad * 4);
        _tile_stored(3, out + 48, dim_pad * 4);
      }
    }
  }
}

// Per-thread working memory, reused from call to call: two of each chunk buffer, for the
// pipeline.
struct Scratch {
  AlignedVector<float> theta[2];                  // batch_pad x kChunk
  AlignedVector<std::uint16_t> p_hi[2], p_lo[2];  // batch_pad x kChunk
  AlignedVector<float> sums;                      // batch_pad x dim_pad
  std::vector<float> row_weight;                  // batch
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// The batch side of theta: scale * u as [hi | lo | hi] per row, padding rows and dimensions zero.
AlignedVector<std::uint16_t> batch_side(const float* u, std::size_t batch, std::size_t batch_pad, std::size_t dim,
                                        std::size_t dim_pad, float scale) {
  const std::size_t stride = 3 * dim_pad;
  AlignedVector<std::uint16_t> a(batch_pad * stride, 0);
  std::vector<float> scaled(dim);
  std::vector<std::uint16_t> lo(dim);
  for (std::size_t i = 0; i < batch; ++i) {
    std::uint16_t* row = a.data() + i * stride;
    for (std::size_t k = 0; k < dim; ++k) scaled[k] = scale * u[i * dim + k];  // exact: a power of 2
    split_row(scaled.data(), dim, row, lo.data());
    std::memcpy(row + dim_pad, lo.data(), dim * 2);
    std::memcpy(row + 2 * dim_pad, row, dim * 2);
  }
  return a;
}

// The pipeline over the whole bank, a range of chunks per thread. `prototype` is copied for each
// thread; with_row_weight: the pass adds to per-row sums (ContrastivePass::row_weight), returned
// in row_weight (batch). sums_out: the batch x dim sums of the second product.
template <class Pass>
double run_pipeline(const AmxBank& bank, const float* u, std::size_t batch, const Pass& prototype,
                    bool with_row_weight, float* sums_out, float* row_weight, std::size_t threads) {
  const std::size_t dim = bank.dim, dim_pad = bank.dim_pad, rows = bank.rows, rows_pad = bank.rows_pad;
  const std::size_t batch_pad = (batch + 31) / 32 * 32;
  const AlignedVector<std::uint16_t> a = batch_side(u, batch, batch_pad, dim, dim_pad, Pass::kScale);
  const std::size_t a_stride = 3 * dim_pad, theta_steps = 3 * (dim_pad / 32);
  const std::size_t chunks = (rows_pad + kChunk - 1) / kChunk;
  const auto width_of = [&](std::size_t chunk) { return std::min(kChunk, rows_pad - chunk * kChunk); };
  // Each range of chunks leaves its sums here, added up in chunk order below: the result depends
  // on the number of threads, not on which thread finished first.
  struct Part {
    std::size_t begin;
    double total;
    AlignedVector<float> sums;
    std::vector<float> row_weight;
  };
  std::vector<Part> parts;
  std::mutex merge;
  parallel_for(
      chunks,
      [&](std::size_t begin, std::size_t end) {
        Scratch& s = scratch();
        for (int k = 0; k < 2; ++k) {
          s.theta[k].resize(batch_pad * kChunk);
          s.p_hi[k].resize(batch_pad * kChunk);
          s.p_lo[k].resize(batch_pad * kChunk);
        }
        s.sums.assign(batch_pad * dim_pad, 0.0f);
        s.row_weight.assign(with_row_weight ? batch : 0, 0.0f);
        Pass pass = prototype;
        if constexpr (std::is_same_v<Pass, ContrastivePass>) pass.row_weight = s.row_weight.data();
        double part = 0.0;
        TileScope tiles;
        // Step `it`: theta of chunk it and the second product of chunk it - 2 on the tile unit,
        // the pass of chunk it - 1 between their steps.
        for (std::size_t it = begin; it < end + 2; ++it) {
          const bool has_theta = it < end, has_pass = it >= begin + 1 && it - 1 < end,
                     has_product = it >= begin + 2;
          PassCursor<Pass> cursor;
          cursor.pass = &pass;
          std::size_t ticks = 0;
          if (has_theta)  // the tick counts of chunk_theta_resident and chunk_theta
            ticks += dim_pad <= 64 ? batch_pad / 16 * (width_of(it) / 32)
                                   : batch_pad / 32 * (width_of(it) / 32) * theta_steps;
          if (has_product) ticks += batch_pad / 16 * (dim_pad % 64 == 0 ? dim_pad / 64 : dim_pad / 32) *
                                    (width_of(it - 2) / 32);
          // the next step reads theta's layout of chunk it + 1 and the product's of chunk it - 1
          const auto chunk_bytes = [&](std::size_t c) { return width_of(c) * dim_pad * sizeof(std::uint16_t); };
          if (it + 1 < end) {
            cursor.prefetch.add(bank.t_hi + (it + 1) * kChunk * dim_pad, chunk_bytes(it + 1));
            cursor.prefetch.add(bank.t_lo + (it + 1) * kChunk * dim_pad, chunk_bytes(it + 1));
          }
          if (has_pass) {
            cursor.prefetch.add(bank.v_hi + (it - 1) * kChunk * dim_pad, chunk_bytes(it - 1));
            cursor.prefetch.add(bank.v_lo + (it - 1) * kChunk * dim_pad, chunk_bytes(it - 1));
          }
          std::size_t prefetch_bytes = 0;
          for (std::size_t r = 0; r < cursor.prefetch.regions; ++r) prefetch_bytes += cursor.prefetch.bytes[r];
          cursor.prefetch.per_tick = ticks ? (prefetch_bytes / 64 + ticks - 1) / ticks : 0;
          if (has_pass) {
            const std::size_t c = it - 1, k = c % 2;
            cursor.theta = s.theta[k].data();
            cursor.p_hi = s.p_hi[k].data();
            cursor.p_lo = s.p_lo[k].data();
            cursor.start = c * kChunk;
            cursor.rows = batch;
            cursor.width = width_of(c);
            cursor.valid = cursor.start < rows ? std::min(cursor.width, rows - cursor.start) : 0;
            cursor.every = std::max<std::size_t>(1, ticks / batch);
            // rows past the batch pair with nothing: zero halves
            for (std::size_t i = batch; i < batch_pad; ++i) {
              std::fill_n(cursor.p_hi + i * kChunk, cursor.width, std::uint16_t{0});
              std::fill_n(cursor.p_lo + i * kChunk, cursor.width, std::uint16_t{0});
            }
          }
          if (has_theta) {
            float* theta = s.theta[it % 2].data();
            if (dim_pad == 32)
              chunk_theta_resident<1>(a.data(), a_stride, batch_pad, bank.t_hi, bank.t_lo, it * kChunk, width_of(it),
                                      theta, cursor);
            else if (dim_pad == 64)
              chunk_theta_resident<2>(a.data(), a_stride, batch_pad, bank.t_hi, bank.t_lo, it * kChunk, width_of(it),
                                      theta, cursor);
            else
              chunk_theta(a.data(), a_stride, batch_pad, theta_steps, bank.t_hi, bank.t_lo, it * kChunk, width_of(it),
                          theta, cursor);
          }
          if (has_product) {
            const std::size_t c = it - 2, k = c % 2;
            constexpr bool exact = Pass::kExactWeights;
            if (dim_pad % 64 == 0)
              chunk_times_bank<4, exact>(s.p_hi[k].data(), s.p_lo[k].data(), batch_pad, bank.v_hi, bank.v_lo,
                                         dim_pad, c * kChunk, width_of(c), s.sums.data(), cursor);
            else
              chunk_times_bank<2, exact>(s.p_hi[k].data(), s.p_lo[k].data(), batch_pad, bank.v_hi, bank.v_lo,
                                         dim_pad, c * kChunk, width_of(c), s.sums.data(), cursor);
          }
          if (has_pass) {
            cursor.finish();
            part += pass.chunk_total(cursor.valid);
          }
        }
        std::lock_guard<std::mutex> lock(merge);
        parts.push_back(Part{begin, part, AlignedVector<float>(s.sums.begin(), s.sums.end()), s.row_weight});
      },
      threads);
  std::sort(parts.begin(), parts.end(), [](const Part& x, const Part& y) { return x.begin < y.begin; });
  double total = 0.0;
  std::fill_n(sums_out, batch * dim, 0.0f);
  if (with_row_weight) std::fill_n(row_weight, batch, 0.0f);
  for (const Part& p : parts) {
    total += p.total;
    for (std::size_t i = 0; i < batch; ++i) {
      for (std::size_t k = 0; k < dim; ++k) sums_out[i * dim + k] += p.sums[i * dim_pad + k];
      if (with_row_weight) row_weight[i] += p.row_weight[i];
    }
  }
  return total;
}

}  // namespace

void amx_pack_rows(const AmxBankMutable& bank, const float* values, const std::int64_t* index,
                   const std::int32_t* classes, std::size_t count) noexcept {
  const std::size_t dim = bank.dim, dim_pad = bank.dim_pad;
  const std::size_t t_steps = dim_pad / 32, v_steps = dim_pad / 16;
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t n = static_cast<std::size_t>(index[i]);
    const float* row = values + i * dim;
    float norm = 0.0f;
    for (std::size_t k = 0; k < dim_pad; ++k) {
      std::uint16_t hi = 0, lo = 0;
      if (k < dim) {
        split(row[k], hi, lo);
        norm += row[k] * row[k];
      }
      const std::size_t t = ((n / 16 * t_steps + k / 32) * 16 + (k % 32) / 2) * 32 + (n % 16) * 2 + k % 2;
      const std::size_t v = ((n / 32 * v_steps + k / 16) * 16 + (n % 32) / 2) * 32 + (k % 16) * 2 + n % 2;
      bank.t_hi[t] = hi;
      bank.t_lo[t] = lo;
      bank.v_hi[v] = hi;
      bank.v_lo[v] = lo;
    }
    bank.v_norm[n] = norm;
    bank.v_class[n] = classes ? classes[i] : -1;
  }
}

double amx_logistic(const AmxBank& bank, const float* u, std::size_t batch, float* sigmoid_v, std::size_t threads) {
  return run_pipeline(bank, u, batch, LogisticPass{}, false, sigmoid_v, nullptr, threads);
}

double amx_contrastive(const AmxBank& bank, const float* u, const float* u_norm, const std::int32_t* u_class,
                       std::size_t batch, float margin, float* weight_v, float* weight_sum, std::size_t threads) {
  ContrastivePass pass;
  pass.u_norm = u_norm;
  pass.u_class = u_class;
  pass.v_norm = bank.v_norm;
  pass.v_class = bank.v_class;
  pass.margin = margin;
  return run_pipeline(bank, u, batch, pass, true, weight_v, weight_sum, threads);
}

}  // namespace deephash::kernels
