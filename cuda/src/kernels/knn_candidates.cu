// The one-pass k-NN for small k (plan in select_plan.hpp, "one pass for small k").
//
// knn_estimate: one block per query sums the histogram of the sample (knn_histogram run over the
// sampled rows) per distance, and one thread picks the radius expected to hold about 2k + 64 codes
// of the whole database (plan::estimate_radius).
// knn_candidates: the grid and walk of the other scans (chunks x query groups, queries and their
// radii in shared memory, each code row read once per group); a code within its query's radius
// takes the next slot of that query's candidate buffer with one atomic increment of the query's
// counter, and is stored as key(distance, position) while the slot is below the capacity. The
// counter keeps counting past the capacity, so the host learns both whether the radius held k
// codes and whether the buffer overflowed, and sends only the queries that failed either test to
// the counting selection. Codes outside every radius cost one compare: the pass reads the
// database once, at the speed of the histogram pass.
// knn_rank_finish: for small k, one block per query turns its candidates into its answer without a
// sort: the candidates (at most kRankMaxCandidates) are copied to shared memory, and each one's rank
// is the number of smaller keys (keys are distinct: their positions differ); a candidate of rank
// below k_eff is the answer's entry of that rank. With about 2k + 64 candidates this costs a few
// microseconds, where the segmented sort, its segment table and the finish cost tens.
#include <climits>

#include "code_words.cuh"
#include "launch.hpp"

