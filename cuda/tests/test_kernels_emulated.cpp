// The CUDA kernels of cuda/src/kernels/, compiled for the CPU through the emulation in
// emulation/ (blocks of real threads, a real barrier, shared memory and atomics), driven through
// their launchers exactly as GpuFlatIndex drives them, and compared with FlatIndex: k-NN (every
// tie-breaking path: chunks taking all, none or part of their codes at the threshold), range
// search and the storage gathers. Runs on every machine; a GPU run of the same comparison is
// test_gpu_flat_index.
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "deephash/flat_index.hpp"
#include "harness.hpp"
#include "kernels/launch.hpp"
#include "oracle.hpp"
#include "select_plan.hpp"

namespace k = deephash::cuda::kernels;
namespace plan = deephash::cuda::plan;

namespace {

std::vector<std::uint32_t> to_rows(const std::vector<std::uint8_t>& codes, std::size_t cs) {
  const std::size_t n = codes.size() / cs, words = plan::device_stride_words(cs);
  std::vector<std::uint32_t> rows(n * words, 0);
  for (std::size_t i = 0; i < n; ++i)
    std::copy_n(codes.data() + i * cs, cs, reinterpret_cast<std::uint8_t*>(rows.data() + i * words));
  return rows;
}

std::vector<std::uint8_t> make_codes(std::size_t n, int nbits, int kind, std::uint32_t seed) {
  if (kind == 0) return oracle::random_codes_nbits(n, nbits, seed);
  if (kind == 1) return oracle::random_codes_nbits(n, nbits, seed, 2);
  const std::size_t cs = deephash::code_size_for(nbits);
  auto few = oracle::random_codes_nbits(3, nbits, seed);
  std::vector<std::uint8_t> v(n * cs);
  for (std::size_t i = 0; i < n; ++i) std::copy_n(few.data() + (i % 3) * cs, cs, v.data() + i * cs);
  return v;
}

struct Setup {
  int nbits;
  std::size_t cs, n, nq;
  std::vector<std::uint8_t> codes, queries;
  std::vector<std::uint32_t> rows, qrows;
  std::vector<std::int64_t> ids;  // increasing, not equal to positions
  deephash::FlatIndex cpu;
  Setup(int nbits_, int kind, std::size_t n_, std::size_t nq_)
      : nbits(nbits_), cs(deephash::code_size_for(nbits_)), n(n_), nq(nq_), cpu(nbits_) {
    codes = make_codes(n, nbits, kind, 1000 + nbits + kind);
    queries = make_codes(nq, nbits, kind, 2000 + nbits + kind);
    rows = to_rows(codes, cs);
    qrows = to_rows(queries, cs);
    for (std::size_t i = 0; i < n; ++i) ids.push_back(static_cast<std::int64_t>(3 * i + 1));
    cpu.add_with_ids(codes.data(), n, ids.data());
  }
  k::CodesView view() const { return {rows.data(), n, static_cast<int>(plan::device_stride_words(cs))}; }
};

void knn_case(const Setup& s, std::uint64_t kk, std::uint32_t nchunks, std::uint32_t qpb, const std::string& what) {
  const int nbins = s.nbits + 1;  // as the index counts: distances 0..nbits (padding bits are zero)
  const std::uint64_t k_eff = std::min<std::uint64_t>(kk, s.n);
  const k::QueriesView qv{s.qrows.data(), static_cast<std::uint32_t>(s.nq), qpb};
  std::vector<std::uint32_t> hist(s.nq * nchunks * nbins, 0xdeadbeef), quota(s.nq * nchunks, 0xdeadbeef);
  std::vector<plan::QuerySelection> sel(s.nq);
  std::vector<std::uint64_t> keys(s.nq * k_eff, ~0ull);
  k::knn_histogram(s.view(), qv, nbins, nchunks, hist.data(), nullptr);
  k::knn_threshold(hist.data(), quota.data(), sel.data(), qv.nq, nchunks, nbins, k_eff, nullptr);
  k::knn_collect(s.view(), qv, nbins, nchunks, hist.data(), quota.data(), sel.data(), k_eff, keys.data(), nullptr);
  for (std::size_t q = 0; q < s.nq; ++q) std::sort(keys.begin() + q * k_eff, keys.begin() + (q + 1) * k_eff);
  std::vector<std::int32_t> D(s.nq * kk), Dc(s.nq * kk);
  std::vector<std::int64_t> I(s.nq * kk), Ic(s.nq * kk);
  k::knn_finish(keys.data(), qv.nq, k_eff, kk, k_eff, nullptr, nullptr, nullptr, 0, s.ids.data(), D.data(), I.data(), nullptr);
  s.cpu.search(s.queries.data(), s.nq, kk, Dc.data(), Ic.data());
  if (D != Dc || I != Ic)
    harness::fail(__FILE__, __LINE__, what + " k=" + std::to_string(kk) + " nchunks=" + std::to_string(nchunks) +
                                          ": k-NN differs from FlatIndex");
}

void range_case(const Setup& s, std::uint32_t radius, std::uint32_t nchunks, std::uint32_t qpb, const std::string& what) {
  const k::QueriesView qv{s.qrows.data(), static_cast<std::uint32_t>(s.nq), qpb};
  std::vector<unsigned long long> counts(s.nq * nchunks), offs(s.nq * nchunks);
  k::range_count(s.view(), qv, radius, nchunks, counts.data(), nullptr);
  unsigned long long run = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    offs[i] = run;
    run += counts[i];
  }
  std::vector<std::int64_t> lims(s.nq + 1);
  k::range_limits(offs.data(), qv.nq, nchunks, run, lims.data(), nullptr);
  std::vector<std::uint64_t> keys(run, ~0ull);
  k::range_fill(s.view(), qv, radius, nchunks, offs.data(), keys.data(), nullptr);
  for (std::size_t q = 0; q < s.nq; ++q) std::sort(keys.begin() + lims[q], keys.begin() + lims[q + 1]);
  std::vector<std::int32_t> D(run);
  std::vector<std::int64_t> I(run);
  k::keys_to_results(keys.data(), run, s.ids.data(), D.data(), I.data(), nullptr);
  const deephash::RangeResult expect = s.cpu.range_search(s.queries.data(), s.nq, static_cast<int>(radius));
  if (lims != expect.lims || D != expect.distances || I != expect.ids)
    harness::fail(__FILE__, __LINE__, what + " r=" + std::to_string(radius) + ": range search differs from FlatIndex");
}

}  // namespace

