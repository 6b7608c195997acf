// CUB primitives the searches use: a segmented sort of 64-bit keys (one segment per query; keys
// are (distance, position), so the sort gives the (distance, id) order) and an exclusive prefix
// sum of 64-bit counts (range search offsets). Both need a workspace the caller allocates.
#include <cub/device/device_scan.cuh>
#include <cub/device/device_segmented_sort.cuh>

#include "launch.hpp"

namespace deephash::cuda::kernels {

std::size_t segmented_sort_bytes(std::uint64_t items, std::uint32_t segments, const std::int64_t* begin,
                                 const std::int64_t* end) {
  std::size_t bytes = 0;
  check(cub::DeviceSegmentedSort::SortKeys(nullptr, bytes, static_cast<const std::uint64_t*>(nullptr),
                                           static_cast<std::uint64_t*>(nullptr), static_cast<std::int64_t>(items),
                                           static_cast<std::int64_t>(segments), begin, end),
        "segmented sort workspace");
  return bytes;
}

void segmented_sort(void* temp, std::size_t temp_bytes, const std::uint64_t* in, std::uint64_t* out,
                    std::uint64_t items, std::uint32_t segments, const std::int64_t* begin, const std::int64_t* end,
                    cudaStream_t stream) {
  if (items == 0) return;
  check(cub::DeviceSegmentedSort::SortKeys(temp, temp_bytes, in, out, static_cast<std::int64_t>(items),
                                           static_cast<std::int64_t>(segments), begin, end, stream),
        "segmented sort");
}

std::size_t exclusive_sum_bytes(std::uint64_t items) {
  std::size_t bytes = 0;
  check(cub::DeviceScan::ExclusiveSum(nullptr, bytes, static_cast<const unsigned long long*>(nullptr),
                                      static_cast<unsigned long long*>(nullptr), static_cast<std::int64_t>(items)),
        "prefix sum workspace");
  return bytes;
}

void exclusive_sum(void* temp, std::size_t temp_bytes, const unsigned long long* in, unsigned long long* out,
                   std::uint64_t items, cudaStream_t stream) {
  if (items == 0) return;
  check(cub::DeviceScan::ExclusiveSum(temp, temp_bytes, in, out, static_cast<std::int64_t>(items), stream),
        "prefix sum");
}

}  // namespace deephash::cuda::kernels
