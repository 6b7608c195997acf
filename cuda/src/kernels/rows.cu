// Storage kernels: the device arrays (code rows and ids, in increasing id order) are rebuilt by a
// gather whenever an add interleaves ids or a remove drops rows. Row i of the output is row
// src[i] of the old array (src < na) or of the staged new rows (src >= na); one thread per word,
// so consecutive threads copy consecutive words.
#include "launch.hpp"

namespace deephash::cuda::kernels {

namespace {

__global__ void gather_rows_kernel(const std::uint32_t* __restrict__ a, std::uint64_t na,
                                   const std::uint32_t* __restrict__ b, const std::int64_t* __restrict__ src,
                                   std::uint64_t n, int words, std::uint32_t* __restrict__ out) {
  const std::uint64_t total = n * static_cast<std::uint64_t>(words);
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t row = i / words, w = i % words;
    const std::uint64_t s = static_cast<std::uint64_t>(src[row]);
    out[i] = s < na ? a[s * words + w] : b[(s - na) * words + w];
  }
}

__global__ void gather_ids_kernel(const std::int64_t* __restrict__ a, std::uint64_t na,
                                  const std::int64_t* __restrict__ b, const std::int64_t* __restrict__ src,
                                  std::uint64_t n, std::int64_t* __restrict__ out) {
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x) {
    const std::uint64_t s = static_cast<std::uint64_t>(src[i]);
    out[i] = s < na ? a[s] : b[s - na];
  }
}

}  // namespace

void gather_rows(const std::uint32_t* a, std::uint64_t na, const std::uint32_t* b, const std::int64_t* src,
                 std::uint64_t n, int words_per_code, std::uint32_t* out, cudaStream_t stream) {
  if (n == 0) return;
  DH_LAUNCH(gather_rows_kernel, grid_for(n * words_per_code), 256, 0, stream)(a, na, b, src, n, words_per_code, out);
  check(cudaGetLastError(), "gather_rows launch");
}

void gather_ids(const std::int64_t* a, std::uint64_t na, const std::int64_t* b, const std::int64_t* src,
                std::uint64_t n, std::int64_t* out, cudaStream_t stream) {
  if (n == 0) return;
  DH_LAUNCH(gather_ids_kernel, grid_for(n), 256, 0, stream)(a, na, b, src, n, out);
  check(cudaGetLastError(), "gather_ids launch");
}

}  // namespace deephash::cuda::kernels
