// AVX-512 Hamming kernels with VPOPCNTDQ, VBMI and IFMA (x86-64: Ice Lake, Tiger Lake, Sapphire
// Rapids, Zen 4/5, ...). Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq
// -mavx512vbmi -mavx512ifma on this file alone and selected only where CPUID reports all of them
// and the OS saves ZMM state.
//
// Instructions relied on: VPXORD, VPOPCNTD / VPOPCNTQ, VPERMB (codes moved into slots),
// masked VMOVDQU8 loads (exactly a code's bytes, faults suppressed past them), VPERMT2Q / VPERMT2D
// (sums of adjacent lanes, packing), VPMADD52LUQ (counts packed into 16-bit fields), VPCMPD /
// VPCMPW to a mask register, VPERMW (fields back in code order), VPCOMPRESSD (survivors).
//
// Every code size runs vectorised, 16 codes per step:
// - up to 64 bytes: each code sits in a slot of 4, 8, 16, 32 or 64 bytes (the smallest power of
//   two that holds it), 64 / slot codes per register, moved there by one VPERMB where the code is
//   smaller than its slot; VPOPCNTD (4-byte slots) or VPOPCNTQ; slots of 16 bytes and more pack
//   four registers' counts into 16-bit fields before summing a code's lanes (sum_fields);
// - above 64 bytes: one register per 64 bytes of a code (the last one masked), their counts added,
//   then summed as 64-byte slots are (up to 128 bytes) or lane by lane.
// The prepared layout (groups of 16 codes interleaved word by word) is below.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "bank_kernels.hpp"
#include "ranking_kernels.hpp"
#include "deephash/simd.hpp"

namespace deephash::kernels {
namespace avx512_impl {
#include "hamming_portable.inl"

static inline __m512i loadu(const std::uint8_t* p) noexcept { return _mm512_loadu_si512(p); }

static inline __mmask64 first_bytes(std::size_t n) noexcept {  // n <= 64
  return n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
}

// [a0+a1, a2+a3, a4+a5, a6+a7, b0+b1, b2+b3, b4+b5, b6+b7] of two vectors of 8 uint64 counts.
static inline __m512i add_adjacent(__m512i a, __m512i b) noexcept {
  const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  return _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b));
}

// Two vectors of 8 uint64 counts (each < 2^31) -> one vector of 16 int32 counts.
static inline __m512i pack_counts(__m512i a, __m512i b) noexcept {
  const __m512i low = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  return _mm512_permutex2var_epi32(a, low, b);
}

// Sums adjacent lanes of r[0..regs) until r[0] and r[1] hold 8 per-code counts each.
template <std::size_t Regs>
static inline void reduce_to_two(__m512i (&r)[Regs]) noexcept {
  for (std::size_t width = Regs; width > 2; width /= 2)
    for (std::size_t j = 0; j < width / 2; ++j) r[j] = add_adjacent(r[2 * j], r[2 * j + 1]);
}

// How a step hands over its 16 counts: 16 int32 lanes (Dwords), two vectors of 8 uint64 lanes
// (Qwords), or 16-bit fields of one vector in a step-specific order (Words, see pack_fields).
enum class Counts { Dwords, Qwords, Words };

// Four vectors of 8 uint64 counts (each < 2^15) -> one, count j of r[f] in bits [16 f, 16 f + 16)
// of lane j, by instructions that do not need the shuffle port: two multiply-adds (r0 + r1 2^16
// + r2 2^32; VPMADD52LUQ keeps 52 bits, too few for the fourth field), a shift and an OR. The
// multiply-adds made 32-byte codes 5% faster than shifts and a three-way OR.
static inline __m512i pack_fields(__m512i r0, __m512i r1, __m512i r2, __m512i r3) noexcept {
  const __m512i x = _mm512_madd52lo_epu64(_mm512_madd52lo_epu64(r0, r1, _mm512_set1_epi64(std::int64_t{1} << 16)), r2,
                                          _mm512_set1_epi64(std::int64_t{1} << 32));
  return _mm512_or_si512(x, _mm512_slli_epi64(r3, 48));
}

