// Passes 2 and 3 of the k-NN selection by counting (see select_plan.hpp for the whole scheme).
//
// knn_threshold: one block per query. Threads sum the chunk histograms per distance, one thread
// finds the threshold distance t (the k-th smallest) and the codes below it, then threads take one
// distance column each (d <= t) and turn its counts into output slot offsets in place
// (plan::column_to_offsets, the function the CPU tests run), with per-chunk quotas at t.
//
// knn_collect: the grid and the walk of knn_histogram, the codes read a second time. A code at a
// distance below its query's threshold takes the next slot of its (chunk, distance) range with an
// atomic increment; so do the codes at t of the chunks that take all of theirs. The one boundary
// chunk of a query (which takes only its first codes at t, by position) is walked afterwards in
// position order, a tile of 256 positions at a time, with a block-wide prefix sum giving each
// hit its rank. Every query's k slots are written exactly once; their order within a
// (chunk, distance) range is arbitrary, which the sort that follows removes.
//
// knn_finish: after the sort, each key becomes (distance, id) in the caller's (nq, k) layout,
// with (2147483647, -1) beyond the k_eff found.
#include <cub/block/block_scan.cuh>

#include <climits>

#include "code_words.cuh"
#include "launch.hpp"

namespace deephash::cuda::kernels {

namespace {

__global__ void __launch_bounds__(plan::kThreadsPerBlock)
    knn_threshold_kernel(std::uint32_t* __restrict__ hist, std::uint32_t* __restrict__ quota,
                         plan::QuerySelection* __restrict__ sel, std::uint32_t nchunks, int nbins,
                         std::uint64_t k_eff) {
  DH_EXTERN_SHARED(std::uint64_t, totals);  // nbins: counts, then the base offset of each distance
  __shared__ plan::QuerySelection s;
  const std::uint64_t q = blockIdx.x;
  std::uint32_t* h = hist + q * nchunks * static_cast<std::uint64_t>(nbins);
  std::uint32_t* qu = quota + q * nchunks;
  sum_chunk_histograms(h, nchunks, nbins, totals);
  __syncthreads();
  if (threadIdx.x == 0) {
    const plan::Threshold th = plan::select_threshold(totals, nbins, k_eff);
    s = plan::QuerySelection{th.t, plan::kNoChunk, th.below, th.take};
    std::uint64_t run = 0;
    for (std::uint32_t d = 0; d <= th.t; ++d) {
      const std::uint64_t v = totals[d];
      totals[d] = run;
      run += v;
    }
  }
  __syncthreads();
  const plan::QuerySelection local = s;
  __syncthreads();  // every thread holds its copy before column t's thread writes the boundary
  for (std::uint32_t d = threadIdx.x; d <= local.t; d += blockDim.x) {
    const std::uint32_t boundary = plan::column_to_offsets(h, qu, nbins, nchunks, d, local, totals[d]);
    if (d == local.t) s.boundary_chunk = boundary;  // the single thread of column t
  }
  __syncthreads();
  if (threadIdx.x == 0) sel[q] = s;
}

// How chunk c treats a query's codes at the threshold distance.
enum : std::uint8_t { kNoneAtT = 0, kAllAtT = 1, kBoundary = 2 };

template <int W>
__global__ void __launch_bounds__(plan::kThreadsPerBlock)
    knn_collect_kernel(const std::uint32_t* __restrict__ codes, std::uint64_t n, int words,
                       const std::uint32_t* __restrict__ queries, std::uint32_t nq, std::uint32_t qpb, int nbins,
                       std::uint32_t nchunks, std::uint32_t* __restrict__ offsets,
                       const std::uint32_t* __restrict__ quota, const plan::QuerySelection* __restrict__ sel,
                       std::uint64_t k_eff, std::uint64_t* __restrict__ keys) {
  using BlockScan = cub::BlockScan<std::uint32_t, plan::kThreadsPerBlock>;
  __shared__ typename BlockScan::TempStorage scan_tmp;
  __shared__ std::uint32_t st[plan::kMaxQueriesPerBlock];
  __shared__ std::uint8_t mode[plan::kMaxQueriesPerBlock];
  DH_EXTERN_SHARED(std::uint32_t, sq);
  const int wpc = W > 0 ? W : words;
  const std::uint32_t c = blockIdx.x;
  const std::uint32_t q0 = blockIdx.y * qpb;
  const std::uint32_t nqb = min(qpb, nq - q0);
  load_queries(sq, queries + static_cast<std::uint64_t>(q0) * wpc, nqb, wpc);
  for (std::uint32_t qi = threadIdx.x; qi < nqb; qi += blockDim.x) {
    const plan::QuerySelection s = sel[q0 + qi];
    st[qi] = s.t;
    mode[qi] = s.boundary_chunk == c ? kBoundary
                                     : (quota[static_cast<std::uint64_t>(q0 + qi) * nchunks + c] > 0 ? kAllAtT : kNoneAtT);
  }
  __syncthreads();
  const plan::Range r = plan::chunk_range(n, nchunks, c);
  auto cell = [&](std::uint32_t qi, std::uint32_t d) {
    return offsets + (static_cast<std::uint64_t>(q0 + qi) * nchunks + c) * nbins + d;
  };
  scan_rows<W>(codes, wpc, sq, nqb, r.begin, r.end, [&](std::uint32_t qi, std::uint32_t d, std::uint64_t pos) {
    const std::uint32_t t = st[qi];
    if (d < t || (d == t && mode[qi] == kAllAtT)) {
      const std::uint32_t slot = atomicAdd(cell(qi, d), 1u);
      keys[static_cast<std::uint64_t>(q0 + qi) * k_eff + slot] = plan::make_key(d, pos);
    }
  });
  // Boundary chunks: the first `need` codes at distance t, in position order.
  for (std::uint32_t qi = 0; qi < nqb; ++qi) {
    if (mode[qi] != kBoundary) continue;  // uniform over the block (shared memory)
    const std::uint32_t t = st[qi];
    const std::uint32_t need = quota[static_cast<std::uint64_t>(q0 + qi) * nchunks + c];
    const std::uint32_t start = *cell(qi, t);
    std::uint64_t* out = keys + static_cast<std::uint64_t>(q0 + qi) * k_eff + start;
    std::uint32_t running = 0;
    for (std::uint64_t base = r.begin; base < r.end && running < need; base += blockDim.x) {
      const std::uint64_t pos = base + threadIdx.x;
      std::uint32_t flag = 0;
      if (pos < r.end)
        flag = RowDistance<W>::of(codes + pos * static_cast<std::uint64_t>(wpc), sq + qi * wpc, wpc) == t ? 1u : 0u;
      std::uint32_t rank = 0, total = 0;
      BlockScan(scan_tmp).ExclusiveSum(flag, rank, total);
      if (flag && running + rank < need) out[running + rank] = plan::make_key(t, pos);
      running += total;
      __syncthreads();  // scan_tmp is reused by the next tile
    }
  }
}

__global__ void knn_finish_kernel(const std::uint64_t* __restrict__ sorted, std::uint32_t nq, std::uint64_t k_eff,
                                  std::uint64_t k, std::uint64_t row_stride, const std::int64_t* __restrict__ src_rows,
                                  const std::int64_t* __restrict__ dst_rows,
                                  const unsigned long long* __restrict__ counts, std::uint64_t cap,
                                  const std::int64_t* __restrict__ ids, std::int32_t* __restrict__ distances,
                                  std::int64_t* __restrict__ out_ids) {
  const std::uint64_t total = static_cast<std::uint64_t>(nq) * k;
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t q = i / k, j = i % k;
    if (counts && !plan::candidates_suffice(counts[src_rows ? src_rows[q] : q], k_eff, cap)) continue;
    const std::uint64_t o = (dst_rows ? static_cast<std::uint64_t>(dst_rows[q]) : q) * k + j;
    if (j < k_eff) {
      const std::uint64_t key = sorted[(src_rows ? static_cast<std::uint64_t>(src_rows[q]) : q) * row_stride + j];
      distances[o] = static_cast<std::int32_t>(plan::key_distance(key));
      out_ids[o] = ids[plan::key_position(key)];
    } else {
      distances[o] = INT_MAX;
      out_ids[o] = -1;
    }
  }
}

__global__ void uniform_offsets_kernel(std::int64_t* offsets, std::uint32_t nsegments, std::uint64_t length) {
  for (std::uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i <= nsegments; i += gridDim.x * blockDim.x)
    offsets[i] = static_cast<std::int64_t>(i * length);
}

}  // namespace

