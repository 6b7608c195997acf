// GpuFlatIndex against FlatIndex on a real device: every result equal, ties included, for code
// widths from 8 to 1024 bits, uniform, clustered and duplicate-heavy codes, k beyond FAISS's cap,
// range search, removals and interleaved ids. Exits 77 (ctest: skipped) where no device is usable.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "deephash/flat_index.hpp"
#include "deephash_cuda/device.hpp"
#include "deephash_cuda/gpu_flat_index.hpp"
#include "harness.hpp"
#include "oracle.hpp"

#ifdef DEEPHASH_CUDA_EMULATION
#include "cuda_runtime.h"  // the emulated device (cuda/tests/emulation), whose memory a test can shrink
#endif

using deephash::FlatIndex;
using deephash::cuda::GpuFlatIndex;

namespace {

// n codes of nbits bits (padding bits zero): uniform, clustered or duplicate-heavy.
std::vector<std::uint8_t> make_codes(std::size_t n, int nbits, int kind, std::uint32_t seed) {
  if (kind == 0) return oracle::random_codes_nbits(n, nbits, seed);
  if (kind == 1) return oracle::random_codes_nbits(n, nbits, seed, 2);  // clustered: bytes 0 or 1
  const std::size_t cs = deephash::code_size_for(nbits);
  auto few = oracle::random_codes_nbits(5, nbits, seed);                  // duplicates: 5 distinct codes
  std::vector<std::uint8_t> v(n * cs);
  for (std::size_t i = 0; i < n; ++i) std::copy_n(few.data() + (i % 5) * cs, cs, v.data() + i * cs);
  return v;
}

void compare(const FlatIndex& cpu, const GpuFlatIndex& gpu, const std::vector<std::uint8_t>& queries,
             std::size_t nq, const std::string& what) {
  const std::size_t n = cpu.ntotal();
  for (std::size_t k : {std::size_t{1}, std::size_t{10}, std::size_t{100}, std::size_t{2049}, n, n + 5}) {
    std::vector<std::int32_t> d1(nq * k), d2(nq * k);
    std::vector<std::int64_t> i1(nq * k), i2(nq * k);
    cpu.search(queries.data(), nq, k, d1.data(), i1.data());
    gpu.search(queries.data(), nq, k, d2.data(), i2.data());
    if (d1 != d2 || i1 != i2) harness::fail(__FILE__, __LINE__, what + ": k-NN differs at k=" + std::to_string(k));
  }
  for (int r : {0, 1, cpu.nbits() / 4, cpu.nbits() / 2, cpu.nbits()}) {
    const auto a = cpu.range_search(queries.data(), nq, r);
    const auto b = gpu.range_search(queries.data(), nq, r);
    if (a.lims != b.lims || a.distances != b.distances || a.ids != b.ids)
      harness::fail(__FILE__, __LINE__, what + ": range search differs at r=" + std::to_string(r));
  }
}

// The k-NN of nq queries on both indexes, equal (distances and ids, padding included)?
bool same_knn(const FlatIndex& cpu, const GpuFlatIndex& gpu, const std::uint8_t* queries, std::size_t nq,
              std::size_t k) {
  std::vector<std::int32_t> d1(nq * k), d2(nq * k);
  std::vector<std::int64_t> i1(nq * k), i2(nq * k);
  cpu.search(queries, nq, k, d1.data(), i1.data());
  gpu.search(queries, nq, k, d2.data(), i2.data());
  return d1 == d2 && i1 == i2;
}

}  // namespace

#ifdef DEEPHASH_CUDA_EMULATION
// The emulation runs every GPU thread as a fiber: fewer widths, smaller databases.
constexpr int kWidths[] = {8, 12, 24, 64, 72, 100, 256, 1024};
constexpr std::size_t kCodes = 1201;
#else
constexpr int kWidths[] = {1, 7, 8, 12, 13, 16, 24, 63, 64, 72, 100, 128, 256, 512, 1000, 1024};
constexpr std::size_t kCodes = 3000;
#endif