// Per-code counts from per-word ones by packing before summing: four registers of counts become
// one of 16-bit fields (pack_fields), and the lanes of a code are summed across the packed
// registers, so each shuffle serves four codes at once. On Intel cores VPOPCNTQ and every lane
// shuffle share one port; summing adjacent lanes register by register (reduce_to_two) took 12
// shuffles per 16 codes of 32 bytes, this takes 3. r[j] holds the word counts of 64 / S codes
// (S = the bytes of a code's slot: 16, 32 or 64; 64 also stands for codes of several registers
// whose counts are already added): the 16 codes' totals land in 16-bit fields (field_of_code).
template <std::size_t S>
static inline __m512i sum_fields(const __m512i (&r)[S / 4]) noexcept {
  if constexpr (S == 16) {  // 4 codes per register, one per 128-bit lane: add the lane's two qwords
    const __m512i x = pack_fields(r[0], r[1], r[2], r[3]);
    return _mm512_add_epi64(x, _mm512_shuffle_epi32(x, _MM_PERM_BADC));
  } else if constexpr (S == 32) {  // 2 codes per register, one per 256-bit half
    const __m512i x = pack_fields(r[0], r[1], r[2], r[3]), y = pack_fields(r[4], r[5], r[6], r[7]);
    const __m512i u = _mm512_add_epi64(_mm512_unpacklo_epi64(x, y), _mm512_unpackhi_epi64(x, y));
    return _mm512_add_epi64(u, _mm512_permutex_epi64(u, 0x4E));
  } else {  // one code per register
    static_assert(S == 64);
    const __m512i x0 = pack_fields(r[0], r[1], r[2], r[3]), x1 = pack_fields(r[4], r[5], r[6], r[7]);
    const __m512i x2 = pack_fields(r[8], r[9], r[10], r[11]), x3 = pack_fields(r[12], r[13], r[14], r[15]);
    const __m512i u0 = _mm512_add_epi64(_mm512_unpacklo_epi64(x0, x1), _mm512_unpackhi_epi64(x0, x1));
    const __m512i u1 = _mm512_add_epi64(_mm512_unpacklo_epi64(x2, x3), _mm512_unpackhi_epi64(x2, x3));
    const __m512i z = _mm512_add_epi64(_mm512_shuffle_i64x2(u0, u1, 0x88), _mm512_shuffle_i64x2(u0, u1, 0xDD));
    return _mm512_add_epi64(z, _mm512_shuffle_i64x2(z, z, 0xB1));
  }
}

// Where sum_fields<S> leaves code i's total: a 16-bit field index (0..31).
static constexpr std::size_t field_of_code(std::size_t S, std::size_t i) noexcept {
  if (S == 16) return 4 * (2 * (i % 4)) + i / 4;                    // lane i % 4, field i / 4
  if (S == 32) return 4 * ((i / 2) / 4 + 4 * (i % 2)) + (i / 2) % 4;  // half i % 2, register i / 8
  const std::size_t reg = i / 4;                                    // S == 64: x0, x1 -> qwords 0, 1;
  return 4 * (reg < 2 ? reg : reg + 2) + i % 4;                     // x2, x3 -> qwords 4, 5
}

// The fields sum_fields<S> fills with totals (the others hold partial sums).
static constexpr std::uint32_t fields_used(std::size_t S) noexcept {
  std::uint32_t m = 0;
  for (std::size_t i = 0; i < 16; ++i) m |= std::uint32_t{1} << field_of_code(S, i);
  return m;
}

// VPERMW indices that move code i's field to the low half of 32-bit lane i.
template <std::size_t S>
struct FieldOrder {
  alignas(64) std::uint16_t index[32];
  constexpr FieldOrder() noexcept : index{} {
    for (std::size_t i = 0; i < 16; ++i) index[2 * i] = static_cast<std::uint16_t>(field_of_code(S, i));
  }
};
template <std::size_t S>
static constexpr FieldOrder<S> kFieldOrder{};

// The 16 totals left by sum_fields<S>, as int32 lanes in code order.
template <std::size_t S>
static inline __m512i fields_to_dwords(__m512i v) noexcept {
  return _mm512_maskz_permutexvar_epi16(0x55555555u, _mm512_load_si512(kFieldOrder<S>.index), v);
}

// The slot of a code of cs <= 64 bytes: the smallest power of two >= cs, at least 4.
static constexpr std::size_t slot_bytes(std::size_t cs) noexcept {
  std::size_t s = 4;
  while (s < cs) s *= 2;
  return s;
}

