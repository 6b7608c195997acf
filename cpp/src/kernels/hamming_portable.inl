// Portable Hamming kernels, written with 64-bit popcount builtins.
//
// This file has no namespace of its own: each ISA translation unit includes it inside its own
// namespace, so the same templates are compiled once per instruction set (with that file's
// flags: the baseline has no POPCNT instruction, the AVX2 and AVX-512 files have it) and no
// symbol compiled with wider flags can leak into the baseline code.
//
// Every code size has a loop without byte-wise copies: sizes of 1 to 7 bytes load exactly their
// bytes with constant-size loads (one or two plain loads each), other sizes load whole 64-bit
// words and take the last 1..7 bytes from an 8-byte load that ends at the code's last byte
// (overlapping the previous word, whose bytes are shifted out). Nothing is read outside a code.
//
// Needs: <cstring>, <cstdint>, <cstddef> and deephash/simd.hpp included first.

static inline std::uint64_t load_u64(const std::uint8_t* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// Exactly N <= 8 bytes into the low bytes of a word (constant N: plain loads, no copy loop).
template <std::size_t N>
static inline std::uint64_t load_bytes(const std::uint8_t* p) noexcept {
  std::uint64_t v = 0;
  std::memcpy(&v, p, N);
  return v;
}

// The last `tail` (1..7) bytes of a code of size >= 8 ending at p + tail, from the 8 bytes that
// end there: the bytes before them (already counted in whole words) are shifted out.
static inline std::uint64_t load_last(const std::uint8_t* p, std::size_t tail) noexcept {
  return load_u64(p + tail - 8) >> (8 * (8 - tail));
}

// Codes of N = 1..7 bytes.
template <std::size_t N>
struct SmallQuery {
  std::uint64_t q;
  explicit SmallQuery(const std::uint8_t* query) noexcept : q(load_bytes<N>(query)) {}
  dist_t operator()(const std::uint8_t* code) const noexcept {
    return __builtin_popcountll(q ^ load_bytes<N>(code));
  }
};

// A query of W 64-bit words held in locals (registers) for the whole scan.
template <std::size_t W>
struct FixedQuery {
  std::uint64_t q[W];
  explicit FixedQuery(const std::uint8_t* query) noexcept {
    for (std::size_t w = 0; w < W; ++w) q[w] = load_u64(query + 8 * w);
  }
  dist_t operator()(const std::uint8_t* code) const noexcept {
    int d = 0;
    for (std::size_t w = 0; w < W; ++w) d += __builtin_popcountll(q[w] ^ load_u64(code + 8 * w));
    return d;
  }
};

// Any code size of at least 8 bytes: whole 64-bit words, then the last 1..7 bytes by load_last.
// (Smaller sizes are served by SmallQuery; with_query() below routes every size.)
struct GenericQuery {
  const std::uint8_t* q;
  std::size_t nwords, tail;
  std::uint64_t q_last;
  GenericQuery(const std::uint8_t* query, std::size_t code_size) noexcept
      : q(query), nwords(code_size / 8), tail(code_size % 8),
        q_last(tail ? load_last(query + 8 * (code_size / 8), code_size % 8) : 0) {}
  dist_t operator()(const std::uint8_t* code) const noexcept {
    int d = 0;
    std::size_t w = 0;
    for (; w + 4 <= nwords; w += 4) {
      d += __builtin_popcountll(load_u64(q + 8 * w) ^ load_u64(code + 8 * w));
      d += __builtin_popcountll(load_u64(q + 8 * w + 8) ^ load_u64(code + 8 * w + 8));
      d += __builtin_popcountll(load_u64(q + 8 * w + 16) ^ load_u64(code + 8 * w + 16));
      d += __builtin_popcountll(load_u64(q + 8 * w + 24) ^ load_u64(code + 8 * w + 24));
    }
    for (; w < nwords; ++w) d += __builtin_popcountll(load_u64(q + 8 * w) ^ load_u64(code + 8 * w));
    if (tail) d += __builtin_popcountll(q_last ^ load_last(code + 8 * nwords, tail));
    return d;
  }
};

// Calls visit(query_functor) with the fastest portable functor for this code size.
template <class Visit>
static inline void with_query(const std::uint8_t* query, std::size_t code_size, Visit&& visit) noexcept {
  switch (code_size) {
    case 1: return visit(SmallQuery<1>(query));
    case 2: return visit(SmallQuery<2>(query));
    case 3: return visit(SmallQuery<3>(query));
    case 4: return visit(SmallQuery<4>(query));
    case 5: return visit(SmallQuery<5>(query));
    case 6: return visit(SmallQuery<6>(query));
    case 7: return visit(SmallQuery<7>(query));
    case 8: return visit(FixedQuery<1>(query));
    case 16: return visit(FixedQuery<2>(query));
    case 24: return visit(FixedQuery<3>(query));
    case 32: return visit(FixedQuery<4>(query));
    case 64: return visit(FixedQuery<8>(query));
    case 128: return visit(FixedQuery<16>(query));
    default: return visit(GenericQuery(query, code_size));
  }
}

template <class Query>
static void portable_distances_with(const Query& query, const std::uint8_t* codes, std::size_t n,
                                    std::size_t code_size, dist_t* out) noexcept {
  for (std::size_t i = 0; i < n; ++i) out[i] = query(codes + i * code_size);
}

// Branch-free compaction: always write, advance only on a hit.
template <class Query>
static std::size_t portable_filter_with(const Query& query, const std::uint8_t* codes, std::size_t n,
                                        std::size_t code_size, dist_t max_distance,
                                        std::uint32_t* positions, dist_t* distances) noexcept {
  std::size_t m = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const dist_t d = query(codes + i * code_size);
    positions[m] = static_cast<std::uint32_t>(i);
    distances[m] = d;
    m += (d <= max_distance);
  }
  return m;
}