TEST(equal_to_flat_index) {
  for (int nbits : kWidths) {
    for (int kind = 0; kind < 3; ++kind) {
      const std::size_t n = kCodes;
      const auto codes = make_codes(n, nbits, kind, 100 + nbits + kind);
      const auto queries = make_codes(37, nbits, kind, 200 + nbits + kind);
      FlatIndex cpu(nbits);
      GpuFlatIndex gpu(nbits);
      cpu.add(codes.data(), n);
      gpu.add(codes.data(), n);
      const std::string what = std::to_string(nbits) + " bits, kind " + std::to_string(kind);
      compare(cpu, gpu, queries, 37, what);
      compare(cpu, gpu, queries, 1, what + ", nq=1");
      // removals and interleaved ids
      std::vector<std::int64_t> gone;
      for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); i += 7) gone.push_back(i);
      CHECK_EQ(cpu.remove_ids(gone.data(), gone.size()), gpu.remove_ids(gone.data(), gone.size()));
      std::vector<std::int64_t> back(gone.begin(), gone.begin() + 100);
      cpu.add_with_ids(codes.data(), back.size(), back.data());
      gpu.add_with_ids(codes.data(), back.size(), back.data());
      compare(cpu, gpu, queries, 37, what + ", after remove and re-add");
    }
  }
}

TEST(counting_selection_equal_to_flat_index) {  // the path k > 4096 takes, forced for every k
  for (int nbits : {8, 12, 72, 100, 256}) {
    for (int kind = 0; kind < 3; ++kind) {
      const auto codes = make_codes(kCodes, nbits, kind, 300 + nbits + kind);
      const auto queries = make_codes(13, nbits, kind, 400 + nbits + kind);
      FlatIndex cpu(nbits);
      GpuFlatIndex gpu(nbits);
      gpu.set_selection(GpuFlatIndex::Selection::Counting);
      cpu.add(codes.data(), kCodes);
      gpu.add(codes.data(), kCodes);
      compare(cpu, gpu, queries, 13, std::to_string(nbits) + " bits, kind " + std::to_string(kind) + ", counting");
    }
  }
}

TEST(overflowing_candidates_fall_back_to_counting) {
  // two distinct codes, 6000 copies each: any radius holding k codes holds 6000, more than the
  // candidate buffer (16 k + 4096 slots), so every query takes the fallback
  std::vector<std::uint8_t> codes(12000 * 8);
  const auto two = oracle::random_codes(2, 8, 21);
  for (std::size_t i = 0; i < 12000; ++i) std::copy_n(two.data() + (i % 2) * 8, 8, codes.data() + i * 8);
  const auto queries = oracle::random_codes(6, 8, 22);
  FlatIndex cpu(64);
  GpuFlatIndex gpu(64);
  cpu.add(codes.data(), 12000);
  gpu.add(codes.data(), 12000);
  for (std::size_t k : {std::size_t{1}, std::size_t{10}, std::size_t{3000}})
    if (!same_knn(cpu, gpu, queries.data(), 6, k))
      harness::fail(__FILE__, __LINE__, "fallback differs at k=" + std::to_string(k));
}

TEST(ranked_and_sorted_candidates_in_one_batch) {
  // 3000 copies of one code among 3000 others: a query equal to it finds 3000 candidates within
  // radius 0, more than the rank kernel takes (2048) but within the buffer, so its answer comes
  // from the segmented sort, while the other queries of the same batch are ranked.
  const std::size_t n = 6000;
  auto codes = oracle::random_codes(n, 8, 31);
  for (std::size_t i = 0; i < n; i += 2) std::copy_n(codes.data(), 8, codes.data() + i * 8);
  auto queries = oracle::random_codes(5, 8, 32);
  std::copy_n(codes.data(), 8, queries.data() + 2 * 8);
  FlatIndex cpu(64);
  GpuFlatIndex gpu(64);
  cpu.add(codes.data(), n);
  gpu.add(codes.data(), n);
  for (std::size_t k : {std::size_t{1}, std::size_t{10}, std::size_t{100}, std::size_t{256}, std::size_t{300}}) {
    for (std::size_t nq : {std::size_t{1}, std::size_t{5}}) {
      const std::uint8_t* q = nq == 1 ? queries.data() + 2 * 8 : queries.data();
      if (!same_knn(cpu, gpu, q, nq, k))
        harness::fail(__FILE__, __LINE__, "differs at k=" + std::to_string(k) + ", nq=" + std::to_string(nq));
    }
  }
  // fewer codes than k: the ranked answers end in padding
  FlatIndex small_cpu(64);
  GpuFlatIndex small_gpu(64);
  small_cpu.add(codes.data(), 50);
  small_gpu.add(codes.data(), 50);
  for (std::size_t k : {std::size_t{10}, std::size_t{50}, std::size_t{100}})
    if (!same_knn(small_cpu, small_gpu, queries.data(), 5, k))
      harness::fail(__FILE__, __LINE__, "50 codes: differs at k=" + std::to_string(k));
}