// Per code size (1..64 bytes), the VPERMB indices that move a register's codes into their slots
// (`expand`), repeat the first slot's bytes in every slot (`repeat`), and the mask of the bytes
// that belong to a code. Built once for all sizes, on first use (a few microseconds).
struct SlotTable {
  alignas(64) std::uint8_t expand[64];
  alignas(64) std::uint8_t repeat[64];
  std::uint64_t keep;
};

static const SlotTable& slot_table(std::size_t cs) noexcept {
  static const struct Tables {
    SlotTable by_size[65];
    Tables() noexcept {
      for (std::size_t c = 1; c <= 64; ++c) {
        SlotTable& t = by_size[c];
        const std::size_t S = slot_bytes(c);
        t.keep = 0;
        for (std::size_t b = 0; b < 64; ++b) {
          const std::size_t slot = b / S, byte = b % S;
          t.expand[b] = static_cast<std::uint8_t>(byte < c ? slot * c + byte : 0);
          t.repeat[b] = static_cast<std::uint8_t>(byte < c ? byte : 0);
          if (byte < c) t.keep |= std::uint64_t{1} << b;
        }
      }
    }
  } tables;
  return tables.by_size[cs];
}

// Codes of at most 64 bytes in slots of S bytes (S = 4 ... 64), 64 / S slots per register; each
// call returns the distances of 16 consecutive codes as 16 int32 lanes. Expand: the code is
// smaller than its slot (VPERMB spreads a register's codes into their slots and zeroes the rest).
template <std::size_t S, bool Expand>
struct Slots {
  static constexpr std::size_t kPerReg = 64 / S, kRegs = S / 4;  // 16 codes = kRegs registers
  std::size_t stride;
  __mmask64 load_mask, keep;
  __m512i expand, q;
  Slots(const std::uint8_t* query, std::size_t cs) noexcept : stride(cs), load_mask(first_bytes(kPerReg * cs)) {
    const SlotTable& t = slot_table(cs);
    keep = t.keep;
    expand = _mm512_load_si512(t.expand);
    // The query in every slot: its bytes loaded once, then spread by the same kind of permute.
    q = _mm512_maskz_permutexvar_epi8(keep, _mm512_load_si512(t.repeat), _mm512_maskz_loadu_epi8(first_bytes(cs), query));
  }
  __m512i reg(const std::uint8_t* c) const noexcept {  // one register's codes XOR the query
    __m512i x;
    if constexpr (!Expand)
      x = loadu(c);
    else if constexpr (S == 64)
      x = _mm512_maskz_loadu_epi8(load_mask, c);
    else
      x = _mm512_maskz_permutexvar_epi8(keep, expand, _mm512_maskz_loadu_epi8(load_mask, c));
    return _mm512_xor_si512(x, q);
  }
  // The 16 distances from c on: as 16 int32 lanes (Dwords), as two vectors of 8 uint64 (Qwords:
  // 8-byte slots, one code per lane already) or in 16-bit fields (Words, see sum_fields).
  static constexpr Counts kCounts = S == 4 ? Counts::Dwords : S == 8 ? Counts::Qwords : Counts::Words;
  static constexpr std::size_t kFieldSlot = S;
  __m512i dwords(const std::uint8_t* c) const noexcept { return _mm512_popcnt_epi32(reg(c)); }
  void qwords(const std::uint8_t* c, __m512i& lo, __m512i& hi) const noexcept {
    __m512i r[kRegs];
    for (std::size_t j = 0; j < kRegs; ++j) r[j] = _mm512_popcnt_epi64(reg(c + j * kPerReg * stride));
    reduce_to_two(r);
    lo = r[0];
    hi = r[1];
  }
  __m512i words(const std::uint8_t* c) const noexcept {  // instantiated only for Words slots
    static_assert(S >= 16);
    __m512i r[kRegs];
    for (std::size_t j = 0; j < kRegs; ++j) r[j] = _mm512_popcnt_epi64(reg(c + j * kPerReg * stride));
    return sum_fields<S>(r);
  }
};

