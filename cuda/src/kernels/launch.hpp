// Host entry points of the CUDA kernels (each defined in its own .cu file of this folder, whose
// header comment gives its plan). Codes and queries live on the device as rows of 32-bit words
// (the code's bytes, zero padding up to a whole word): padding adds nothing to a distance, and
// every width reads aligned words. Every launcher checks the launch and throws CudaError.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "../select_plan.hpp"

// Kernel launches and dynamic shared memory go through these two macros, so that the CPU
// emulation of cuda/tests/emulation/ can run the very same kernel sources.
#ifndef DH_LAUNCH
#define DH_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#define DH_EXTERN_SHARED(type, name) extern __shared__ type name[]
#endif

namespace deephash::cuda::kernels {

struct CodesView {
  const std::uint32_t* words;  // n rows of words_per_code words, in increasing id order
  std::uint64_t n;
  int words_per_code;
};

struct QueriesView {
  const std::uint32_t* words;  // nq rows of words_per_code words
  std::uint32_t nq;
  std::uint32_t queries_per_block;
};

// Blocks of 256 threads for a grid-stride loop over `items` (at least 1, at most 65535).
inline unsigned grid_for(std::uint64_t items) {
  const std::uint64_t blocks = (items + 255) / 256;
  return static_cast<unsigned>(blocks < 65535 ? (blocks < 1 ? 1 : blocks) : 65535);
}

// Throws CudaError (GpuOutOfMemory for cudaErrorMemoryAllocation) naming `what` when err is not
// cudaSuccess.
void check(cudaError_t err, const char* what);

// ---- k-NN by counting (knn_histogram.cu, knn_select.cu) ---------------------------------------
// hist: [nq][nchunks][nbins] counts of codes per distance, per chunk.
void knn_histogram(const CodesView& codes, const QueriesView& queries, int nbins, std::uint32_t nchunks,
                   std::uint32_t* hist, cudaStream_t stream);
// Per query: the threshold, slot offsets in place of the counts, quotas [nq][nchunks], selection.
void knn_threshold(std::uint32_t* hist, std::uint32_t* quota, plan::QuerySelection* sel, std::uint32_t nq,
                   std::uint32_t nchunks, int nbins, std::uint64_t k_eff, cudaStream_t stream);
// Writes each query's k_eff selected keys (distance, position) into keys[q * k_eff ...].
void knn_collect(const CodesView& codes, const QueriesView& queries, int nbins, std::uint32_t nchunks,
                 std::uint32_t* offsets, const std::uint32_t* quota, const plan::QuerySelection* sel,
                 std::uint64_t k_eff, std::uint64_t* keys, cudaStream_t stream);
// Sorted keys -> (distance, id) rows of k; columns k_eff .. k - 1 get the missing-result padding.
// Entry q reads sorted row src_rows[q] (row_stride keys apart) and writes result row dst_rows[q];
// a null mapping is the identity. With candidate counts, a row whose candidates do not hold its
// answer (plan::candidates_suffice false) is skipped: the counting fallback writes it.
void knn_finish(const std::uint64_t* sorted, std::uint32_t nq, std::uint64_t k_eff, std::uint64_t k,
                std::uint64_t row_stride, const std::int64_t* src_rows, const std::int64_t* dst_rows,
                const unsigned long long* counts, std::uint64_t cap, const std::int64_t* ids,
                std::int32_t* distances, std::int64_t* out_ids, cudaStream_t stream);

// ---- one pass for small k (knn_candidates.cu) ---------------------------------------------------
// radius[q] from the histogram of the sample ([nq][sample_chunks][nbins], knn_histogram's layout).
void knn_estimate(const std::uint32_t* sample_hist, std::uint32_t nq, std::uint32_t sample_chunks, int nbins,
                  std::uint64_t sample_n, std::uint64_t n, std::uint64_t k_eff, std::uint32_t* radius,
                  cudaStream_t stream);
// Sort segments of the candidates: [q * cap, q * cap + count) for a query whose candidates hold
// its answer, empty otherwise (bounds: nq begins, then nq ends).
void candidate_segments(const unsigned long long* counts, std::uint32_t nq, std::uint64_t cap, std::uint64_t k_eff,
                        std::int64_t* bounds, cudaStream_t stream);
// Every code within radius[q] of query q: counts[q] += 1, key stored at keys[q * cap + slot] while
// slot < cap. counts must start at zero.
void knn_candidates(const CodesView& codes, const QueriesView& queries, std::uint32_t nchunks,
                    const std::uint32_t* radius, std::uint64_t cap, unsigned long long* counts,
                    std::uint64_t* keys, cudaStream_t stream);
// The answers of the queries whose candidates suffice and number at most kRankMaxCandidates,
// ranked in shared memory and written as (distance, id) to distances / out_ids ((nq, k) rows,
// padded from k_eff); other queries' rows are left as they are.
void knn_rank_finish(const std::uint64_t* keys, const unsigned long long* counts, std::uint32_t nq, std::uint64_t cap,
                     std::uint64_t k_eff, std::uint64_t k, const std::int64_t* ids, std::int32_t* distances,
                     std::int64_t* out_ids, cudaStream_t stream);
// offsets[i] = i * length for i in [0, nsegments]: uniform sort segments.
void uniform_offsets(std::int64_t* offsets, std::uint32_t nsegments, std::uint64_t length, cudaStream_t stream);

// ---- range search in two passes (range_scan.cu) -------------------------------------------------
// counts[q * nchunks + c] = codes of chunk c within radius of query q.
void range_count(const CodesView& codes, const QueriesView& queries, std::uint32_t radius, std::uint32_t nchunks,
                 unsigned long long* counts, cudaStream_t stream);
// cursors start as the exclusive prefix sums of the counts; each hit takes the next slot of its
// (query, chunk) range.
void range_fill(const CodesView& codes, const QueriesView& queries, std::uint32_t radius, std::uint32_t nchunks,
                unsigned long long* cursors, std::uint64_t* keys, cudaStream_t stream);
// lims[q] = offsets[q * nchunks] (q < nq), lims[nq] = total.
void range_limits(const unsigned long long* offsets, std::uint32_t nq, std::uint32_t nchunks, std::uint64_t total,
                  std::int64_t* lims, cudaStream_t stream);
// keys -> distances and ids (ids by position).
void keys_to_results(const std::uint64_t* keys, std::uint64_t count, const std::int64_t* ids,
                     std::int32_t* distances, std::int64_t* out_ids, cudaStream_t stream);

// ---- storage (rows.cu) ------------------------------------------------------------------------
// out[i] = row src[i] of the concatenation of a (na rows) and b: how adds and removes rebuild the
// id-ordered arrays on the device.
void gather_rows(const std::uint32_t* a, std::uint64_t na, const std::uint32_t* b, const std::int64_t* src,
                 std::uint64_t n, int words_per_code, std::uint32_t* out, cudaStream_t stream);
void gather_ids(const std::int64_t* a, std::uint64_t na, const std::int64_t* b, const std::int64_t* src,
                std::uint64_t n, std::int64_t* out, cudaStream_t stream);

// ---- CUB (sort.cu) ----------------------------------------------------------------------------
std::size_t segmented_sort_bytes(std::uint64_t items, std::uint32_t segments, const std::int64_t* begin,
                                 const std::int64_t* end);
void segmented_sort(void* temp, std::size_t temp_bytes, const std::uint64_t* in, std::uint64_t* out,
                    std::uint64_t items, std::uint32_t segments, const std::int64_t* begin, const std::int64_t* end,
                    cudaStream_t stream);
std::size_t exclusive_sum_bytes(std::uint64_t items);
void exclusive_sum(void* temp, std::size_t temp_bytes, const unsigned long long* in, unsigned long long* out,
                   std::uint64_t items, cudaStream_t stream);

}  // namespace deephash::cuda::kernels