TEST(knn_and_range_match_flat_index) {
  // 8..32 bits: 1 word (specialised); 40, 64: 2 words; 72: 3 words (generic); 128, 256, 1024;
  // 12 and 100: code lengths that are not whole bytes (padding bits zero)
  for (int nbits : {8, 12, 24, 40, 64, 72, 100, 128, 256, 1024}) {
    for (int kind = 0; kind < 3; ++kind) {
      const Setup s(nbits, kind, 1501, 5);  // 1501: chunks of unequal sizes
      const std::string what = std::to_string(nbits) + " bits, kind " + std::to_string(kind);
      for (std::uint64_t kk : {std::uint64_t{1}, std::uint64_t{17}, std::uint64_t{700}, std::uint64_t{1506}})
        knn_case(s, kk, kk == 17 ? 1 : 6, 2, what);
      for (std::uint32_t r : {0u, static_cast<std::uint32_t>(nbits / 2), static_cast<std::uint32_t>(nbits)})
        range_case(s, r, 4, 2, what);
    }
  }
}

TEST(many_queries_per_block) {
  const Setup s(64, 1, 1201, 40);
  knn_case(s, 50, 3, 32, "64 bits clustered, 32 queries per block");
  range_case(s, 20, 3, 32, "64 bits clustered, 32 queries per block");
}