// Codes of more than 64 bytes: NC registers per code (NC = 0: counted at run time), the last one
// masked to the code's bytes; the per-register counts of a code are added before the lanes are.
template <std::size_t NC>
struct Wide {
  static constexpr std::size_t kRegs = 16;
  std::size_t stride, chunks;
  __mmask64 tail;  // bytes of the last register, all of them when the size is a multiple of 64
  const std::uint8_t* query;
  Wide(const std::uint8_t* qry, std::size_t cs) noexcept
      : stride(cs), chunks(NC ? NC : (cs + 63) / 64), tail(first_bytes(cs - 64 * ((cs + 63) / 64 - 1))), query(qry) {}
  __m512i one(const std::uint8_t* c) const noexcept {
    const std::size_t n = NC ? NC : chunks;
    __m512i acc = _mm512_popcnt_epi64(_mm512_xor_si512(loadu(c), loadu(query)));
    for (std::size_t v = 1; v + 1 < n; ++v)
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(loadu(c + 64 * v), loadu(query + 64 * v))));
    const std::size_t last = 64 * (n - 1);
    const __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi8(tail, c + last), _mm512_maskz_loadu_epi8(tail, query + last));
    return _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
  }
  // Up to 128 bytes a code's count (<= 1024) fits a 16-bit field; wider codes sum qwords.
  static constexpr Counts kCounts = NC != 0 && NC <= 2 ? Counts::Words : Counts::Qwords;
  static constexpr std::size_t kFieldSlot = 64;
  void qwords(const std::uint8_t* c, __m512i& lo, __m512i& hi) const noexcept {
    __m512i r[16];
    for (std::size_t j = 0; j < 16; ++j) r[j] = one(c + j * stride);
    reduce_to_two(r);
    lo = r[0];
    hi = r[1];
  }
  __m512i words(const std::uint8_t* c) const noexcept {
    __m512i r[16];
    for (std::size_t j = 0; j < 16; ++j) r[j] = one(c + j * stride);
    return sum_fields<64>(r);
  }
};

// One code of any size: 64-byte chunks, the last one loaded under a byte mask (the tail of a block).
struct AnyQuery {
  const std::uint8_t* q;
  std::size_t full;
  __mmask64 tail_mask;
  AnyQuery(const std::uint8_t* query, std::size_t cs) noexcept
      : q(query), full(cs / 64), tail_mask(cs % 64 ? first_bytes(cs % 64) : 0) {}
  dist_t operator()(const std::uint8_t* c) const noexcept {
    __m512i acc = _mm512_setzero_si512();
    for (std::size_t v = 0; v < full; ++v)
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(loadu(c + 64 * v), loadu(q + 64 * v))));
    if (tail_mask) {
      const __m512i x = _mm512_maskz_loadu_epi8(tail_mask, c + 64 * full);
      const __m512i y = _mm512_maskz_loadu_epi8(tail_mask, q + 64 * full);
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
    }
    return static_cast<dist_t>(_mm512_reduce_add_epi64(acc));
  }
};

// Calls visit(step) with the 16-code step for this code size.
template <class Visit>
static void with_step(const std::uint8_t* query, std::size_t cs, Visit&& visit) noexcept {
  if (cs < 4) return visit(Slots<4, true>(query, cs));
  if (cs == 4) return visit(Slots<4, false>(query, cs));
  if (cs < 8) return visit(Slots<8, true>(query, cs));
  if (cs == 8) return visit(Slots<8, false>(query, cs));
  if (cs < 16) return visit(Slots<16, true>(query, cs));
  if (cs == 16) return visit(Slots<16, false>(query, cs));
  if (cs < 32) return visit(Slots<32, true>(query, cs));
  if (cs == 32) return visit(Slots<32, false>(query, cs));
  if (cs < 64) return visit(Slots<64, true>(query, cs));
  if (cs == 64) return visit(Slots<64, false>(query, cs));
  if (cs <= 128) return visit(Wide<2>(query, cs));
  return visit(Wide<0>(query, cs));
}

// Appends positions i .. i + 15 selected by k, and their distances d, at m; returns the new m.
// Compresses in registers and stores whole vectors: VPCOMPRESSD straight to memory is microcoded
// and many times slower on some CPUs (Zen 4). The store covers 16 entries from m; since m <= i,
// that stays inside n-entry outputs whenever i + 16 <= n (Full); otherwise it is masked.
template <bool Full = true>
static inline std::size_t compress_hits(__mmask16 k, __m512i d, std::size_t i, std::uint32_t* positions,
                                        dist_t* distances, std::size_t m) noexcept {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i pos = _mm512_add_epi32(lane, _mm512_set1_epi32(static_cast<int>(i)));
  const unsigned hits = static_cast<unsigned>(__builtin_popcount(k));
  const __m512i p = _mm512_maskz_compress_epi32(k, pos), v = _mm512_maskz_compress_epi32(k, d);
  if constexpr (Full) {
    _mm512_storeu_si512(positions + m, p);
    _mm512_storeu_si512(distances + m, v);
  } else {
    const __mmask16 first = static_cast<__mmask16>((1u << hits) - 1);
    _mm512_mask_storeu_epi32(positions + m, first, p);
    _mm512_mask_storeu_epi32(distances + m, first, v);
  }
  return m + hits;
}