TEST(empty_and_errors) {
  GpuFlatIndex gpu(64);
  std::vector<std::uint8_t> q(8, 0);
  std::int32_t d[3];
  std::int64_t i[3];
  gpu.search(q.data(), 1, 3, d, i);
  CHECK_EQ(i[0], -1);
  CHECK_EQ(d[2], 2147483647);
  CHECK_THROWS(gpu.search(q.data(), 1, 0, d, i), deephash::InvalidArgument);
  CHECK_THROWS(GpuFlatIndex(0), deephash::InvalidArgument);
  CHECK_THROWS(GpuFlatIndex(4097), deephash::InvalidArgument);
  GpuFlatIndex odd(12);  // any length: padding bits set are refused, on the host and on the device
  std::vector<std::uint8_t> padded = {0xFF, 0x1F, 0x00, 0x00};  // row 0 sets bit 12
  CHECK_THROWS(odd.search(padded.data(), 2, 1, d, i), deephash::InvalidArgument);  // empty index
  CHECK_THROWS(odd.range_search(padded.data(), 2, 1), deephash::InvalidArgument);
  CHECK_THROWS(odd.add(padded.data(), 2), deephash::InvalidArgument);
  CHECK_EQ(odd.ntotal(), 0u);
  padded[1] = 0x0F;
  odd.add(padded.data(), 2);
  padded[3] = 0x80;  // row 1 sets bit 15
  CHECK_THROWS(odd.search(padded.data(), 2, 1, d, i), deephash::InvalidArgument);
  CHECK_THROWS(odd.range_search(padded.data(), 2, 1), deephash::InvalidArgument);
  const std::int64_t ids[2] = {5, 5};
  std::vector<std::uint8_t> two(16, 1);
  CHECK_THROWS(gpu.add_with_ids(two.data(), 2, ids), deephash::InvalidArgument);
  CHECK_EQ(gpu.ntotal(), 0u);
  CHECK_THROWS(GpuFlatIndex(64, deephash::cuda::device_count()), deephash::cuda::CudaError);
}

TEST(files_and_copies_keep_ids_and_next_id) {
  const auto codes = make_codes(500, 128, 0, 7);
  FlatIndex cpu(128);
  cpu.add(codes.data(), 500);
  std::vector<std::int64_t> gone = {499, 3, 10};
  cpu.remove_ids(gone.data(), gone.size());
  auto gpu = GpuFlatIndex::from_index(cpu);
  CHECK_EQ(gpu->next_id(), cpu.next_id());
  CHECK_EQ(gpu->ntotal(), cpu.ntotal());
  auto back = gpu->to_cpu();
  CHECK_EQ(back->next_id(), cpu.next_id());
  CHECK(back->ids() == cpu.ids());
  const auto queries = make_codes(9, 128, 0, 8);
  compare(cpu, *gpu, queries, 9, "from_index");
  gpu->add(codes.data(), 10);
  cpu.add(codes.data(), 10);
  compare(cpu, *gpu, queries, 9, "from_index, then add");
}

#ifdef DEEPHASH_CUDA_EMULATION
// Only the emulation can shrink the device: running out of memory leaves the index as it was.
TEST(out_of_device_memory_changes_nothing) {
  const auto codes = make_codes(20000, 64, 0, 9);
  GpuFlatIndex gpu(64);
  gpu.add(codes.data(), 1000);
  const std::size_t before = emu::device_memory().capacity;
  emu::device_memory().capacity = emu::device_memory().used + 4096;
  CHECK_THROWS(gpu.add(codes.data(), 20000), deephash::cuda::GpuOutOfMemory);
  std::vector<std::int64_t> odd_ids;
  for (std::int64_t i = 0; i < 100; ++i) odd_ids.push_back(2 * i + 1);  // interleaved: the merge path
  CHECK_THROWS(gpu.add_with_ids(codes.data(), 100, odd_ids.data()), deephash::cuda::GpuOutOfMemory);
  std::vector<std::int64_t> gone = {1, 2, 3};
  CHECK_THROWS(gpu.remove_ids(gone.data(), 3), deephash::cuda::GpuOutOfMemory);
  std::vector<std::int32_t> d(10 * 50);
  std::vector<std::int64_t> i(10 * 50);
  CHECK_THROWS(gpu.search(codes.data(), 10, 50, d.data(), i.data()), deephash::cuda::GpuOutOfMemory);
  CHECK_EQ(gpu.ntotal(), 1000u);
  CHECK_EQ(gpu.next_id(), 1000);
  emu::device_memory().capacity = before;
  FlatIndex cpu(64);
  cpu.add(codes.data(), 1000);
  compare(cpu, gpu, codes, 5, "after running out of memory");
}

