// Pass 1 of the k-NN selection by counting: per query, per database chunk, how many codes lie at
// each distance 0..nbits.
//
// Plan: the grid is (chunks, query groups). A block copies its group's queries (up to 32, fewer
// for wide codes) into shared memory with one histogram per query, then walks its chunk: each
// thread reads one code row per step (consecutive threads, consecutive rows), keeps it in
// registers and counts its distance to every query of the group with a shared-memory atomic. So a
// code read from device memory serves the whole group, and with one query the database is still
// spread over every SM (the plan asks for 8 blocks per SM). The block's histograms then go to
// hist[q][chunk][d] with plain stores: every cell has exactly one writer. Nothing of size
// nq x n is ever stored.
#include "code_words.cuh"
#include "launch.hpp"

namespace deephash::cuda::kernels {

namespace {

template <int W>
__global__ void __launch_bounds__(plan::kThreadsPerBlock)
    knn_histogram_kernel(const std::uint32_t* __restrict__ codes, std::uint64_t n, int words,
                         const std::uint32_t* __restrict__ queries, std::uint32_t nq, std::uint32_t qpb, int nbins,
                         std::uint32_t nchunks, std::uint32_t* __restrict__ hist) {
  DH_EXTERN_SHARED(std::uint32_t, smem);
  const int wpc = W > 0 ? W : words;
  const std::uint32_t q0 = blockIdx.y * qpb;
  const std::uint32_t nqb = min(qpb, nq - q0);
  std::uint32_t* sq = smem;
  std::uint32_t* sh = smem + qpb * wpc;
  load_queries(sq, queries + static_cast<std::uint64_t>(q0) * wpc, nqb, wpc);
  for (std::uint32_t i = threadIdx.x; i < nqb * nbins; i += blockDim.x) sh[i] = 0;
  __syncthreads();
  const plan::Range r = plan::chunk_range(n, nchunks, blockIdx.x);
  scan_rows<W>(codes, wpc, sq, nqb, r.begin, r.end,
               [&](std::uint32_t qi, std::uint32_t d, std::uint64_t) { atomicAdd(&sh[qi * nbins + d], 1u); });
  __syncthreads();
  for (std::uint32_t i = threadIdx.x; i < nqb * nbins; i += blockDim.x) {
    const std::uint32_t qi = i / nbins, d = i % nbins;
    hist[(static_cast<std::uint64_t>(q0 + qi) * nchunks + blockIdx.x) * nbins + d] = sh[i];
  }
}

}  // namespace

void knn_histogram(const CodesView& codes, const QueriesView& queries, int nbins, std::uint32_t nchunks,
                   std::uint32_t* hist, cudaStream_t stream) {
  const std::uint32_t qpb = queries.queries_per_block;
  const dim3 grid(nchunks, (queries.nq + qpb - 1) / qpb);
  const std::size_t smem = static_cast<std::size_t>(qpb) * (codes.words_per_code + nbins) * 4;
  dispatch_width(codes.words_per_code, [&](auto w) {
    DH_LAUNCH(knn_histogram_kernel<decltype(w)::value>, grid, plan::kThreadsPerBlock, smem, stream)(
        codes.words, codes.n, codes.words_per_code, queries.words, queries.nq, qpb, nbins, nchunks, hist);
  });
  check(cudaGetLastError(), "knn_histogram launch");
}

}  // namespace deephash::cuda::kernels