// One step's counts: 16 int32 lanes in `a` (Dwords), 8 uint64 lanes in `a` and 8 in `b`
// (Qwords), or 16-bit fields of `a` (Words).
struct StepCounts {
  __m512i a, b;
};

// The bound in each lane width a step compares in. A negative max_distance lets nothing pass
// (signed compares). Counts of a Words step are at most 1,024: their bound is cut to [-1, 32767]
// (wrapped, a large bound would turn negative and drop every code); that compare only selects
// the steps with a survivor, whose codes hits_in_order then tests in 32 bits.
struct Limits {
  __m512i l32, l64, l16;
  explicit Limits(dist_t max_distance) noexcept
      : l32(_mm512_set1_epi32(max_distance)), l64(_mm512_set1_epi64(static_cast<long long>(max_distance))),
        l16(_mm512_set1_epi16(static_cast<short>(std::clamp<dist_t>(max_distance, -1, 32767)))) {}
};

// 16 codes' counts, and a mask that is not zero when any of them is <= the limit (Dwords and
// Qwords: bit i for code i; Words: bits of the fields, in sum_fields' order: see hits_in_order).
template <class Step>
static inline std::uint32_t step_hits(const Step& step, const std::uint8_t* c, const Limits& lim, StepCounts& d) noexcept {
  if constexpr (Step::kCounts == Counts::Dwords) {
    d.a = step.dwords(c);
    return _mm512_cmple_epi32_mask(d.a, lim.l32);
  } else if constexpr (Step::kCounts == Counts::Qwords) {
    step.qwords(c, d.a, d.b);
    return _mm512_cmple_epi64_mask(d.a, lim.l64) | (static_cast<std::uint32_t>(_mm512_cmple_epi64_mask(d.b, lim.l64)) << 8);
  } else {
    d.a = step.words(c);
    return _mm512_cmple_epi16_mask(d.a, lim.l16) & fields_used(Step::kFieldSlot);
  }
}

template <class Step>
static inline __m512i as_dwords(const StepCounts& d) noexcept {
  if constexpr (Step::kCounts == Counts::Dwords)
    return d.a;
  else if constexpr (Step::kCounts == Counts::Qwords)
    return pack_counts(d.a, d.b);
  else
    return fields_to_dwords<Step::kFieldSlot>(d.a);
}

// The 16 distances of a step with hits (in `dw`, code order) and the mask of the codes that pass.
template <class Step>
static inline __mmask16 hits_in_order(const StepCounts& d, std::uint32_t hits, const Limits& lim, __m512i& dw) noexcept {
  dw = as_dwords<Step>(d);
  if constexpr (Step::kCounts == Counts::Words)
    return _mm512_cmple_epi32_mask(dw, lim.l32);
  else
    return static_cast<__mmask16>(hits);
}

template <class Step>
static inline __m512i step_distances(const Step& step, const std::uint8_t* c) noexcept {
  StepCounts d;
  if constexpr (Step::kCounts == Counts::Dwords)
    d.a = step.dwords(c);
  else if constexpr (Step::kCounts == Counts::Qwords)
    step.qwords(c, d.a, d.b);
  else
    d.a = step.words(c);
  return as_dwords<Step>(d);
}

