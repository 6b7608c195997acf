// Device helpers shared by the scan kernels: a code held in registers as W 32-bit words (W known at
// compile time for the specialised widths), its Hamming distance to a query row, and the dispatch
// from a run-time word count to the specialised kernels (others take the generic path, W = 0).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

namespace deephash::cuda::kernels {

template <int W>
struct CodeRegs {
  std::uint32_t w[W];
  __device__ __forceinline__ void load(const std::uint32_t* __restrict__ row) {
    if constexpr (W % 4 == 0) {
      const uint4* p = reinterpret_cast<const uint4*>(row);
#pragma unroll
      for (int i = 0; i < W / 4; ++i) {
        const uint4 v = __ldg(p + i);
        w[4 * i] = v.x;
        w[4 * i + 1] = v.y;
        w[4 * i + 2] = v.z;
        w[4 * i + 3] = v.w;
      }
    } else if constexpr (W % 2 == 0) {
      const uint2* p = reinterpret_cast<const uint2*>(row);
#pragma unroll
      for (int i = 0; i < W / 2; ++i) {
        const uint2 v = __ldg(p + i);
        w[2 * i] = v.x;
        w[2 * i + 1] = v.y;
      }
    } else {
#pragma unroll
      for (int i = 0; i < W; ++i) w[i] = __ldg(row + i);
    }
  }
  __device__ __forceinline__ std::uint32_t distance(const std::uint32_t* q) const {
    std::uint32_t d = 0;
#pragma unroll
    for (int i = 0; i < W; ++i) d += __popc(w[i] ^ q[i]);
    return d;
  }
};

// Generic width: words read from memory for each query (kept in L1 across the query loop).
__device__ __forceinline__ std::uint32_t distance_generic(const std::uint32_t* __restrict__ row,
                                                          const std::uint32_t* q, int words) {
  std::uint32_t d = 0;
  for (int i = 0; i < words; ++i) d += __popc(__ldg(row + i) ^ q[i]);
  return d;
}

// Calls f(std::integral_constant<int, W>{}) with W the specialised word count for `words`
// (1 word: codes up to 32 bits; 2: 64; 4: 128; 8: 256; 16: 512; 32: 1024), else W = 0.
template <class F>
void dispatch_width(int words, F&& f) {
  switch (words) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 16: f(std::integral_constant<int, 16>{}); break;
    case 32: f(std::integral_constant<int, 32>{}); break;
    default: f(std::integral_constant<int, 0>{}); break;
  }
}

// The distance of the code at `row` to query row `q` (in shared memory), for width W.
template <int W>
struct RowDistance {
  __device__ __forceinline__ static std::uint32_t of(const std::uint32_t* __restrict__ row, const std::uint32_t* q,
                                                     int words) {
    if constexpr (W > 0) {
      CodeRegs<W> c;
      c.load(row);
      return c.distance(q);
    } else {
      return distance_generic(row, q, words);
    }
  }
};

// Copies `nqb` query rows (words each) from global into shared memory (the caller syncs).
__device__ __forceinline__ void load_queries(std::uint32_t* sq, const std::uint32_t* __restrict__ queries,
                                             std::uint32_t nqb, int words) {
  for (std::uint32_t i = threadIdx.x; i < nqb * static_cast<std::uint32_t>(words); i += blockDim.x) sq[i] = queries[i];
}

// totals[d] = the sum over chunks of hist[c * nbins + d], for d < nbins (the block's threads share
// the distances). The loads of a distance's column are unrolled so that many are in flight: one at
// a time, a column of a thousand chunks took about 100 us (one L2 round trip per chunk).
__device__ __forceinline__ void sum_chunk_histograms(const std::uint32_t* __restrict__ hist, std::uint32_t nchunks,
                                                     int nbins, std::uint64_t* totals) {
  for (int d = threadIdx.x; d < nbins; d += blockDim.x) {
    const std::uint32_t* col = hist + d;
    std::uint64_t total = 0;
#pragma unroll 16
    for (std::uint32_t c = 0; c < nchunks; ++c) total += col[static_cast<std::uint64_t>(c) * nbins];
    totals[d] = total;
  }
}

// Rows a thread loads before it computes any distance, so that at least 32 bytes per thread are in
// flight: one 8-byte row at a time keeps too few loads outstanding to reach the device memory's
// bandwidth with one query (the scan is then latency-bound, not bandwidth-bound).
template <int W>
inline constexpr int kRowsInFlight = W == 1 ? 8 : W == 2 ? 4 : W == 4 ? 2 : 1;

// The block's threads walk positions [begin, end) with a stride of the block size (consecutive
// threads read consecutive rows: coalesced), each code read once for all `nqb` queries in shared
// memory; on(qi, distance, position) is called for every pair. A thread loads kRowsInFlight rows
// (a stride apart) before using them, so the order of the calls within a thread is not position
// order: every caller assigns slots by atomics or counts, and sorts afterwards.
template <int W, class OnPair>
__device__ __forceinline__ void scan_rows(const std::uint32_t* __restrict__ codes, int words, const std::uint32_t* sq,
                                          std::uint32_t nqb, std::uint64_t begin, std::uint64_t end, OnPair&& on) {
  const std::uint64_t stride = blockDim.x;
  std::uint64_t pos = begin + threadIdx.x;
  if constexpr (W > 0) {
    constexpr int U = kRowsInFlight<W>;
    for (; pos + (U - 1) * stride < end; pos += U * stride) {
      CodeRegs<W> c[U];
#pragma unroll
      for (int u = 0; u < U; ++u) c[u].load(codes + (pos + u * stride) * W);
#pragma unroll
      for (int u = 0; u < U; ++u)
        for (std::uint32_t qi = 0; qi < nqb; ++qi) on(qi, c[u].distance(sq + qi * W), pos + u * stride);
    }
    for (; pos < end; pos += stride) {
      CodeRegs<W> c;
      c.load(codes + pos * W);
      for (std::uint32_t qi = 0; qi < nqb; ++qi) on(qi, c.distance(sq + qi * W), pos);
    }
  } else {
    for (; pos < end; pos += stride) {
      const std::uint32_t* row = codes + pos * static_cast<std::uint64_t>(words);
      for (std::uint32_t qi = 0; qi < nqb; ++qi) on(qi, distance_generic(row, sq + qi * words, words), pos);
    }
  }
}

}  // namespace deephash::cuda::kernels
