// Searches from several threads beside a writer, on both index types, with the scan's own worker
// threads busy too. Run under ThreadSanitizer by `make sanitize`; here it also checks what a
// reader may see: every answer is a consistent snapshot (sorted, complete up to ntotal at that
// moment), and once the writer is done the answers equal the oracle's.
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "deephash/flat_index.hpp"
#include "deephash/mih_index.hpp"
#include "deephash/threads.hpp"
#include "harness.hpp"
#include "oracle.hpp"

using namespace deephash;

static void readers_beside_a_writer(BinaryIndex& index) {
  const std::size_t cs = index.code_size(), batch = 500, batches = 12, k = 20;
  const auto codes = oracle::random_codes(batch * batches, cs, 5, 4);
  const auto queries = oracle::random_codes(8, cs, 6, 4);
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      std::vector<dist_t> D(8 * k);
      std::vector<idx_t> I(8 * k);
      while (!done.load()) {
        if (r == 2) {
          const RangeResult res = index.range_search(queries.data(), 8, 3);
          if (res.lims.size() != 9) ++bad;
          continue;
        }
        index.search(queries.data(), 8, k, D.data(), I.data());
        for (std::size_t q = 0; q < 8; ++q)
          for (std::size_t j = 1; j < k; ++j) {
            const std::size_t a = q * k + j - 1, b = a + 1;
            if (I[b] != kMissingId && (D[a] > D[b] || (D[a] == D[b] && I[a] >= I[b]))) ++bad;
          }
        (void)index.ntotal();
      }
    });
  }
  for (std::size_t b = 0; b < batches; ++b) {
    index.add(codes.data() + b * batch * cs, batch);
    if (b % 3 == 2) {
      std::vector<idx_t> gone;
      for (idx_t id = static_cast<idx_t>(b * batch); id < static_cast<idx_t>(b * batch + 50); ++id) gone.push_back(id);
      index.remove_ids(gone.data(), gone.size());
    }
  }
  done = true;
  for (auto& t : readers) t.join();
  CHECK_EQ(bad.load(), 0);
  // Final state against the oracle.
  std::vector<std::uint8_t> live;
  std::vector<std::int64_t> ids;
  for (std::size_t i = 0; i < batch * batches; ++i) {
    const std::size_t b = i / batch;
    if (b % 3 == 2 && i - b * batch < 50) continue;
    live.insert(live.end(), codes.begin() + i * cs, codes.begin() + (i + 1) * cs);
    ids.push_back(static_cast<std::int64_t>(i));
  }
  CHECK_EQ(index.ntotal(), ids.size());
  std::vector<dist_t> D(k);
  std::vector<idx_t> I(k);
  for (std::size_t q = 0; q < 8; ++q) {
    index.search(queries.data() + q * cs, 1, k, D.data(), I.data());
    const auto want = oracle::knn(queries.data() + q * cs, live, ids, cs, k);
    for (std::size_t j = 0; j < k; ++j) CHECK(D[j] == want[j].first && I[j] == want[j].second);
  }
}

TEST(flat_readers_beside_a_writer) {
  set_num_threads(2);
  FlatIndex index(64);
  readers_beside_a_writer(index);
}

TEST(mih_readers_beside_a_writer) {
  set_num_threads(2);
  MIHIndex index(64);
  readers_beside_a_writer(index);
}

HARNESS_MAIN()