// Filters codes [0, end) (end: n rounded down to whole steps) in steps of 16; short codes run
// several steps per test of the combined masks.
template <class Step>
static std::size_t filter_steps(const Step& step, const std::uint8_t* codes, std::size_t n, dist_t max_distance,
                                std::uint32_t* positions, dist_t* distances, std::size_t* done) noexcept {
  constexpr std::size_t U = Step::kCounts == Counts::Dwords ? 4 : Step::kRegs <= 2 ? 2 : 1;
  const std::size_t cs = step.stride;
  const Limits lim(max_distance);
  std::size_t m = 0, i = 0;
  __m512i dw;
  for (; i + 16 * U <= n; i += 16 * U) {
    StepCounts d[U];
    std::uint32_t k[U];
    std::uint32_t any = 0;
    for (std::size_t u = 0; u < U; ++u) {
      k[u] = step_hits(step, codes + (i + 16 * u) * cs, lim, d[u]);
      any |= k[u];
    }
    if (any == 0) continue;  // the common case once the threshold is low
    for (std::size_t u = 0; u < U; ++u)
      if (k[u]) {
        const __mmask16 in_order = hits_in_order<Step>(d[u], k[u], lim, dw);
        m = compress_hits(in_order, dw, i + 16 * u, positions, distances, m);
      }
  }
  for (; i + 16 <= n; i += 16) {
    StepCounts d;
    const std::uint32_t k = step_hits(step, codes + i * cs, lim, d);
    if (k) {
      const __mmask16 in_order = hits_in_order<Step>(d, k, lim, dw);
      m = compress_hits(in_order, dw, i, positions, distances, m);
    }
  }
  *done = i;
  return m;
}

static void distances(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                      std::size_t code_size, dist_t* out) noexcept {
  std::size_t i = 0;
  with_step(query, code_size, [&](const auto& step) {
    for (; i + 16 <= n; i += 16) _mm512_storeu_si512(out + i, step_distances(step, codes + i * code_size));
  });
  portable_distances_with(AnyQuery(query, code_size), codes + i * code_size, n - i, code_size, out + i);
}

static std::size_t filter(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                          std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                          dist_t* dists) noexcept {
  std::size_t m = 0, i = 0;
  with_step(query, code_size,
            [&](const auto& step) { m = filter_steps(step, codes, n, max_distance, positions, dists, &i); });
  const std::size_t rest = portable_filter_with(AnyQuery(query, code_size), codes + i * code_size, n - i, code_size,
                                                max_distance, positions + m, dists + m);
  for (std::size_t j = m; j < m + rest; ++j) positions[j] += static_cast<std::uint32_t>(i);
  return m + rest;
}

// ---- Prepared layout: groups of 16 codes interleaved 32-bit word by word -------------------------
//
// A code of cs bytes is W = ceil(cs / 4) words (zero-padded). A group holds word 0 of its 16 codes
// (64 bytes), then word 1, and so on: one register per word and 16 codes, so a query costs one
// VPXORD (with the query word broadcast), one VPOPCNTD and one VPADDD per word and 16 codes, with
// no lane sums at all. The last group of a block is padded with zero codes, masked off by the
// filter.
//
// Building a group is a transpose done in registers: the 16 codes are loaded as rows of a power of
// two M of words (codes of 9..32 bytes: several per register, moved into 16- or 32-byte slots by
// VPERMB as in the plain kernel; larger codes: one row of 64 bytes per register and chunk), then
// log2(M) rounds of VPERMT2D split even from odd words, which leaves word w of all 16 rows in one
// register, rows in order. Only the W words a code has are stored.
static std::size_t prepared_words(std::size_t code_size) noexcept { return (code_size + 3) / 4; }

static std::size_t prepared_bytes(std::size_t code_size) noexcept {
  return code_size > 4 && code_size <= 128 ? 4 * prepared_words(code_size) : 0;
}

// Where deinterleave_words<M> leaves word w, and which word register w holds (the same map).
static constexpr std::size_t word_register(std::size_t w, std::size_t M) noexcept {
  std::size_t p = 0;
  for (std::size_t bit = 1; bit < M; bit <<= 1) p = (p << 1) | ((w & bit) ? 1 : 0);
  return p;
}

// r[0..M) hold 16 rows of M words, row after row (word w of row i is dword M * i + w of the
// concatenation). Afterwards r[p] holds word bit_reverse(p) of every row, row i in lane i.
template <std::size_t M>
static inline void deinterleave_words(__m512i (&r)[M]) noexcept {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
#pragma GCC unroll 8
  for (std::size_t part = M; part > 1; part /= 2) {  // each part of `part` registers splits in two
    __m512i t[M];
#pragma GCC unroll 16
    for (std::size_t base = 0; base < M; base += part)
#pragma GCC unroll 16
      for (std::size_t j = 0; j < part / 2; ++j) {
        t[base + j] = _mm512_permutex2var_epi32(r[base + 2 * j], even, r[base + 2 * j + 1]);
        t[base + part / 2 + j] = _mm512_permutex2var_epi32(r[base + 2 * j], odd, r[base + 2 * j + 1]);
      }
#pragma GCC unroll 16
    for (std::size_t j = 0; j < M; ++j) r[j] = t[j];
  }
}

