// FlatIndex: exact results against the oracle on both search paths (query- and database-parallel),
// id contracts, removal, failed calls that change nothing.
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "deephash/flat_index.hpp"
#include "deephash/threads.hpp"
#include "flat_scan.hpp"
#include "harness.hpp"
#include "oracle.hpp"

using namespace deephash;

static void check_knn(const FlatIndex& index, const std::vector<std::uint8_t>& codes, const std::vector<idx_t>& ids,
                      std::size_t nq, std::size_t k, int alphabet) {
  const std::size_t cs = index.code_size();
  auto q = oracle::random_codes_nbits(nq, index.nbits(), 99, alphabet);
  std::vector<dist_t> d(nq * k);
  std::vector<idx_t> got(nq * k);
  index.search(q.data(), nq, k, d.data(), got.data());
  bool ok = true;
  for (std::size_t i = 0; i < nq; ++i) {
    auto want = oracle::knn(q.data() + i * cs, codes, ids, cs, k);
    for (std::size_t j = 0; j < k; ++j) {
      const bool have = j < want.size();
      ok &= d[i * k + j] == (have ? want[j].first : kMissingDistance);
      ok &= got[i * k + j] == (have ? want[j].second : kMissingId);
    }
  }
  CHECK(ok);
}

TEST(knn_is_exact_on_both_parallel_paths) {
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    for (int nbits : {8, 24, 64, 128, 200, 256}) {
      const std::size_t cs = nbits / 8, n = 20000;
      for (int alphabet : {256, 2}) {  // uniform and duplicate-heavy
        FlatIndex index(nbits);
        auto codes = oracle::random_codes(n, cs, 5, alphabet);
        index.add(codes.data(), n);
        std::vector<idx_t> ids(n);
        std::iota(ids.begin(), ids.end(), 0);
        for (std::size_t nq : {1, 2, 7})
          for (std::size_t k : {1, 10, 100}) check_knn(index, codes, ids, nq, k, alphabet);
      }
    }
  }
  set_num_threads(2);
}

TEST(any_code_length_is_exact) {
  for (int nbits : {1, 7, 12, 13, 63, 100, 1000}) {
    const std::size_t n = 3000;
    for (int alphabet : {256, 2}) {
      FlatIndex index(nbits);
      CHECK_EQ(index.code_size(), static_cast<std::size_t>((nbits + 7) / 8));
      auto codes = oracle::random_codes_nbits(n, nbits, 5, alphabet);
      index.add(codes.data(), n);
      std::vector<idx_t> ids(n);
      std::iota(ids.begin(), ids.end(), 0);
      for (std::size_t k : {1, 10, 100}) check_knn(index, codes, ids, 3, k, alphabet);
    }
  }
}

TEST(a_padding_bit_set_is_refused_and_changes_nothing) {
  FlatIndex index(12);
  auto codes = oracle::random_codes_nbits(6, 12, 8);
  index.add(codes.data(), 6);
  auto bad = codes;
  bad[2 * 2 + 1] |= 0x20;  // row 2, bit 13
  std::vector<idx_t> ids = {100, 101, 102, 103, 104, 105};
  CHECK_THROWS(index.add(bad.data(), 6), InvalidArgument);
  CHECK_THROWS(index.add_with_ids(bad.data(), 6, ids.data()), InvalidArgument);
  std::vector<dist_t> d(6);
  std::vector<idx_t> got(6);
  CHECK_THROWS(index.search(bad.data(), 6, 1, d.data(), got.data()), InvalidArgument);
  CHECK_THROWS(index.range_search(bad.data(), 6, 3), InvalidArgument);
  CHECK_EQ(index.ntotal(), 6u);
  CHECK_EQ(index.next_id(), 6);
  try {
    index.add(bad.data(), 6);
  } catch (const InvalidArgument& e) {
    CHECK_EQ(std::string(e.what()), std::string("codes: row 2 sets padding bit 13 (a 12-bit code in 2 bytes: bits 12..15 must be zero)"));
  }
}

TEST(caller_ids_out_of_order_keep_tie_order_by_id) {
  const std::size_t n = 5000, cs = 8;
  auto codes = oracle::random_codes(n, cs, 11, 2);
  std::vector<idx_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = static_cast<idx_t>((i * 7919) % 100003);
  FlatIndex index(64);
  index.add_with_ids(codes.data(), n, ids.data());
  for (std::size_t k : {1, 5, 50, 6000}) check_knn(index, codes, ids, 5, k, 2);
}

