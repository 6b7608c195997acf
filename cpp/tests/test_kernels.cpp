// Every compiled-and-supported kernel level against the bit-loop oracle, for every code size
// from 1 to 130 bytes (all tail lengths) and database sizes around the unrolled steps.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "deephash/codes.hpp"
#include "deephash/simd.hpp"
#include "harness.hpp"
#include "oracle.hpp"

using namespace deephash;

// Whether a filter's answer (m hits: positions and distances) is exactly the oracle's: every code
// within `limit`, in increasing position, with its distance.
static bool filter_answer_is_exact(const std::vector<std::uint8_t>& q, const std::vector<std::uint8_t>& db, std::size_t n,
                                   std::size_t cs, dist_t limit, const std::vector<std::uint32_t>& pos,
                                   const std::vector<dist_t>& d, std::size_t m) {
  std::size_t expect = 0;
  bool ok = true;
  for (std::size_t i = 0; i < n; ++i) {
    const int h = oracle::hamming(q.data(), db.data() + i * cs, cs);
    if (h <= limit) {
      ok &= expect < m && pos[expect] == i && d[expect] == h;
      ++expect;
    }
  }
  return ok && expect == m;
}

static void check_level(SimdLevel level) {
  set_simd_level(simd_level_name(level));
  const kernels::KernelTable& kt = kernels::active();
  CHECK(kt.level == level);
  for (std::size_t cs = 1; cs <= 130; ++cs) {
    for (std::size_t n : {0, 1, 3, 4, 15, 16, 17, 33, 70}) {
      auto db = oracle::random_codes(n, cs, static_cast<std::uint32_t>(cs * 131 + n));
      auto q = oracle::random_codes(1, cs, static_cast<std::uint32_t>(cs + 7));
      if (n >= 15) std::copy(q.begin(), q.end(), db.begin() + 13 * cs);  // an exact copy: distance 0
      std::vector<dist_t> d(n + 1, -7);
      kt.distances(q.data(), db.data(), n, cs, d.data());
      bool ok = true;
      for (std::size_t i = 0; i < n; ++i) ok &= d[i] == oracle::hamming(q.data(), db.data() + i * cs, cs);
      CHECK(ok);
      CHECK_EQ(d[n], -7);  // nothing written past n
      // None pass, about half, all, and bounds wider than any count lane either way (kernels that
      // compare narrow lanes must cut them, not wrap them: 2^31 - 1 wrapped drops every code).
      for (dist_t limit : {dist_t{-2147483647 - 1}, dist_t{-1}, static_cast<dist_t>(cs * 4), static_cast<dist_t>(cs * 8),
                           dist_t{2147483647}}) {
        std::vector<std::uint32_t> pos(n + 1);
        std::vector<dist_t> fd(n + 1);
        const std::size_t m = kt.filter(q.data(), db.data(), n, cs, limit, pos.data(), fd.data());
        CHECK(filter_answer_is_exact(q, db, n, cs, limit, pos, fd, m));
      }
    }
  }
}

TEST(every_available_level_matches_the_oracle) {
  for (SimdLevel level : available_simd_levels()) check_level(level);
  set_simd_level("auto");
}