// Stores the first `words` words left by deinterleave_words<M> at p (word w at p + 64 w).
template <std::size_t M>
static inline void store_words(const __m512i (&r)[M], std::size_t first, std::size_t words, std::uint8_t* p) noexcept {
#pragma GCC unroll 16
  for (std::size_t reg = 0; reg < M; ++reg) {  // constant register indices keep r in registers
    const std::size_t w = first + word_register(reg, M);
    if (w < words) _mm512_storeu_si512(p + 64 * w, r[reg]);
  }
}

// Codes of 9..32 bytes: rows of P = 16 or 32 bytes, 64 / P rows per register.
template <std::size_t P>
static void prepare_slots(const std::uint8_t* codes, std::size_t n, std::size_t cs, std::uint8_t* out) noexcept {
  constexpr std::size_t M = P / 4, per_reg = 64 / P;
  const std::size_t words = prepared_words(cs), total = n * cs;
  const SlotTable& table = slot_table(cs);  // slot_bytes(cs) == P here
  const __m512i expand = _mm512_load_si512(table.expand);
  const __mmask64 keep = table.keep;
  const __mmask64 full = first_bytes(per_reg * cs);
  for (std::size_t g = 0; 16 * g < n; ++g) {
    const std::uint8_t* base = codes + 16 * g * cs;
    const bool whole = 16 * (g + 1) <= n;
    __m512i r[M];
#pragma GCC unroll 8
    for (std::size_t j = 0; j < M; ++j) {
      __mmask64 load = full;
      if (!whole) {  // the last, partial group: only the bytes of its codes
        const std::size_t at = (16 * g + per_reg * j) * cs;
        load = first_bytes(at < total ? std::min(per_reg * cs, total - at) : 0);
      }
      const __m512i x = _mm512_maskz_loadu_epi8(load, base + per_reg * j * cs);
      r[j] = cs == P ? x : _mm512_maskz_permutexvar_epi8(keep, expand, x);
    }
    deinterleave_words(r);
    store_words(r, 0, words, out + 64 * words * g);
  }
}

// Codes of 33..128 bytes: per 64-byte chunk, one row per register (loaded under the code's mask).
static void prepare_rows(const std::uint8_t* codes, std::size_t n, std::size_t cs, std::uint8_t* out) noexcept {
  const std::size_t words = prepared_words(cs);
  for (std::size_t g = 0; 16 * g < n; ++g) {
    const std::size_t rows = std::min<std::size_t>(16, n - 16 * g);
    std::uint8_t* p = out + 64 * words * g;
    for (std::size_t chunk = 0; 64 * chunk < cs; ++chunk) {
      const __mmask64 load = first_bytes(std::min<std::size_t>(64, cs - 64 * chunk));
      __m512i r[16];
#pragma GCC unroll 16
      for (std::size_t i = 0; i < 16; ++i)
        r[i] = _mm512_maskz_loadu_epi8(i < rows ? load : 0, codes + (16 * g + std::min(i, rows - 1)) * cs + 64 * chunk);
      deinterleave_words(r);
      store_words(r, 16 * chunk, words, p);
    }
  }
}

static void prepare(const std::uint8_t* codes, std::size_t n, std::size_t code_size, std::uint8_t* out) noexcept {
  if (code_size <= 8) return prepare_slots<8>(codes, n, code_size, out);
  if (code_size <= 16) return prepare_slots<16>(codes, n, code_size, out);
  if (code_size <= 32) return prepare_slots<32>(codes, n, code_size, out);
  return prepare_rows(codes, n, code_size, out);
}