// Scattered codes are prefetched this many positions ahead, into L2 (not L1, whose few miss
// buffers would drop most of them): a random code is a DRAM access, and at the loop's pace only a
// long lead keeps enough of them in flight (measured on 10M 64-bit codes: 64 ahead into L1 gave
// half the throughput of 192 ahead into L2).
constexpr std::size_t kGatherAhead = 192;

static inline void prefetch_code(const std::uint8_t* codes, std::uint32_t position, std::size_t code_size) noexcept {
  __builtin_prefetch(codes + static_cast<std::size_t>(position) * code_size, 0, 2);
}

template <class Query>
static void portable_gather_with(const Query& query, const std::uint8_t* codes, const std::uint32_t* positions,
                                 std::size_t n, std::size_t code_size, dist_t* out) noexcept {
  for (std::size_t i = 0; i < n && i < kGatherAhead; ++i) prefetch_code(codes, positions[i], code_size);
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kGatherAhead < n) prefetch_code(codes, positions[i + kGatherAhead], code_size);
    out[i] = query(codes + static_cast<std::size_t>(positions[i]) * code_size);
  }
}

// The word a substring test reads (see SubstringTest).
static inline std::uint64_t test_word(const std::uint8_t* code, std::size_t code_size, std::uint32_t offset) noexcept {
  if (code_size >= 8) return load_u64(code + offset);
  std::uint64_t v = 0;
  std::memcpy(&v, code, code_size);
  return v;
}

template <class Query>
static std::size_t portable_gather_new_with(const Query& query, const std::uint8_t* codes,
                                            const std::uint32_t* positions, std::size_t n, std::size_t code_size,
                                            const SubstringTest* tests, std::size_t ntests,
                                            std::uint32_t* out_positions, dist_t* out_distances) noexcept {
  for (std::size_t i = 0; i < n && i < kGatherAhead; ++i) prefetch_code(codes, positions[i], code_size);
  std::size_t m = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kGatherAhead < n) prefetch_code(codes, positions[i + kGatherAhead], code_size);
    const std::uint32_t p = positions[i];
    const std::uint8_t* c = codes + static_cast<std::size_t>(p) * code_size;
    bool keep = true;
    for (std::size_t t = 0; t < ntests && keep; ++t) {
      const SubstringTest& test = tests[t];
      const std::uint64_t v = (test_word(c, code_size, test.offset) >> test.shift) & test.mask;
      keep = __builtin_popcountll(v ^ test.query_value) > test.max_distance;
    }
    if (!keep) continue;
    out_positions[m] = p;
    out_distances[m] = query(c);
    ++m;
  }
  return m;
}

static inline void portable_distances(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                               std::size_t code_size, dist_t* out) noexcept {
  with_query(query, code_size, [&](const auto& q) { portable_distances_with(q, codes, n, code_size, out); });
}

static inline std::size_t portable_filter(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                                   std::size_t code_size, dist_t max_distance,
                                   std::uint32_t* positions, dist_t* distances) noexcept {
  std::size_t m = 0;
  with_query(query, code_size, [&](const auto& q) {
    m = portable_filter_with(q, codes, n, code_size, max_distance, positions, distances);
  });
  return m;
}

static inline void portable_gather(const std::uint8_t* query, const std::uint8_t* codes, const std::uint32_t* positions,
                            std::size_t n, std::size_t code_size, dist_t* out) noexcept {
  with_query(query, code_size, [&](const auto& q) { portable_gather_with(q, codes, positions, n, code_size, out); });
}

static inline std::size_t portable_gather_new(const std::uint8_t* query, const std::uint8_t* codes,
                                              const std::uint32_t* positions, std::size_t n, std::size_t code_size,
                                              const SubstringTest* tests, std::size_t ntests,
                                              std::uint32_t* out_positions, dist_t* out_distances) noexcept {
  std::size_t m = 0;
  with_query(query, code_size, [&](const auto& q) {
    m = portable_gather_new_with(q, codes, positions, n, code_size, tests, ntests, out_positions, out_distances);
  });
  return m;
}

// The tail of a vectorised loop: codes [i, n) by the portable functor, positions offset by i.
static inline std::size_t portable_filter_from(std::size_t i, const std::uint8_t* query, const std::uint8_t* codes,
                                        std::size_t n, std::size_t code_size, dist_t max_distance,
                                        std::uint32_t* positions, dist_t* distances) noexcept {
  const std::size_t m = portable_filter(query, codes + i * code_size, n - i, code_size, max_distance,
                                        positions, distances);
  for (std::size_t j = 0; j < m; ++j) positions[j] += static_cast<std::uint32_t>(i);
  return m;
}
