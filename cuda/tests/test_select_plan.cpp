// CPU tests of the GPU search arithmetic (cuda/src/select_plan.hpp): the k-NN selection by
// counting is run here as the kernels run it (histogram, threshold, slot offsets, a collect pass
// whose writes within a (chunk, distance) range come in scrambled order as atomics would give them,
// a position-ordered boundary chunk, a final sort) and compared with a full sort. Built and run
// by ctest on every machine, with or without a GPU.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "harness.hpp"
#include "oracle.hpp"
#include "select_plan.hpp"

namespace plan = deephash::cuda::plan;

namespace {

// One query's k-NN through the counting selection; returns (distance, position) pairs in order.
std::vector<std::pair<int, std::int64_t>> knn_by_counting(const std::vector<std::uint8_t>& codes, std::size_t cs,
                                                          const std::uint8_t* query, std::uint64_t k,
                                                          std::uint32_t nchunks, std::uint32_t seed) {
  const std::uint64_t n = codes.size() / cs;
  const int nbins = static_cast<int>(8 * cs + 1);
  std::vector<int> dist(n);
  for (std::uint64_t i = 0; i < n; ++i) dist[i] = oracle::hamming(query, codes.data() + i * cs, cs);
  // 1. histogram pass
  std::vector<std::uint32_t> hist(static_cast<std::size_t>(nchunks) * nbins, 0), quota(nchunks, 0);
  for (std::uint32_t c = 0; c < nchunks; ++c) {
    const plan::Range r = plan::chunk_range(n, nchunks, c);
    for (std::uint64_t i = r.begin; i < r.end; ++i) ++hist[static_cast<std::size_t>(c) * nbins + dist[i]];
  }
  const std::uint64_t k_eff = std::min<std::uint64_t>(k, n);
  if (k_eff == 0) return {};
  // 2. threshold
  std::vector<std::uint64_t> totals(nbins, 0);
  for (std::uint32_t c = 0; c < nchunks; ++c)
    for (int d = 0; d < nbins; ++d) totals[d] += hist[static_cast<std::size_t>(c) * nbins + d];
  const plan::Threshold th = plan::select_threshold(totals.data(), nbins, k_eff);
  plan::QuerySelection sel{th.t, plan::kNoChunk, th.below, th.take};
  // 3. offsets, column by column (the kernel runs the columns in parallel)
  std::uint64_t base = 0;
  for (std::uint32_t d = 0; d <= sel.t; ++d) {
    const std::uint32_t b = plan::column_to_offsets(hist.data(), quota.data(), nbins, nchunks, d, sel, base);
    if (d == sel.t) sel.boundary_chunk = b;
    base += totals[d];
  }
  // 4. collect: positions of a chunk in a scrambled order, except the boundary chunk's codes at t
  std::vector<std::uint64_t> keys(k_eff, ~std::uint64_t{0});
  std::vector<int> writes(k_eff, 0);
  std::mt19937 rng(seed);
  for (std::uint32_t c = 0; c < nchunks; ++c) {
    const plan::Range r = plan::chunk_range(n, nchunks, c);
    std::vector<std::uint64_t> order(r.end - r.begin);
    std::iota(order.begin(), order.end(), r.begin);
    std::shuffle(order.begin(), order.end(), rng);
    for (std::uint64_t pos : order) {
      const std::uint32_t d = static_cast<std::uint32_t>(dist[pos]);
      const bool all_at_t = d == sel.t && quota[c] > 0 && c != sel.boundary_chunk;
      if (d < sel.t || all_at_t) {
        const std::uint32_t slot = hist[static_cast<std::size_t>(c) * nbins + d]++;
        keys.at(slot) = plan::make_key(d, pos);
        ++writes.at(slot);
      }
    }
    if (c == sel.boundary_chunk) {
      std::uint32_t rank = 0;
      const std::uint32_t start = hist[static_cast<std::size_t>(c) * nbins + sel.t];
      for (std::uint64_t pos = r.begin; pos < r.end && rank < quota[c]; ++pos) {
        if (static_cast<std::uint32_t>(dist[pos]) != sel.t) continue;
        keys.at(start + rank) = plan::make_key(sel.t, pos);
        ++writes.at(start + rank);
        ++rank;
      }
    }
  }
  for (std::uint64_t i = 0; i < k_eff; ++i)
    if (writes[i] != 1) harness::fail(__FILE__, __LINE__, "slot " + std::to_string(i) + " written " + std::to_string(writes[i]) + " times");
  // 5. sort
  std::sort(keys.begin(), keys.end());
  std::vector<std::pair<int, std::int64_t>> out;
  for (std::uint64_t key : keys)
    out.emplace_back(static_cast<int>(plan::key_distance(key)), static_cast<std::int64_t>(plan::key_position(key)));
  return out;
}

void check_against_oracle(const std::vector<std::uint8_t>& codes, std::size_t cs, std::uint32_t seed) {
  const std::size_t n = codes.size() / cs;
  std::vector<std::int64_t> positions(n);
  std::iota(positions.begin(), positions.end(), 0);
  const auto queries = oracle::random_codes(4, cs, seed + 1);
  for (std::uint64_t k : {std::uint64_t{1}, std::uint64_t{10}, std::uint64_t{100}, std::uint64_t{n / 2},
                          std::uint64_t{n}, std::uint64_t{n + 5}}) {
    for (std::uint32_t nchunks : {1u, 3u, 7u, 64u}) {
      for (std::size_t q = 0; q < 4; ++q) {
        const auto expect = oracle::knn(queries.data() + q * cs, codes, positions, cs, k);
        const auto got = knn_by_counting(codes, cs, queries.data() + q * cs, k, nchunks, seed + q);
        if (got != expect)
          harness::fail(__FILE__, __LINE__, "k=" + std::to_string(k) + " nchunks=" + std::to_string(nchunks) +
                                                " query " + std::to_string(q) + ": selection differs");
      }
    }
  }
}

}  // namespace