TEST(ids_contract_and_failed_calls_change_nothing) {
  FlatIndex index(16);
  auto codes = oracle::random_codes(10, 2, 3);
  index.add(codes.data(), 4);  // ids 0..3
  std::vector<idx_t> ids = {10, 12};
  index.add_with_ids(codes.data() + 8, 2, ids.data());
  index.add(codes.data() + 12, 1);  // id 13
  CHECK_EQ(index.next_id(), 14);
  std::vector<idx_t> bad_dup = {20, 20};
  std::vector<idx_t> bad_present = {21, 12};
  std::vector<idx_t> bad_negative = {-1, 30};
  CHECK_THROWS(index.add_with_ids(codes.data(), 2, bad_dup.data()), InvalidArgument);
  CHECK_THROWS(index.add_with_ids(codes.data(), 2, bad_present.data()), InvalidArgument);
  CHECK_THROWS(index.add_with_ids(codes.data(), 2, bad_negative.data()), InvalidArgument);
  CHECK_EQ(index.ntotal(), 7u);
  std::uint8_t out[2];
  index.reconstruct(12, out);
  CHECK(out[0] == codes[10] && out[1] == codes[11]);
  CHECK_THROWS(index.reconstruct(11, out), UnknownId);
  std::vector<idx_t> rm = {1, 12, 99, 1};
  CHECK_EQ(index.remove_ids(rm.data(), rm.size()), 2u);
  CHECK_EQ(index.ntotal(), 5u);
  index.reconstruct(13, out);  // ids survive removal unchanged
  CHECK(out[0] == codes[12] && out[1] == codes[13]);
  index.add(codes.data(), 1);
  CHECK_EQ(index.next_id(), 15);
  index.reset();
  CHECK_EQ(index.ntotal(), 0u);
  CHECK_EQ(index.next_id(), 0);
  CHECK_THROWS(FlatIndex(0), InvalidArgument);
  CHECK_THROWS(FlatIndex(static_cast<int>(kMaxNbits) + 1), InvalidArgument);
  CHECK_EQ(FlatIndex(12).code_size(), 2u);
}

TEST(range_search_is_inclusive_and_sorted) {
  const std::size_t n = 3000, cs = 4;
  auto codes = oracle::random_codes(n, cs, 8);
  FlatIndex index(32);
  index.add(codes.data(), n);
  auto q = oracle::random_codes(3, cs, 9);
  for (int radius : {0, 8, 12, 32}) {
    RangeResult r = index.range_search(q.data(), 3, radius);
    CHECK_EQ(r.lims.size(), 4u);
    bool ok = true;
    for (std::size_t i = 0; i < 3; ++i) {
      std::vector<std::pair<int, idx_t>> want;
      for (std::size_t j = 0; j < n; ++j) {
        const int h = oracle::hamming(q.data() + i * cs, codes.data() + j * cs, cs);
        if (h <= radius) want.emplace_back(h, static_cast<idx_t>(j));
      }
      std::sort(want.begin(), want.end());
      ok &= static_cast<std::size_t>(r.lims[i + 1] - r.lims[i]) == want.size();
      for (std::size_t j = 0; ok && j < want.size(); ++j)
        ok &= r.distances[r.lims[i] + j] == want[j].first && r.ids[r.lims[i] + j] == want[j].second;
    }
    CHECK(ok);
  }
  CHECK_THROWS(index.range_search(q.data(), 1, -1), InvalidArgument);
}

HARNESS_MAIN()

// The bound the slices of one query share (flat_scan.hpp): a slice after the one that holds k
// codes at distance d may skip codes at d (they lose the tie by id), the holder itself and the
// slices before it may not, and without ids growing with position nobody may; a lower distance,
// or the same distance from an earlier slice, packs smaller.
TEST(shared_bound_is_strict_only_for_later_slices_with_growing_ids) {
  using detail::bound_for_slice;
  using detail::kNoSlice;
  using detail::pack_bound;
  const std::uint64_t from2 = pack_bound(5, 2);
  CHECK_EQ(bound_for_slice(from2, 0, true), 5);
  CHECK_EQ(bound_for_slice(from2, 2, true), 5);
  CHECK_EQ(bound_for_slice(from2, 3, true), 4);
  CHECK_EQ(bound_for_slice(from2, 3, false), 5);
  CHECK_EQ(bound_for_slice(pack_bound(64, kNoSlice), 7, true), 64);
  CHECK_EQ(bound_for_slice(pack_bound(0, 0), 1, true), -1);
  CHECK(pack_bound(4, 9) < pack_bound(5, 0));
  CHECK(pack_bound(5, 1) < pack_bound(5, 2));
  CHECK(pack_bound(5, 2) < pack_bound(5, kNoSlice));
}
