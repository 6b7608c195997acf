#include <cuda_runtime.h>

#include <string>

#include "deephash_cuda/device.hpp"

namespace deephash::cuda {

int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error state
    return 0;
  }
  return n;
}

std::string device_name(int device) noexcept {
  try {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
      cudaGetLastError();
      return std::string();
    }
    return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
           std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
  } catch (...) {
    return std::string();
  }
}

std::string unavailable_reason() noexcept {
  try {
    int n = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err == cudaSuccess && n > 0) return std::string();
    cudaGetLastError();
    if (err == cudaSuccess || err == cudaErrorNoDevice) return "no CUDA device is visible";
    if (err == cudaErrorInsufficientDriver)
      return "no NVIDIA driver is loaded, or it is older than the CUDA runtime of this build (" +
             std::to_string(CUDART_VERSION / 1000) + "." + std::to_string(CUDART_VERSION % 1000 / 10) + ")";
    return std::string("no usable CUDA device: ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  } catch (...) {
    return "no usable CUDA device";
  }
}

int pointer_device(const void* p) noexcept {
  cudaPointerAttributes attr;
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged) ? attr.device : -1;
}

}  // namespace deephash::cuda