// The one-pass path: the radius from a sample histogram, then every code within it as a candidate
// (counted past the capacity), checked against FlatIndex's range search at that radius.
TEST(candidates_within_the_estimated_radius) {
  for (int nbits : {12, 24, 64, 72, 100, 256}) {
    for (int kind = 0; kind < 3; ++kind) {
      const Setup s(nbits, kind, 1501, 5);
      const int nbins = nbits + 1;
      const k::QueriesView qv{s.qrows.data(), static_cast<std::uint32_t>(s.nq), 2};
      for (std::uint64_t kk : {std::uint64_t{1}, std::uint64_t{40}}) {
        // sample: every third code
        std::vector<std::int64_t> src;
        for (std::uint64_t i = 0; i < 500; ++i) src.push_back(static_cast<std::int64_t>(plan::sample_position(i, 500, s.n)));
        std::vector<std::uint32_t> sample(500 * s.view().words_per_code);
        k::gather_rows(s.rows.data(), s.n, nullptr, src.data(), 500, s.view().words_per_code, sample.data(), nullptr);
        const k::CodesView sv{sample.data(), 500, s.view().words_per_code};
        std::vector<std::uint32_t> shist(s.nq * 2 * nbins), radius(s.nq);
        k::knn_histogram(sv, qv, nbins, 2, shist.data(), nullptr);
        k::knn_estimate(shist.data(), qv.nq, 2, nbins, 500, s.n, kk, radius.data(), nullptr);
        for (std::uint64_t cap : {std::uint64_t{64}, std::uint64_t{s.n}}) {
          std::vector<unsigned long long> counts(s.nq, 0);
          std::vector<std::uint64_t> keys(s.nq * cap, ~0ull);
          k::knn_candidates(s.view(), qv, 5, radius.data(), cap, counts.data(), keys.data(), nullptr);
          for (std::size_t q = 0; q < s.nq; ++q) {
            const auto expect = s.cpu.range_search(s.queries.data() + q * s.cs, 1, static_cast<int>(radius[q]));
            const std::string what = std::to_string(nbits) + " bits, kind " + std::to_string(kind) + ", query " +
                                     std::to_string(q) + ", cap " + std::to_string(cap);
            if (counts[q] != static_cast<unsigned long long>(expect.lims[1]))
              harness::fail(__FILE__, __LINE__, what + ": candidate count differs from the range search");
            if (counts[q] > cap) continue;  // overflowed: the search sends this query to the counting path
            std::vector<std::uint64_t> got(keys.begin() + q * cap, keys.begin() + q * cap + counts[q]);
            std::sort(got.begin(), got.end());
            std::vector<std::int64_t> got_ids;
            for (std::uint64_t key : got) got_ids.push_back(s.ids[plan::key_position(key)]);
            if (got_ids != expect.ids) harness::fail(__FILE__, __LINE__, what + ": candidates differ from the range search");
          }
        }
        // the estimate aims at 2k + 64 codes: on these sizes the radius holds at least k
        for (std::size_t q = 0; q < s.nq; ++q)
          CHECK(s.cpu.range_search(s.queries.data() + q * s.cs, 1, static_cast<int>(radius[q])).lims[1] >=
                static_cast<std::int64_t>(std::min<std::uint64_t>(kk, s.n)) || kind == 2);
      }
    }
  }
}

TEST(gather_rows_merges_two_sources) {
  const std::vector<std::uint32_t> a = {1, 2, 3, 4, 5, 6};  // 3 rows of 2 words
  const std::vector<std::uint32_t> b = {7, 8, 9, 10};       // 2 rows
  const std::vector<std::int64_t> src = {3, 0, 4, 2};
  std::vector<std::uint32_t> out(8);
  k::gather_rows(a.data(), 3, b.data(), src.data(), 4, 2, out.data(), nullptr);
  CHECK(out == (std::vector<std::uint32_t>{7, 8, 1, 2, 9, 10, 5, 6}));
  const std::vector<std::int64_t> ia = {10, 20, 30}, ib = {5, 25};
  std::vector<std::int64_t> iout(4);
  k::gather_ids(ia.data(), 3, ib.data(), src.data(), 4, iout.data(), nullptr);
  CHECK(iout == (std::vector<std::int64_t>{5, 10, 25, 30}));
}

int main() { return harness::run_all(); }