// The query's words broadcast once (W of them, held in registers as far as they go), then one
// pass over the groups with the word loop unrolled.
template <std::size_t W>
static std::size_t filter_prepared_words(const std::uint8_t* query, const std::uint8_t* prepared, std::size_t n,
                                         std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                                         dist_t* dists) noexcept {
  // The first 16 broadcast query words stay in registers; beyond, each use broadcasts its word
  // from memory, which costs less than spilling.
  constexpr std::size_t R = W <= 16 ? W : 16;
  std::uint32_t qw[W] = {};
  std::memcpy(qw, query, code_size);
  __m512i q[R];
  for (std::size_t w = 0; w < R; ++w) q[w] = _mm512_set1_epi32(static_cast<int>(qw[w]));
  const __m512i limit = _mm512_set1_epi32(max_distance);
  const auto group = [&](std::size_t i) {  // the 16 distances of the group starting at code i
    const std::uint8_t* p = prepared + 4 * W * i;
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 32
    for (std::size_t w = 0; w < W; ++w) {
      __m512i qv;
      if (w < R) {
        qv = q[w < R ? w : 0];
      } else {
        __asm__("vpbroadcastd %1, %0" : "=v"(qv) : "m"(qw[w]));  // kept inside the loop
      }
      acc = _mm512_add_epi32(acc, _mm512_popcnt_epi32(_mm512_xor_si512(_mm512_loadu_si512(p + 64 * w), qv)));
    }
    return acc;
  };
  // Short codes test the masks of U groups at once: one branch per 16 U codes.
  constexpr std::size_t U = W <= 2 ? 4 : W <= 6 ? 2 : 1;
  std::size_t m = 0, i = 0;
  for (; i + 16 * U <= n; i += 16 * U) {
    __m512i d[U];
    __mmask16 k[U];
    unsigned any = 0;
#pragma GCC unroll 4
    for (std::size_t u = 0; u < U; ++u) {
      d[u] = group(i + 16 * u);
      k[u] = _mm512_cmple_epi32_mask(d[u], limit);
      any |= k[u];
    }
    if (any == 0) continue;
    for (std::size_t u = 0; u < U; ++u)
      if (k[u]) m = compress_hits(k[u], d[u], i + 16 * u, positions, dists, m);
  }
  for (; i < n; i += 16) {
    const __m512i d = group(i);
    __mmask16 k = _mm512_cmple_epi32_mask(d, limit);
    if (k == 0) continue;
    if (i + 16 <= n) {
      m = compress_hits(k, d, i, positions, dists, m);
    } else {  // the last group: its padding lanes masked off, a partial store
      k &= static_cast<__mmask16>((1u << (n - i)) - 1);
      m = compress_hits<false>(k, d, i, positions, dists, m);
    }
  }
  return m;
}

template <std::size_t... W>
static std::size_t filter_prepared_any(std::index_sequence<W...>, const std::uint8_t* query,
                                       const std::uint8_t* prepared, std::size_t n, std::size_t code_size,
                                       dist_t max_distance, std::uint32_t* positions, dist_t* dists) noexcept {
  using Fn = std::size_t (*)(const std::uint8_t*, const std::uint8_t*, std::size_t, std::size_t, dist_t,
                             std::uint32_t*, dist_t*) noexcept;
  static constexpr Fn table[] = {&filter_prepared_words<W + 1>...};
  return table[prepared_words(code_size) - 1](query, prepared, n, code_size, max_distance, positions, dists);
}

static std::size_t filter_prepared(const std::uint8_t* query, const std::uint8_t* prepared, std::size_t n,
                                   std::size_t code_size, dist_t max_distance, std::uint32_t* positions,
                                   dist_t* dists) noexcept {
  // prepared_bytes() is 0 above 128 bytes (32 words): never called there.
  return filter_prepared_any(std::make_index_sequence<32>{}, query, prepared, n, code_size, max_distance,
                             positions, dists);
}

}  // namespace avx512_impl

const KernelTable& avx512_table() noexcept {
  static const KernelTable table{SimdLevel::AVX512,           &avx512_impl::distances,
                                 &avx512_impl::filter,        &avx512_impl::portable_gather, &avx512_impl::portable_gather_new,
                                 &avx512_impl::prepared_bytes, &avx512_impl::prepare,
                                 &avx512_impl::filter_prepared, &sigmoid_softplus_avx2,
                                 &contrastive_pass_avx2,        SimdLevel::AVX2,
                                 &rank_chunk_avx512,            &rank_prepare_avx512,
                                 &rank_distances_avx512,        &rank_bytes_avx512,
                                 nullptr,                       nullptr};
  return table;
}

}  // namespace deephash::kernels
