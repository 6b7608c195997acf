// Range search in two passes, so that the output memory is exactly the number of hits.
//
// range_count: the grid and walk of the k-NN scans (chunks x query groups, queries in shared
// memory, each code row read once per group); each block counts, per query, its chunk's codes
// within the radius in a shared counter and stores it at counts[q][chunk]. The host then takes an
// exclusive prefix sum over (query, chunk) (CUB), whose last value plus the last count is the
// total: the hits array is allocated at that size.
// range_fill: the same walk again; every hit takes the next slot of its (query, chunk) range with
// a 64-bit atomic increment and stores key(distance, position). A segmented sort per query then
// orders each slice by (distance, position), which is (distance, id): positions follow ids.
#include "code_words.cuh"
#include "launch.hpp"

namespace deephash::cuda::kernels {

namespace {

template <int W>
__global__ void __launch_bounds__(plan::kThreadsPerBlock)
    range_count_kernel(const std::uint32_t* __restrict__ codes, std::uint64_t n, int words,
                       const std::uint32_t* __restrict__ queries, std::uint32_t nq, std::uint32_t qpb,
                       std::uint32_t radius, std::uint32_t nchunks, unsigned long long* __restrict__ counts) {
  __shared__ unsigned int hits[plan::kMaxQueriesPerBlock];
  DH_EXTERN_SHARED(std::uint32_t, sq);
  const int wpc = W > 0 ? W : words;
  const std::uint32_t q0 = blockIdx.y * qpb;
  const std::uint32_t nqb = min(qpb, nq - q0);
  load_queries(sq, queries + static_cast<std::uint64_t>(q0) * wpc, nqb, wpc);
  for (std::uint32_t i = threadIdx.x; i < nqb; i += blockDim.x) hits[i] = 0;
  __syncthreads();
  const plan::Range r = plan::chunk_range(n, nchunks, blockIdx.x);
  scan_rows<W>(codes, wpc, sq, nqb, r.begin, r.end, [&](std::uint32_t qi, std::uint32_t d, std::uint64_t) {
    if (d <= radius) atomicAdd(&hits[qi], 1u);
  });
  __syncthreads();
  for (std::uint32_t qi = threadIdx.x; qi < nqb; qi += blockDim.x)
    counts[static_cast<std::uint64_t>(q0 + qi) * nchunks + blockIdx.x] = hits[qi];
}

template <int W>
__global__ void __launch_bounds__(plan::kThreadsPerBlock)
    range_fill_kernel(const std::uint32_t* __restrict__ codes, std::uint64_t n, int words,
                      const std::uint32_t* __restrict__ queries, std::uint32_t nq, std::uint32_t qpb,
                      std::uint32_t radius, std::uint32_t nchunks, unsigned long long* __restrict__ cursors,
                      std::uint64_t* __restrict__ keys) {
  DH_EXTERN_SHARED(std::uint32_t, sq);
  const int wpc = W > 0 ? W : words;
  const std::uint32_t q0 = blockIdx.y * qpb;
  const std::uint32_t nqb = min(qpb, nq - q0);
  load_queries(sq, queries + static_cast<std::uint64_t>(q0) * wpc, nqb, wpc);
  __syncthreads();
  const plan::Range r = plan::chunk_range(n, nchunks, blockIdx.x);
  scan_rows<W>(codes, wpc, sq, nqb, r.begin, r.end, [&](std::uint32_t qi, std::uint32_t d, std::uint64_t pos) {
    if (d <= radius) {
      const unsigned long long slot = atomicAdd(&cursors[static_cast<std::uint64_t>(q0 + qi) * nchunks + blockIdx.x], 1ull);
      keys[slot] = plan::make_key(d, pos);
    }
  });
}

__global__ void range_limits_kernel(const unsigned long long* __restrict__ offsets, std::uint32_t nq,
                                    std::uint32_t nchunks, std::uint64_t total, std::int64_t* __restrict__ lims) {
  for (std::uint32_t q = blockIdx.x * blockDim.x + threadIdx.x; q <= nq; q += gridDim.x * blockDim.x)
    lims[q] = static_cast<std::int64_t>(q < nq ? offsets[static_cast<std::uint64_t>(q) * nchunks] : total);
}

__global__ void keys_to_results_kernel(const std::uint64_t* __restrict__ keys, std::uint64_t count,
                                       const std::int64_t* __restrict__ ids, std::int32_t* __restrict__ distances,
                                       std::int64_t* __restrict__ out_ids) {
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x) {
    distances[i] = static_cast<std::int32_t>(plan::key_distance(keys[i]));
    out_ids[i] = ids[plan::key_position(keys[i])];
  }
}

}  // namespace

void range_count(const CodesView& codes, const QueriesView& queries, std::uint32_t radius, std::uint32_t nchunks,
                 unsigned long long* counts, cudaStream_t stream) {
  const std::uint32_t qpb = queries.queries_per_block;
  const dim3 grid(nchunks, (queries.nq + qpb - 1) / qpb);
  const std::size_t smem = static_cast<std::size_t>(qpb) * codes.words_per_code * 4;
  dispatch_width(codes.words_per_code, [&](auto w) {
    DH_LAUNCH(range_count_kernel<decltype(w)::value>, grid, plan::kThreadsPerBlock, smem, stream)(
        codes.words, codes.n, codes.words_per_code, queries.words, queries.nq, qpb, radius, nchunks, counts);
  });
  check(cudaGetLastError(), "range_count launch");
}

void range_fill(const CodesView& codes, const QueriesView& queries, std::uint32_t radius, std::uint32_t nchunks,
                unsigned long long* cursors, std::uint64_t* keys, cudaStream_t stream) {
  const std::uint32_t qpb = queries.queries_per_block;
  const dim3 grid(nchunks, (queries.nq + qpb - 1) / qpb);
  const std::size_t smem = static_cast<std::size_t>(qpb) * codes.words_per_code * 4;
  dispatch_width(codes.words_per_code, [&](auto w) {
    DH_LAUNCH(range_fill_kernel<decltype(w)::value>, grid, plan::kThreadsPerBlock, smem, stream)(
        codes.words, codes.n, codes.words_per_code, queries.words, queries.nq, qpb, radius, nchunks, cursors, keys);
  });
  check(cudaGetLastError(), "range_fill launch");
}

void range_limits(const unsigned long long* offsets, std::uint32_t nq, std::uint32_t nchunks, std::uint64_t total,
                  std::int64_t* lims, cudaStream_t stream) {
  DH_LAUNCH(range_limits_kernel, grid_for(nq + 1ull), 256, 0, stream)(offsets, nq, nchunks, total, lims);
  check(cudaGetLastError(), "range_limits launch");
}

void keys_to_results(const std::uint64_t* keys, std::uint64_t count, const std::int64_t* ids,
                     std::int32_t* distances, std::int64_t* out_ids, cudaStream_t stream) {
  if (count == 0) return;
  DH_LAUNCH(keys_to_results_kernel, grid_for(count), 256, 0, stream)(keys, count, ids, distances, out_ids);
  check(cudaGetLastError(), "keys_to_results launch");
}

}  // namespace deephash::cuda::kernels