// The prepared-block path, where a level has one: same answers as the plain filter and the oracle,
// at several bounds (none, some, all codes pass) and around the unrolled step.
TEST(prepared_filter_matches_the_oracle) {
  for (SimdLevel level : available_simd_levels()) {
    std::size_t sizes_checked = 0;
    set_simd_level(simd_level_name(level));
    const kernels::KernelTable& kt = kernels::active();
    if (!kt.prepared_bytes) continue;
    for (std::size_t cs = 1; cs <= 130; ++cs) {
      const std::size_t per_code = kt.prepared_bytes(cs);
      if (per_code == 0) continue;
      CHECK(per_code >= cs);
      ++sizes_checked;
      for (std::size_t n : {1, 3, 15, 16, 17, 33, 70, 256, 257, 700}) {
        auto db = oracle::random_codes(n, cs, static_cast<std::uint32_t>(cs * 17 + n));
        auto q = oracle::random_codes(1, cs, static_cast<std::uint32_t>(cs + 11));
        if (n >= 15) std::copy(q.begin(), q.end(), db.begin() + 13 * cs);  // an exact copy: distance 0
        const std::size_t rounded = (n + kernels::kPreparedGroup - 1) / kernels::kPreparedGroup * kernels::kPreparedGroup;
        std::vector<std::uint8_t> prepared(rounded * per_code + 1, 0xA5);
        kt.prepare(db.data(), n, cs, prepared.data());
        CHECK_EQ(prepared[rounded * per_code], 0xA5);  // nothing written past the last group
        for (dist_t limit : {dist_t{-1}, dist_t{0}, static_cast<dist_t>(cs * 4 - 6), static_cast<dist_t>(cs * 4),
                             static_cast<dist_t>(cs * 8), dist_t{2147483647}}) {
          std::vector<std::uint32_t> pos(n), plain_pos(n);
          std::vector<dist_t> d(n), plain_d(n);
          const std::size_t m = kt.filter_prepared(q.data(), prepared.data(), n, cs, limit, pos.data(), d.data());
          const std::size_t pm = kt.filter(q.data(), db.data(), n, cs, limit, plain_pos.data(), plain_d.data());
          CHECK(filter_answer_is_exact(q, db, n, cs, limit, pos, d, m));
          CHECK_EQ(pm, m);
        }
      }
    }
    // The sizes each level documents a prepared layout for: AVX2 5..128 bytes but 8 (the word
    // layout to 32, padded nibbles above), AVX-512 5..128.
    if (level == SimdLevel::AVX2) CHECK_EQ(sizes_checked, 123u);
    if (level == SimdLevel::AVX512) CHECK_EQ(sizes_checked, 124u);
  }
  set_simd_level("auto");
}

// The lower-bound-first filter, where a level has one: the oracle's answer at every bound, on
// codes near the query (few pass the half test: the bound path runs throughout) and on random
// ones (most pass: it gives up and finishes as filter() does), at every code size (sizes it does
// not serve must give up at once and still answer), and around the unrolled step.
TEST(halves_filter_matches_the_oracle) {
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(simd_level_name(level));
    const kernels::KernelTable& kt = kernels::active();
    if (level == SimdLevel::AVX2) CHECK(kt.filter_halves != nullptr);  // the level that has one
    if (!kt.filter_halves) continue;
    std::size_t kept_going = 0;
    for (std::size_t cs = 1; cs <= 66; ++cs) {
      for (std::size_t n : {1, 15, 16, 17, 255, 256, 257, 700}) {
        for (bool near : {true, false}) {
          auto db = oracle::random_codes(n, cs, static_cast<std::uint32_t>(cs * 29 + n));
          const auto q = oracle::random_codes(1, cs, static_cast<std::uint32_t>(cs + 5));
          if (near) {
            // Codes near the query: one in 16 at distance 1, every 50th random (far), the others
            // with 3 to 6 bits flipped in each half (at bounds up to 2 few pass the half test).
            for (std::size_t i = 0; i < n; ++i) {
              if (i % 50 == 49) continue;
              std::uint8_t* c = db.data() + i * cs;
              std::copy(q.begin(), q.end(), c);
              if (i % 16 == 5) {
                c[i % cs] ^= static_cast<std::uint8_t>(1u << (i % 8));
                continue;
              }
              const std::size_t half = std::max<std::size_t>(1, cs / 2);
              for (std::size_t h = 0; h < 2 && h * half < cs; ++h)
                for (std::size_t f = 0; f < 3 + i % 4; ++f)
                  c[std::min(cs - 1, h * half + (f * 3 + i) % half)] ^= static_cast<std::uint8_t>(1u << ((i + f) % 8));
            }
          }
          for (dist_t limit : {dist_t{-1}, dist_t{0}, dist_t{2}, static_cast<dist_t>(cs * 2), static_cast<dist_t>(cs * 4),
                               static_cast<dist_t>(cs * 8)}) {
            std::vector<std::uint32_t> pos(n + 1, 77);
            std::vector<dist_t> d(n + 1, -7);
            bool gave_up = false;
            const std::size_t m = kt.filter_halves(q.data(), db.data(), n, cs, limit, pos.data(), d.data(), &gave_up);
            CHECK(filter_answer_is_exact(q, db, n, cs, limit, pos, d, m));
            if (!kt.halves_for_size(cs)) CHECK(gave_up);
            if (kt.halves_for_size(cs) && near && limit <= 2 && n >= 256) {
              CHECK(!gave_up);
              ++kept_going;
            }
          }
        }
      }
    }
    CHECK(kept_going > 0);  // the bound path itself was checked, not only the fallback
  }
  set_simd_level("auto");
}