void knn_threshold(std::uint32_t* hist, std::uint32_t* quota, plan::QuerySelection* sel, std::uint32_t nq,
                   std::uint32_t nchunks, int nbins, std::uint64_t k_eff, cudaStream_t stream) {
  DH_LAUNCH(knn_threshold_kernel, nq, plan::kThreadsPerBlock, static_cast<std::size_t>(nbins) * 8, stream)(
      hist, quota, sel, nchunks, nbins, k_eff);
  check(cudaGetLastError(), "knn_threshold launch");
}

void knn_collect(const CodesView& codes, const QueriesView& queries, int nbins, std::uint32_t nchunks,
                 std::uint32_t* offsets, const std::uint32_t* quota, const plan::QuerySelection* sel,
                 std::uint64_t k_eff, std::uint64_t* keys, cudaStream_t stream) {
  const std::uint32_t qpb = queries.queries_per_block;
  const dim3 grid(nchunks, (queries.nq + qpb - 1) / qpb);
  const std::size_t smem = static_cast<std::size_t>(qpb) * codes.words_per_code * 4;
  dispatch_width(codes.words_per_code, [&](auto w) {
    DH_LAUNCH(knn_collect_kernel<decltype(w)::value>, grid, plan::kThreadsPerBlock, smem, stream)(
        codes.words, codes.n, codes.words_per_code, queries.words, queries.nq, qpb, nbins, nchunks, offsets, quota,
        sel, k_eff, keys);
  });
  check(cudaGetLastError(), "knn_collect launch");
}

void knn_finish(const std::uint64_t* sorted, std::uint32_t nq, std::uint64_t k_eff, std::uint64_t k,
                std::uint64_t row_stride, const std::int64_t* src_rows, const std::int64_t* dst_rows,
                const unsigned long long* counts, std::uint64_t cap, const std::int64_t* ids,
                std::int32_t* distances, std::int64_t* out_ids, cudaStream_t stream) {
  DH_LAUNCH(knn_finish_kernel, grid_for(static_cast<std::uint64_t>(nq) * k), 256, 0, stream)(
      sorted, nq, k_eff, k, row_stride, src_rows, dst_rows, counts, cap, ids, distances, out_ids);
  check(cudaGetLastError(), "knn_finish launch");
}

void uniform_offsets(std::int64_t* offsets, std::uint32_t nsegments, std::uint64_t length, cudaStream_t stream) {
  DH_LAUNCH(uniform_offsets_kernel, grid_for(nsegments + 1ull), 256, 0, stream)(offsets, nsegments, length);
  check(cudaGetLastError(), "uniform_offsets launch");
}

}  // namespace deephash::cuda::kernels
