// Fuzzes the scan and metrics kernels of every SIMD level this CPU runs against plain loops: the
// input chooses a code size (1-130 bytes), a database size, how far the codes lie from the query,
// the bound, misalignments and a seed for the bytes; every kernel of every level must give the
// oracle's answer exactly. Buffers are allocated at their exact sizes (the contracts' padding
// included, nothing more), so AddressSanitizer stops a kernel that reads or writes past them.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "deephash/simd.hpp"
#include "fuzz_common.hpp"
#include "oracle.hpp"

using namespace deephash;

namespace {

// Exactly `size` bytes starting `skew` bytes after an allocation's start: reads past the end
// reach a redzone.
struct Exact {
  std::unique_ptr<std::uint8_t[]> base;
  std::uint8_t* p;
  Exact(std::size_t size, std::size_t skew) : base(new std::uint8_t[skew + size]), p(base.get() + skew) {}
};

// `size` bytes (a multiple of 32) on a 32-byte boundary, as the metrics' prepared layouts need.
std::unique_ptr<std::uint8_t, decltype(&std::free)> aligned32(std::size_t size) {
  return {static_cast<std::uint8_t*>(std::aligned_alloc(32, size)), &std::free};
}

struct Rng {
  std::uint64_t s;
  std::uint32_t next() {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::uint32_t>(s >> 33);
  }
  std::size_t below(std::size_t bound) { return bound ? next() % bound : 0; }
};

struct Case {
  std::size_t cs, n;
  const std::uint8_t* query;
  const std::uint8_t* codes;
  std::vector<dist_t> d;  // the oracle's distances
};

void check_filters(const kernels::KernelTable& kt, const Case& c, dist_t bound, std::size_t skew) {
  std::vector<std::uint32_t> want_pos;
  for (std::size_t i = 0; i < c.n; ++i)
    if (c.d[i] <= bound) want_pos.push_back(static_cast<std::uint32_t>(i));
  const auto same = [&](std::size_t m, const std::uint32_t* pos, const dist_t* dist) {
    FUZZ_CHECK(m == want_pos.size());
    for (std::size_t j = 0; j < m; ++j) FUZZ_CHECK(pos[j] == want_pos[j] && dist[j] == c.d[pos[j]]);
  };
  std::vector<std::uint32_t> pos(c.n);
  std::vector<dist_t> dist(c.n);
  same(kt.filter(c.query, c.codes, c.n, c.cs, bound, pos.data(), dist.data()), pos.data(), dist.data());
  if (kt.filter_halves && kt.halves_for_size(c.cs)) {
    bool gave_up = false;
    same(kt.filter_halves(c.query, c.codes, c.n, c.cs, bound, pos.data(), dist.data(), &gave_up), pos.data(),
         dist.data());
  }
  const std::size_t per_code = kt.prepared_bytes ? kt.prepared_bytes(c.cs) : 0;
  if (per_code && c.n) {
    const std::size_t rounded = (c.n + kernels::kPreparedGroup - 1) / kernels::kPreparedGroup * kernels::kPreparedGroup;
    Exact prepared(rounded * per_code, skew);
    kt.prepare(c.codes, c.n, c.cs, prepared.p);
    same(kt.filter_prepared(c.query, prepared.p, c.n, c.cs, bound, pos.data(), dist.data()), pos.data(),
         dist.data());
  }
}

void check_gathers(const kernels::KernelTable& kt, const Case& c, Rng& rng) {
  if (c.n == 0) return;
  const std::size_t m = rng.below(2 * c.n + 1);
  Exact pos_bytes(m * sizeof(std::uint32_t), 0);
  auto* positions = reinterpret_cast<std::uint32_t*>(pos_bytes.p);
  for (std::size_t j = 0; j < m; ++j) positions[j] = rng.next() % c.n;
  std::vector<dist_t> got(m);
  kt.gather(c.query, c.codes, positions, m, c.cs, got.data());
  for (std::size_t j = 0; j < m; ++j) FUZZ_CHECK(got[j] == c.d[positions[j]]);

  // Multi-index hashing's substrings: the code cut into `parts` runs of at most 32 bits, one test each.
  const std::size_t nbits = 8 * c.cs;
  const std::size_t fewest = (nbits + 31) / 32;
  const std::size_t parts = fewest + rng.below(std::min<std::size_t>(nbits, 40) - fewest + 1);
  const dist_t max_distance = static_cast<dist_t>(rng.below(8)) - 1;
  std::vector<std::pair<std::size_t, std::size_t>> subs;
  std::vector<kernels::SubstringTest> tests;
  for (std::size_t j = 0, begin = 0; j < parts; ++j) {
    const std::size_t bits = nbits / parts + (j < nbits % parts ? 1 : 0);
    kernels::SubstringTest t{};
    t.offset = c.cs >= 8 ? static_cast<std::uint32_t>(std::min(begin / 8, c.cs - 8)) : 0;
    t.shift = static_cast<std::uint32_t>(begin - 8 * t.offset);
    t.mask = (std::uint64_t{1} << bits) - 1;
    t.query_value = oracle::substring(c.query, begin, bits);
    t.max_distance = max_distance;
    tests.push_back(t);
    subs.emplace_back(begin, bits);
    begin += bits;
  }
  std::vector<std::uint32_t> out(m);
  std::vector<dist_t> out_d(m);
  const std::size_t kept =
      kt.gather_new(c.query, c.codes, positions, m, c.cs, tests.data(), tests.size(), out.data(), out_d.data());
  std::size_t want = 0;
  for (std::size_t j = 0; j < m; ++j) {
    const std::uint8_t* code = c.codes + positions[j] * c.cs;
    bool keep = true;
    for (const auto& [begin, bits] : subs)
      keep &= __builtin_popcountll(oracle::substring(code, begin, bits) ^ oracle::substring(c.query, begin, bits)) >
              max_distance;
    if (!keep) continue;
    FUZZ_CHECK(want < kept && out[want] == positions[j] && out_d[want] == c.d[positions[j]]);
    ++want;
  }
  FUZZ_CHECK(kept == want);
}

// The metrics' passes (codes of up to kRankByteCodeSize bytes: every distance below kRankBins).
void check_ranking(const kernels::KernelTable& kt, const Case& c, Rng& rng, std::size_t skew) {
  if (c.cs > kernels::kRankByteCodeSize || (!kt.rank_chunk && !kt.rank_prepare)) return;
  const std::size_t n = c.n, padded = (n + 31) / 32 * 32;
  const bool by_keys = rng.below(2) == 1;
  const std::int32_t label = 1;
  const std::uint8_t key = 255;
  Exact ids_bytes(n * sizeof(std::int32_t), 0), keys(n, 0);
  auto* ids = reinterpret_cast<std::int32_t*>(ids_bytes.p);
  const std::uint32_t classes = 1 + static_cast<std::uint32_t>(rng.below(5));
  for (std::size_t i = 0; i < n; ++i) {
    ids[i] = static_cast<std::int32_t>(rng.next() % classes);
    keys.p[i] = static_cast<std::uint8_t>(rng.next() % classes + 254);
  }
  const auto run_pass = [&](auto pass, const auto* dist) {
    std::vector<std::uint32_t> seen(kernels::kRankHistograms * kernels::kRankBins);
    for (auto& s : seen) s = rng.next() % 3;
    std::vector<std::uint32_t> want_seen = oracle::histogram_sum(seen, kernels::kRankHistograms, kernels::kRankBins);
    const std::vector<std::uint64_t> want = oracle::rank_records(
        c.d.data(), n, [&](std::size_t i) { return by_keys ? keys.p[i] == key : ids[i] == label; }, want_seen);
    Exact rec_bytes((want.size() + 1) * sizeof(std::uint64_t), 0);
    auto* records = reinterpret_cast<std::uint64_t*>(rec_bytes.p);
    records[want.size()] = 7;
    const std::size_t got = pass(dist, n, 8 * c.cs, by_keys ? nullptr : ids, label, by_keys ? keys.p : nullptr, key,
                                 seen.data(), records);
    FUZZ_CHECK(got == want.size());
    for (std::size_t j = 0; j < got; ++j) FUZZ_CHECK(records[j] == want[j]);
    FUZZ_CHECK(records[got] == 7);
    FUZZ_CHECK(oracle::histogram_sum(seen, kernels::kRankHistograms, kernels::kRankBins) == want_seen);
  };
  if (kt.rank_chunk) {
    Exact dist_bytes(n * sizeof(dist_t), skew / 4 * 4);
    auto* dist = reinterpret_cast<dist_t*>(dist_bytes.p);
    std::copy(c.d.begin(), c.d.end(), dist);
    run_pass(kt.rank_chunk, static_cast<const dist_t*>(dist));
  }
  if (kt.rank_prepare && n) {
    const std::size_t size = kernels::rank_prepared_size(n, c.cs);
    const auto prepared = aligned32(size);
    kt.rank_prepare(c.codes, n, c.cs, prepared.get());
    // One part from a block boundary on, into a buffer that ends at the next multiple of 32.
    const std::size_t first = rng.below((n - 1) / 32 + 1) * 32, part = n - first;
    const auto out = aligned32((part + 31) / 32 * 32);
    kt.rank_distances(prepared.get() + kernels::rank_prepared_size(first, c.cs), part, c.cs, c.query, out.get());
    for (std::size_t i = 0; i < part; ++i) FUZZ_CHECK(out.get()[i] == c.d[first + i]);
    // The byte pass over the whole database's distances (read up to the next multiple of 32).
    Exact dist8(padded, 0);
    for (std::size_t i = 0; i < padded; ++i)
      dist8.p[i] = static_cast<std::uint8_t>(i < n ? c.d[i] : rng.next() % (8 * c.cs + 1));
    run_pass(kt.rank_bytes, static_cast<const std::uint8_t*>(dist8.p));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  Case c{};
  c.cs = in.ConsumeIntegralInRange<std::size_t>(1, 130);
  c.n = in.ConsumeIntegralInRange<std::size_t>(0, 300);
  const std::size_t skew = in.ConsumeIntegralInRange<std::size_t>(0, 63);
  const int spread = in.ConsumeIntegralInRange<int>(0, static_cast<int>(8 * c.cs));  // most flips from the query
  Rng rng{in.ConsumeIntegral<std::uint64_t>() | 1};
  Exact query(c.cs, in.ConsumeIntegralInRange<std::size_t>(0, 63));
  for (std::size_t b = 0; b < c.cs; ++b) query.p[b] = static_cast<std::uint8_t>(rng.next());
  Exact codes(c.n * c.cs, skew);
  for (std::size_t i = 0; i < c.n; ++i) {
    std::uint8_t* code = codes.p + i * c.cs;
    std::copy_n(query.p, c.cs, code);
    const int flips = spread ? static_cast<int>(rng.next() % (spread + 1)) : 0;
    for (int f = 0; f < flips; ++f) {
      const std::uint32_t bit = rng.next() % (8 * c.cs);
      code[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
    }
  }
  c.query = query.p;
  c.codes = codes.p;
  c.d.resize(c.n);
  for (std::size_t i = 0; i < c.n; ++i) c.d[i] = fuzz::hamming(c.query, c.codes + i * c.cs, c.cs);
  const dist_t bound = in.ConsumeIntegralInRange<dist_t>(-1, static_cast<dist_t>(8 * c.cs + 1));
  const std::uint64_t level_seed = in.ConsumeIntegral<std::uint64_t>() | 1;

  for (SimdLevel level : available_simd_levels()) {
    const kernels::KernelTable& kt = *kernels::table_for(level);
    // Each level draws the same positions, tests and labels.
    Rng level_rng{level_seed};
    std::vector<dist_t> got(c.n);
    kt.distances(c.query, c.codes, c.n, c.cs, got.data());
    FUZZ_CHECK(got == c.d);
    check_filters(kt, c, bound, skew);
    check_gathers(kt, c, level_rng);
    check_ranking(kt, c, level_rng, skew);
  }
  return 0;
}