// Bytes placed right against an inaccessible page: any read past the end (or before the start)
// of the array faults, so a kernel that loads whole vectors beyond a code crashes this test.
class GuardedBytes {
 public:
  GuardedBytes(const std::vector<std::uint8_t>& bytes, bool at_end) {
    page_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    body_ = (bytes.size() + page_ - 1) / page_ * page_ + page_;
    total_ = body_ + 2 * page_;
    base_ = static_cast<std::uint8_t*>(mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    mprotect(base_, page_, PROT_NONE);
    mprotect(base_ + page_ + body_, page_, PROT_NONE);
    data_ = at_end ? base_ + page_ + body_ - bytes.size() : base_ + page_;
    if (!bytes.empty()) std::memcpy(data_, bytes.data(), bytes.size());
  }
  ~GuardedBytes() { munmap(base_, total_); }
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  const std::uint8_t* data() const { return data_; }

 private:
  std::size_t page_, body_, total_;
  std::uint8_t *base_, *data_;
};

TEST(kernels_never_read_outside_the_codes_or_the_query) {
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(simd_level_name(level));
    const kernels::KernelTable& kt = kernels::active();
    for (std::size_t cs = 1; cs <= 136; ++cs) {
      for (std::size_t n : {1, 5, 16, 17, 31, 33, 64, 100}) {
        const auto host = oracle::random_codes(n, cs, static_cast<std::uint32_t>(cs * 7 + n));
        const auto qhost = oracle::random_codes(1, cs, static_cast<std::uint32_t>(cs * 3 + n));
        for (bool at_end : {true, false}) {
          const GuardedBytes db(host, at_end), q(qhost, at_end);
          std::vector<dist_t> d(n);
          std::vector<std::uint32_t> pos(n), all(n);
          kt.distances(q.data(), db.data(), n, cs, d.data());
          bool ok = true;
          for (std::size_t i = 0; i < n; ++i) ok &= d[i] == oracle::hamming(qhost.data(), host.data() + i * cs, cs);
          CHECK(ok);
          CHECK_EQ(kt.filter(q.data(), db.data(), n, cs, static_cast<dist_t>(8 * cs), pos.data(), d.data()), n);
          for (std::size_t i = 0; i < n; ++i) all[i] = static_cast<std::uint32_t>(n - 1 - i);
          kt.gather(q.data(), db.data(), all.data(), n, cs, d.data());
          for (std::size_t i = 0; i < n; ++i) ok &= d[i] == oracle::hamming(qhost.data(), host.data() + (n - 1 - i) * cs, cs);
          CHECK(ok);
          if (kt.filter_halves) {  // bound 0: the half test lets through nothing of random codes
            bool gave_up = false;
            std::size_t m = kt.filter_halves(q.data(), db.data(), n, cs, 0, pos.data(), d.data(), &gave_up);
            CHECK(m <= n);
            m = kt.filter_halves(q.data(), db.data(), n, cs, static_cast<dist_t>(8 * cs), pos.data(), d.data(), &gave_up);
            CHECK_EQ(m, n);
          }
          const std::size_t per_code = kt.prepared_bytes ? kt.prepared_bytes(cs) : 0;
          if (per_code) {
            std::vector<std::uint8_t> prepared((n + kernels::kPreparedGroup) * per_code);
            kt.prepare(db.data(), n, cs, prepared.data());
            CHECK_EQ(kt.filter_prepared(q.data(), prepared.data(), n, cs, static_cast<dist_t>(8 * cs), pos.data(),
                                        d.data()), n);
          }
        }
      }
    }
  }
  set_simd_level("auto");
}