namespace deephash::cuda::kernels {

namespace {

__global__ void __launch_bounds__(plan::kThreadsPerBlock)
    knn_estimate_kernel(const std::uint32_t* __restrict__ sample_hist, std::uint32_t nchunks, int nbins,
                        std::uint64_t sample_n, std::uint64_t n, std::uint64_t k_eff,
                        std::uint32_t* __restrict__ radius) {
  DH_EXTERN_SHARED(std::uint64_t, totals);
  const std::uint64_t q = blockIdx.x;
  const std::uint32_t* h = sample_hist + q * nchunks * static_cast<std::uint64_t>(nbins);
  sum_chunk_histograms(h, nchunks, nbins, totals);
  __syncthreads();
  if (threadIdx.x == 0) radius[q] = plan::estimate_radius(totals, nbins, sample_n, n, k_eff);
}

template <int W>
__global__ void __launch_bounds__(plan::kThreadsPerBlock)
    knn_candidates_kernel(const std::uint32_t* __restrict__ codes, std::uint64_t n, int words,
                          const std::uint32_t* __restrict__ queries, std::uint32_t nq, std::uint32_t qpb,
                          std::uint32_t nchunks, const std::uint32_t* __restrict__ radius, std::uint64_t cap,
                          unsigned long long* __restrict__ counts, std::uint64_t* __restrict__ keys) {
  __shared__ std::uint32_t sr[plan::kMaxQueriesPerBlock];
  DH_EXTERN_SHARED(std::uint32_t, sq);
  const int wpc = W > 0 ? W : words;
  const std::uint32_t q0 = blockIdx.y * qpb;
  const std::uint32_t nqb = min(qpb, nq - q0);
  load_queries(sq, queries + static_cast<std::uint64_t>(q0) * wpc, nqb, wpc);
  for (std::uint32_t qi = threadIdx.x; qi < nqb; qi += blockDim.x) sr[qi] = radius[q0 + qi];
  __syncthreads();
  const plan::Range r = plan::chunk_range(n, nchunks, blockIdx.x);
  scan_rows<W>(codes, wpc, sq, nqb, r.begin, r.end, [&](std::uint32_t qi, std::uint32_t d, std::uint64_t pos) {
    if (d <= sr[qi]) {
      const unsigned long long slot = atomicAdd(&counts[q0 + qi], 1ull);
      if (slot < cap) keys[static_cast<std::uint64_t>(q0 + qi) * cap + slot] = plan::make_key(d, pos);
    }
  });
}

__global__ void candidate_segments_kernel(const unsigned long long* __restrict__ counts, std::uint32_t nq,
                                          std::uint64_t cap, std::uint64_t k_eff, std::int64_t* __restrict__ bounds) {
  for (std::uint32_t q = blockIdx.x * blockDim.x + threadIdx.x; q < nq; q += gridDim.x * blockDim.x) {
    const bool ok = plan::candidates_suffice(counts[q], k_eff, cap);
    bounds[q] = static_cast<std::int64_t>(q * cap);
    bounds[nq + q] = static_cast<std::int64_t>(q * cap + (ok ? counts[q] : 0));
  }
}

__global__ void __launch_bounds__(plan::kThreadsPerBlock)
    knn_rank_finish_kernel(const std::uint64_t* __restrict__ keys, const unsigned long long* __restrict__ counts,
                           std::uint64_t cap, std::uint64_t k_eff, std::uint64_t k, const std::int64_t* __restrict__ ids,
                           std::int32_t* __restrict__ distances, std::int64_t* __restrict__ out_ids) {
  __shared__ std::uint64_t cand[plan::kRankMaxCandidates];
  const std::uint64_t q = blockIdx.x;
  const std::uint64_t count = counts[q];
  // The same answer for every thread of the block: the query is left to the sort or to counting.
  if (!plan::candidates_suffice(count, k_eff, cap) || count > plan::kRankMaxCandidates) return;
  const std::uint64_t* src = keys + q * cap;
  for (std::uint64_t i = threadIdx.x; i < count; i += blockDim.x) cand[i] = src[i];
  __syncthreads();
  std::int32_t* drow = distances + q * k;
  std::int64_t* irow = out_ids + q * k;
  for (std::uint64_t i = threadIdx.x; i < count; i += blockDim.x) {
    const std::uint64_t key = cand[i];
    std::uint64_t rank = 0;
    for (std::uint64_t j = 0; j < count; ++j) rank += cand[j] < key ? 1 : 0;
    if (rank < k_eff) {
      drow[rank] = static_cast<std::int32_t>(plan::key_distance(key));
      irow[rank] = ids[plan::key_position(key)];
    }
  }
  for (std::uint64_t j = k_eff + threadIdx.x; j < k; j += blockDim.x) {
    drow[j] = INT_MAX;
    irow[j] = -1;
  }
}

}  // namespace

void knn_rank_finish(const std::uint64_t* keys, const unsigned long long* counts, std::uint32_t nq, std::uint64_t cap,
                     std::uint64_t k_eff, std::uint64_t k, const std::int64_t* ids, std::int32_t* distances,
                     std::int64_t* out_ids, cudaStream_t stream) {
  if (nq == 0) return;
  DH_LAUNCH(knn_rank_finish_kernel, nq, plan::kThreadsPerBlock, 0, stream)(keys, counts, cap, k_eff, k, ids, distances,
                                                                          out_ids);
  check(cudaGetLastError(), "knn_rank_finish launch");
}

void candidate_segments(const unsigned long long* counts, std::uint32_t nq, std::uint64_t cap, std::uint64_t k_eff,
                        std::int64_t* bounds, cudaStream_t stream) {
  DH_LAUNCH(candidate_segments_kernel, grid_for(nq), 256, 0, stream)(counts, nq, cap, k_eff, bounds);
  check(cudaGetLastError(), "candidate_segments launch");
}

void knn_estimate(const std::uint32_t* sample_hist, std::uint32_t nq, std::uint32_t sample_chunks, int nbins,
                  std::uint64_t sample_n, std::uint64_t n, std::uint64_t k_eff, std::uint32_t* radius,
                  cudaStream_t stream) {
  DH_LAUNCH(knn_estimate_kernel, nq, plan::kThreadsPerBlock, static_cast<std::size_t>(nbins) * 8, stream)(
      sample_hist, sample_chunks, nbins, sample_n, n, k_eff, radius);
  check(cudaGetLastError(), "knn_estimate launch");
}

void knn_candidates(const CodesView& codes, const QueriesView& queries, std::uint32_t nchunks,
                    const std::uint32_t* radius, std::uint64_t cap, unsigned long long* counts,
                    std::uint64_t* keys, cudaStream_t stream) {
  const std::uint32_t qpb = queries.queries_per_block;
  const dim3 grid(nchunks, (queries.nq + qpb - 1) / qpb);
  const std::size_t smem = static_cast<std::size_t>(qpb) * codes.words_per_code * 4;
  dispatch_width(codes.words_per_code, [&](auto w) {
    DH_LAUNCH(knn_candidates_kernel<decltype(w)::value>, grid, plan::kThreadsPerBlock, smem, stream)(
        codes.words, codes.n, codes.words_per_code, queries.words, queries.nq, qpb, nchunks, radius, cap, counts,
        keys);
  });
  check(cudaGetLastError(), "knn_candidates launch");
}

}  // namespace deephash::cuda::kernels
