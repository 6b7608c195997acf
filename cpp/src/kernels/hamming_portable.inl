// Portable Hamming kernels, written with 64-bit popcount builtins.
//
// This file has no namespace of its own: each ISA translation unit includes it inside its own
// namespace, so the same templates are compiled once per instruction set (with that file's
// flags: the baseline has no POPCNT instruction, the AVX2 and AVX-512 files have it) and no
// symbol compiled with wider flags can leak into the baseline code.
//
// Needs: <cstring>, <cstdint>, <cstddef> and deephash/simd.hpp included first.

static inline std::uint64_t load_u64(const std::uint8_t* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

static inline std::uint64_t load_tail(const std::uint8_t* p, std::size_t nbytes) noexcept {
  std::uint64_t v = 0;
  std::memcpy(&v, p, nbytes);
  return v;
}

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

// Any code size: whole 64-bit words, then a tail of 1..7 bytes.
struct GenericQuery {
  const std::uint8_t* q;
  std::size_t nwords, tail;
  GenericQuery(const std::uint8_t* query, std::size_t code_size) noexcept
      : q(query), nwords(code_size / 8), tail(code_size % 8) {}
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
    if (tail) d += __builtin_popcountll(load_tail(q + 8 * nwords, tail) ^ load_tail(code + 8 * nwords, tail));
    return d;
  }
};

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

static void portable_distances(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                               std::size_t code_size, dist_t* out) noexcept {
  switch (code_size) {
    case 8: return portable_distances_with(FixedQuery<1>(query), codes, n, 8, out);
    case 16: return portable_distances_with(FixedQuery<2>(query), codes, n, 16, out);
    case 32: return portable_distances_with(FixedQuery<4>(query), codes, n, 32, out);
    case 64: return portable_distances_with(FixedQuery<8>(query), codes, n, 64, out);
    case 128: return portable_distances_with(FixedQuery<16>(query), codes, n, 128, out);
    default: return portable_distances_with(GenericQuery(query, code_size), codes, n, code_size, out);
  }
}

static std::size_t portable_filter(const std::uint8_t* query, const std::uint8_t* codes, std::size_t n,
                                   std::size_t code_size, dist_t max_distance,
                                   std::uint32_t* positions, dist_t* distances) noexcept {
  switch (code_size) {
    case 8: return portable_filter_with(FixedQuery<1>(query), codes, n, 8, max_distance, positions, distances);
    case 16: return portable_filter_with(FixedQuery<2>(query), codes, n, 16, max_distance, positions, distances);
    case 32: return portable_filter_with(FixedQuery<4>(query), codes, n, 32, max_distance, positions, distances);
    case 64: return portable_filter_with(FixedQuery<8>(query), codes, n, 64, max_distance, positions, distances);
    case 128: return portable_filter_with(FixedQuery<16>(query), codes, n, 128, max_distance, positions, distances);
    default:
      return portable_filter_with(GenericQuery(query, code_size), codes, n, code_size, max_distance,
                                  positions, distances);
  }
}

template <class Query>
static void portable_gather_with(const Query& query, const std::uint8_t* codes, const std::uint32_t* positions,
                                 std::size_t n, std::size_t code_size, dist_t* out) noexcept {
  constexpr std::size_t kAhead = 64;
  for (std::size_t i = 0; i < n && i < kAhead; ++i) __builtin_prefetch(codes + positions[i] * code_size);
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(codes + positions[i + kAhead] * code_size);
    out[i] = query(codes + static_cast<std::size_t>(positions[i]) * code_size);
  }
}

static void portable_gather(const std::uint8_t* query, const std::uint8_t* codes, const std::uint32_t* positions,
                            std::size_t n, std::size_t code_size, dist_t* out) noexcept {
  switch (code_size) {
    case 8: return portable_gather_with(FixedQuery<1>(query), codes, positions, n, 8, out);
    case 16: return portable_gather_with(FixedQuery<2>(query), codes, positions, n, 16, out);
    case 32: return portable_gather_with(FixedQuery<4>(query), codes, positions, n, 32, out);
    case 64: return portable_gather_with(FixedQuery<8>(query), codes, positions, n, 64, out);
    default: return portable_gather_with(GenericQuery(query, code_size), codes, positions, n, code_size, out);
  }
}