// Bits [begin, begin + bits) of a code, LSB first, by plain bit loops.
TEST(gather_new_keeps_exactly_the_codes_that_pass_every_substring_test) {
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(simd_level_name(level));
    const kernels::KernelTable& kt = kernels::active();
    for (std::size_t cs : {1, 3, 7, 8, 9, 16, 24, 32, 64, 128}) {
      const std::size_t n = 300, nbits = 8 * cs;
      // Low-alphabet codes so that many substrings are close to the query's.
      const auto db = oracle::random_codes(n, cs, static_cast<std::uint32_t>(cs * 5), 4);
      const auto q = oracle::random_codes(1, cs, static_cast<std::uint32_t>(cs * 9), 4);
      // Substrings of up to 32 bits anywhere in the code, as multi-index hashing makes them.
      std::vector<std::pair<std::size_t, std::size_t>> subs;  // (begin, bits)
      const std::size_t m = (nbits + 31) / 32 + 1;
      for (std::size_t j = 0, begin = 0; j < m; ++j) {
        const std::size_t bits = nbits / m + (j < nbits % m ? 1 : 0);
        subs.emplace_back(begin, bits);
        begin += bits;
      }
      for (int max_distance : {-1, 0, 2, 5}) {
        std::vector<kernels::SubstringTest> tests;
        for (const auto& [begin, bits] : subs) {
          if (bits == 0) continue;
          kernels::SubstringTest t{};
          t.offset = cs >= 8 ? static_cast<std::uint32_t>(std::min(begin / 8, cs - 8)) : 0;
          t.shift = static_cast<std::uint32_t>(begin - 8 * t.offset);
          t.mask = bits == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << bits) - 1;
          t.query_value = oracle::substring(q.data(), begin, bits);
          t.max_distance = max_distance;
          tests.push_back(t);
        }
        std::vector<std::uint32_t> positions(n), out(n);
        for (std::size_t i = 0; i < n; ++i) positions[i] = static_cast<std::uint32_t>((i * 37) % n);
        std::vector<dist_t> d(n);
        const std::size_t kept = kt.gather_new(q.data(), db.data(), positions.data(), n, cs, tests.data(),
                                               tests.size(), out.data(), d.data());
        std::size_t expect = 0;
        bool ok = true;
        for (std::size_t i = 0; i < n; ++i) {
          const std::uint8_t* c = db.data() + positions[i] * cs;
          bool pass = true;
          for (const auto& [begin, bits] : subs) {
            if (bits == 0) continue;
            const int sd = __builtin_popcountll(oracle::substring(c, begin, bits) ^ oracle::substring(q.data(), begin, bits));
            pass &= sd > max_distance;
          }
          if (!pass) continue;
          ok &= expect < kept && out[expect] == positions[i] && d[expect] == oracle::hamming(q.data(), c, cs);
          ++expect;
        }
        CHECK(ok);
        CHECK_EQ(kept, expect);
        if (max_distance < 0) CHECK_EQ(kept, n);
      }
    }
  }
  set_simd_level("auto");
}

TEST(filter_bounds_are_inclusive_and_negative_rejects_all) {
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(simd_level_name(level));
    std::vector<std::uint8_t> db(32 * 8, 0);  // 32 codes of 8 bytes, code i has i bits set
    for (std::size_t i = 0; i < 32; ++i)
      for (std::size_t b = 0; b < i; ++b) db[i * 8 + b / 8] |= static_cast<std::uint8_t>(1u << (b % 8));
    std::vector<std::uint8_t> q(8, 0);
    std::vector<std::uint32_t> pos(32);
    std::vector<dist_t> d(32);
    CHECK_EQ(kernels::active().filter(q.data(), db.data(), 32, 8, 5, pos.data(), d.data()), 6u);
    CHECK_EQ(kernels::active().filter(q.data(), db.data(), 32, 8, -1, pos.data(), d.data()), 0u);
    CHECK_EQ(kernels::active().filter(q.data(), db.data(), 32, 8, 64, pos.data(), d.data()), 32u);
  }
  set_simd_level("auto");
}

TEST(set_simd_level_rejects_unknown_names) {
  CHECK_THROWS(set_simd_level("sse9"), InvalidArgument);
  CHECK(simd_level() == best_simd_level());
}