// A FlatIndex and a GpuFlatIndex of nbits bits holding the same first n codes.
struct BothIndexes {
  FlatIndex cpu;
  GpuFlatIndex gpu;
  BothIndexes(int nbits, const std::vector<std::uint8_t>& codes, std::size_t n) : cpu(nbits), gpu(nbits) {
    cpu.add(codes.data(), n);
    gpu.add(codes.data(), n);
  }
};

// Queries in device memory: their padding bits are read from the device (the last byte of each row).
TEST(device_queries_with_a_padding_bit_are_refused) {
  const auto codes = make_codes(300, 13, 0, 11);
  BothIndexes both(13, codes, 300);
  FlatIndex& cpu = both.cpu;
  GpuFlatIndex& gpu = both.gpu;
  std::vector<std::uint8_t> host(codes.begin(), codes.begin() + 4 * 2);
  void *q = nullptr, *d = nullptr, *i = nullptr;
  CHECK(cudaMalloc(&q, host.size()) == cudaSuccess && cudaMalloc(&d, 4 * 5 * 4) == cudaSuccess &&
        cudaMalloc(&i, 4 * 5 * 8) == cudaSuccess);
  auto* qd = static_cast<std::uint8_t*>(q);
  auto* dd = static_cast<std::int32_t*>(d);
  auto* id = static_cast<std::int64_t*>(i);
  cudaMemcpyAsync(q, host.data(), host.size(), cudaMemcpyHostToDevice, nullptr);
  gpu.search(qd, 4, 5, dd, id, true);  // clean queries: the same answers as on the host
  std::vector<std::int32_t> d1(20), d2(20);
  std::vector<std::int64_t> i1(20), i2(20);
  cpu.search(host.data(), 4, 5, d1.data(), i1.data());
  cudaMemcpyAsync(d2.data(), d, 20 * 4, cudaMemcpyDeviceToHost, nullptr);
  cudaMemcpyAsync(i2.data(), i, 20 * 8, cudaMemcpyDeviceToHost, nullptr);
  CHECK(d1 == d2 && i1 == i2);
  host[3 * 2 + 1] |= 0x40;  // row 3 sets bit 14
  cudaMemcpyAsync(q, host.data(), host.size(), cudaMemcpyHostToDevice, nullptr);
  try {
    gpu.search(qd, 4, 5, dd, id, true);
    CHECK(false);
  } catch (const deephash::InvalidArgument& e) {
    CHECK(std::string(e.what()).rfind("queries: row 3 sets padding bit 14", 0) == 0);
  }
  CHECK_THROWS(gpu.range_search(qd, 4, 2, true), deephash::InvalidArgument);
  cudaFree(q);
  cudaFree(d);
  cudaFree(i);
}

// Tiles of queries: a budget that holds only a few queries per pass gives the same results.
TEST(query_tiles_give_the_same_results) {
  const auto codes = make_codes(5000, 64, 1, 10);
  BothIndexes both(64, codes, 5000);
  const FlatIndex& cpu = both.cpu;
  const GpuFlatIndex& gpu = both.gpu;
  const std::size_t before = emu::device_memory().capacity;
  emu::device_memory().capacity = emu::device_memory().used + (3u << 20);  // ~2.4 MiB budget
  compare(cpu, gpu, codes, 300, "small budget");
  emu::device_memory().capacity = before;
}
#endif

int main() {
  if (deephash::cuda::device_count() == 0) {
    std::printf("skipped: %s\n", deephash::cuda::unavailable_reason().c_str());
    return 77;
  }
  return harness::run_all();
}
