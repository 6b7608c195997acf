// CPU stand-in for cuda/src/kernels/sort.cu (CUB's segmented sort and prefix sum) in the kernel
// emulation of the tests: std::sort per segment, a running sum. Same contract: a segmented sort
// writes only the items inside its segments.
#include <algorithm>
#include <cstring>

#include "kernels/launch.hpp"

namespace deephash::cuda::kernels {

std::size_t segmented_sort_bytes(std::uint64_t, std::uint32_t, const std::int64_t*, const std::int64_t*) { return 16; }

void segmented_sort(void*, std::size_t, const std::uint64_t* in, std::uint64_t* out, std::uint64_t, std::uint32_t segments,
                    const std::int64_t* begin, const std::int64_t* end, cudaStream_t) {
  for (std::uint32_t s = 0; s < segments; ++s) {
    std::copy(in + begin[s], in + end[s], out + begin[s]);
    std::sort(out + begin[s], out + end[s]);
  }
}

std::size_t exclusive_sum_bytes(std::uint64_t) { return 16; }

void exclusive_sum(void*, std::size_t, const unsigned long long* in, unsigned long long* out, std::uint64_t items,
                   cudaStream_t) {
  unsigned long long run = 0;
  for (std::uint64_t i = 0; i < items; ++i) {
    const unsigned long long v = in[i];
    out[i] = run;
    run += v;
  }
}

}  // namespace deephash::cuda::kernels