TEST(pack_and_unpack_round_trip) {
  std::vector<float> x = {0.5f, -1.f, 0.f, -0.f, 3.f, -2.f, -0.1f, 7.f,   // byte 0
                          -1.f, -1.f, -1.f, -1.f, -1.f, -1.f, -1.f, 1.f};  // byte 1
  std::vector<std::uint8_t> packed(2);
  pack_bits(x.data(), 1, 16, packed.data());
  // bits (LSB first): 1 0 1 1 1 0 0 1 -> 0b10011101 ; second byte only bit 7 set
  CHECK_EQ(int(packed[0]), 0x9D);
  CHECK_EQ(int(packed[1]), 0x80);
  std::vector<std::uint8_t> bits(16);
  unpack_bits(packed.data(), 1, 2, 16, bits.data());
  for (std::size_t j = 0; j < 16; ++j) CHECK_EQ(int(bits[j]), x[j] >= 0 ? 1 : 0);
  // 12 bits: two bytes, the padding bits 12..15 zero whatever the values past column 12
  pack_bits(x.data(), 1, 12, packed.data());
  CHECK_EQ(int(packed[0]), 0x9D);
  CHECK_EQ(int(packed[1]), 0x00);
  std::vector<float> twelve(x.begin(), x.begin() + 12);
  twelve[11] = 1.f;
  pack_bits(twelve.data(), 1, 12, packed.data());
  CHECK_EQ(int(packed[1]), 0x08);
  CHECK_EQ(find_padding_bits(packed.data(), 1, 12), 0u + 1);  // none set: returns n
  packed[1] |= 0x10;
  CHECK_EQ(find_padding_bits(packed.data(), 1, 12), 0u);
  CHECK_THROWS(check_padding_bits(packed.data(), 1, 12, "codes"), InvalidArgument);
  CHECK_THROWS(pack_bits(x.data(), 1, 0, packed.data()), InvalidArgument);
  std::vector<double> nan = {0, 0, 0, 0, 0, 0, 0, std::numeric_limits<double>::quiet_NaN()};
  CHECK_THROWS(pack_bits(nan.data(), 1, 8, packed.data()), InvalidArgument);
}

HARNESS_MAIN()

#if defined(__x86_64__)
// How many of AVX2 and AVX-512 this CPU runs.
static std::size_t x86_levels_run() {
  std::size_t c = 0;
  for (SimdLevel level : available_simd_levels()) c += level == SimdLevel::AVX2 || level == SimdLevel::AVX512;
  return c;
}
#endif

// The metrics' recording pass (RankChunkFn) of each level that has one, against a plain loop:
// every distance range (the AVX-512 pass counts short ranges by compares), chunk lengths around
// the 32- and 64-item blocks and longer than a pass takes at once (AVX2: 2,048), class ids as int32
// and keys as bytes, histograms that already hold counts on entry, and inputs placed against an
// inaccessible page so that no read past them passes.
// The byte pass (RankBytesFn) runs the same cases with the distances as bytes, the bytes past
// the items up to the next multiple of 32 set to distances that would count if read.
TEST(recording_pass_matches_a_plain_loop) {
  std::size_t levels_with_pass = 0;
  for (SimdLevel level : available_simd_levels()) {
    for (bool byte_pass : {false, true}) {
      set_simd_level(simd_level_name(level));
      const kernels::RankChunkFn pass = kernels::active().rank_chunk;
      const kernels::RankBytesFn pass8 = kernels::active().rank_bytes;
      if (byte_pass ? pass8 == nullptr : pass == nullptr) continue;
      ++levels_with_pass;
      std::uint32_t seed = 11;
      auto next = [&seed] {
        seed = seed * 1664525u + 1013904223u;
        return seed >> 8;
      };
      for (std::size_t max_d : {1, 8, 16, 31, 32, 48, 64, 255}) {
        for (std::size_t len : {0, 1, 5, 31, 32, 33, 63, 64, 65, 127, 1000, 1024, 4500}) {
          for (bool byte_keys : {false, true}) {
            std::vector<dist_t> dist(len);
            std::vector<std::int32_t> ids(len);
            std::vector<std::uint8_t> keys(len);
            for (std::size_t i = 0; i < len; ++i) {
              // Half the items at one of three distances: long runs of one distance.
              dist[i] = static_cast<dist_t>(next() % 2 ? next() % (max_d + 1) : next() % std::min<std::size_t>(3, max_d + 1));
              ids[i] = static_cast<std::int32_t>(next() % 4) - 1;  // -1 .. 2
              keys[i] = static_cast<std::uint8_t>(next() % 4 + 254);  // 254, 255, 0, 1
            }
            const std::int32_t label = 1;
            const std::uint8_t key = 255;
            auto as_bytes = [](const void* p, std::size_t n) {
              const auto* b = static_cast<const std::uint8_t*>(p);
              return std::vector<std::uint8_t>(b, b + n);
            };
            std::vector<std::uint8_t> dist8((len + 31) / 32 * 32, 0);
            for (std::size_t i = 0; i < dist8.size(); ++i)
              dist8[i] = static_cast<std::uint8_t>(i < len ? dist[i] : next() % (max_d + 1));
            for (bool at_end : {true, false}) {
              const GuardedBytes gd(byte_pass ? dist8 : as_bytes(dist.data(), len * sizeof(dist_t)), at_end);
              const GuardedBytes gi(as_bytes(ids.data(), len * sizeof(std::int32_t)), at_end);
              const GuardedBytes gk(keys, at_end);
              std::vector<std::uint32_t> seen(kernels::kRankHistograms * kernels::kRankBins);
              for (std::size_t h = 0; h < seen.size(); ++h) seen[h] = static_cast<std::uint32_t>(next() % 5);
              std::vector<std::uint32_t> want_seen =
                  oracle::histogram_sum(seen, kernels::kRankHistograms, kernels::kRankBins);
              const std::vector<std::uint64_t> want = oracle::rank_records(
                  dist.data(), len, [&](std::size_t i) { return byte_keys ? keys[i] == key : ids[i] == label; },
                  want_seen);
              std::vector<std::uint64_t> got(len + 1, 7);
              const auto* gdist = reinterpret_cast<const dist_t*>(gd.data());
              const auto* gids = byte_keys ? nullptr : reinterpret_cast<const std::int32_t*>(gi.data());
              const std::uint8_t* gkeys = byte_keys ? gk.data() : nullptr;
              const std::size_t kept =
                  byte_pass ? pass8(gd.data(), len, max_d, gids, label, gkeys, key, seen.data(), got.data())
                            : pass(gdist, len, max_d, gids, label, gkeys, key, seen.data(), got.data());
              CHECK_EQ(kept, want.size());
              bool ok = kept == want.size();
              for (std::size_t j = 0; ok && j < kept; ++j) ok &= got[j] == want[j];
              CHECK(ok);
              CHECK_EQ(got[kept], 7u);  // nothing written past the records
              CHECK(oracle::histogram_sum(seen, kernels::kRankHistograms, kernels::kRankBins) == want_seen);
            }
          }
        }
      }
    }
  }
#if defined(__x86_64__)
  // AVX2 and AVX-512 each have both passes: every one of them that this CPU runs was tested.
  CHECK(levels_with_pass >= 2 * x86_levels_run());
#endif
  set_simd_level("auto");
}