TEST(chunks_partition_in_order) {
  for (std::uint64_t n : {0ull, 1ull, 5ull, 1000ull, 1001ull}) {
    for (std::uint32_t nchunks : {1u, 2u, 7u, 1000u}) {
      std::uint64_t next = 0, smallest = ~0ull, largest = 0;
      for (std::uint32_t c = 0; c < nchunks; ++c) {
        const plan::Range r = plan::chunk_range(n, nchunks, c);
        CHECK_EQ(r.begin, next);
        next = r.end;
        smallest = std::min(smallest, r.end - r.begin);
        largest = std::max(largest, r.end - r.begin);
      }
      CHECK_EQ(next, n);
      CHECK(largest - smallest <= 1);
    }
  }
}

TEST(keys_order_by_distance_then_position) {
  CHECK(plan::make_key(3, 100) < plan::make_key(3, 101));
  CHECK(plan::make_key(3, plan::kPositionMask) < plan::make_key(4, 0));
  CHECK_EQ(plan::key_distance(plan::make_key(plan::kMaxGpuBits, 12345)), static_cast<std::uint32_t>(plan::kMaxGpuBits));
  CHECK_EQ(plan::key_position(plan::make_key(7, plan::kPositionMask)), plan::kPositionMask);
}

TEST(threshold_counts) {
  const std::uint64_t totals[] = {0, 2, 0, 5, 1};
  plan::Threshold t = plan::select_threshold(totals, 5, 1);
  CHECK_EQ(t.t, 1u);
  CHECK_EQ(t.below, 0u);
  CHECK_EQ(t.take, 1u);
  t = plan::select_threshold(totals, 5, 3);
  CHECK_EQ(t.t, 3u);
  CHECK_EQ(t.below, 2u);
  CHECK_EQ(t.take, 1u);
  t = plan::select_threshold(totals, 5, 8);
  CHECK_EQ(t.t, 4u);
  CHECK_EQ(t.below, 7u);
  CHECK_EQ(t.take, 1u);
}

TEST(selection_uniform_codes) {
  for (std::size_t cs : {1u, 3u, 8u, 16u}) check_against_oracle(oracle::random_codes(700, cs, 11), cs, 5);
}

TEST(selection_clustered_codes) {
  // bytes from {0, 1}: distances pile up on a few values, so ties cross chunk boundaries
  for (std::size_t cs : {2u, 8u}) check_against_oracle(oracle::random_codes(900, cs, 12, 2), cs, 7);
}

TEST(selection_duplicate_codes) {
  std::vector<std::uint8_t> codes(8 * 1000, 0);
  auto few = oracle::random_codes(3, 8, 13);
  for (std::size_t i = 0; i < 1000; ++i) std::copy_n(few.data() + (i % 3) * 8, 8, codes.data() + i * 8);
  check_against_oracle(codes, 8, 9);
}

TEST(plan_fits_the_budget) {
  plan::DeviceShape dev;
  dev.sm_count = 132;
  dev.memory_budget = 256ull << 20;
  for (std::uint64_t nq : {1ull, 10ull, 10000ull}) {
    for (std::uint64_t k : {1ull, 100ull, 100000ull}) {
      for (int nbits : {8, 64, 256, 1024, 4096}) {
        const std::uint64_t n = 10000000;
        const plan::KnnPlan p = plan::plan_knn(n, nq, k, nbits, plan::device_stride_words(nbits / 8) * 4, dev);
        CHECK(p.query_tile >= 1);
        CHECK(p.query_tile <= nq);
        CHECK(p.bytes_per_tile <= dev.memory_budget);
        CHECK(p.queries_per_block >= 1 && p.queries_per_block <= plan::kMaxQueriesPerBlock);
        CHECK(4ull * (nbits + 1) * p.queries_per_block <= plan::kSharedHistogramBytes || p.queries_per_block == 1);
        CHECK(p.query_tile * std::min(k, n) <= plan::kMaxSortItems);
        const std::uint64_t chunk = (n + p.nchunks - 1) / p.nchunks;
        CHECK(chunk < (1ull << 31));
      }
    }
  }
  // one query at nq = 1 spreads over the whole device
  const plan::KnnPlan one = plan::plan_knn(100000000, 1, 10, 64, 8, dev);
  CHECK(one.nchunks >= 8u * 132u);
  // nothing fits: query_tile 0 and the bytes one query needs
  dev.memory_budget = 1000;
  const plan::KnnPlan none = plan::plan_knn(1000000, 5, 10, 64, 8, dev);
  CHECK_EQ(none.query_tile, 0u);
  CHECK(none.bytes_per_tile > 1000u);
}

TEST(stride_is_whole_words) {
  CHECK_EQ(plan::device_stride_words(1), 1u);
  CHECK_EQ(plan::device_stride_words(4), 1u);
  CHECK_EQ(plan::device_stride_words(5), 2u);
  CHECK_EQ(plan::device_stride_words(128), 32u);
}

int main() { return harness::run_all(); }