// The metrics' byte distances (RankPrepareFn + RankDistancesFn) of each level that has them,
// against the oracle: every code size they serve (1 to 31 bytes), database sizes around the
// 32-code blocks, parts of the prepared database starting at a block, codes and query against an
// inaccessible page, and nothing written past the next multiple of 32.
TEST(byte_distances_match_the_oracle) {
  std::size_t levels_with_them = 0;
  std::uint32_t seed = 5;
  auto next = [&seed] {
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
  };
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(simd_level_name(level));
    const kernels::KernelTable& t = kernels::active();
    if (t.rank_prepare == nullptr) continue;
    CHECK(t.rank_distances != nullptr && t.rank_bytes != nullptr);
    ++levels_with_them;
    for (std::size_t cs = 1; cs <= kernels::kRankByteCodeSize; ++cs) {
      for (std::size_t n : {1, 7, 31, 32, 33, 64, 95, 200}) {
        std::vector<std::uint8_t> codes(n * cs), query(cs);
        for (auto& b : codes) b = static_cast<std::uint8_t>(next());
        for (std::size_t i = 0; i < n; i += 3) std::memset(codes.data() + i * cs, 0xff, cs);  // distance 8 * cs
        for (auto& b : query) b = static_cast<std::uint8_t>(next());
        const GuardedBytes gc(codes, true), gq(query, true);
        const std::size_t size = kernels::rank_prepared_size(n, cs);
        CHECK_EQ(size % 32, 0u);
        std::uint8_t* prepared = static_cast<std::uint8_t*>(std::aligned_alloc(32, size));
        t.rank_prepare(gc.data(), n, cs, prepared);
        for (std::size_t first = 0; first < n; first += 32) {
          const std::size_t part = n - first, padded = (part + 31) / 32 * 32;
          std::vector<std::uint8_t> out(padded + 8, 0xa5);
          t.rank_distances(prepared + kernels::rank_prepared_size(first, cs), part, cs, gq.data(), out.data());
          bool ok = true;
          for (std::size_t i = 0; i < part; ++i)
            ok &= out[i] == oracle::hamming(query.data(), codes.data() + (first + i) * cs, cs);
          CHECK(ok);
          for (std::size_t i = padded; i < out.size(); ++i) CHECK_EQ(int(out[i]), 0xa5);
        }
        std::free(prepared);
      }
    }
  }
#if defined(__x86_64__)
  CHECK(levels_with_them >= x86_levels_run());  // AVX2 and AVX-512 both have them
#endif
  set_simd_level("auto");
}
