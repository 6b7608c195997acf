// A CPU stand-in for the parts of the CUDA runtime and language the kernels of cuda/src/kernels/
// use, so that those kernel sources compile with a C++ compiler and run on the CPU in the tests
// (test_kernels_emulated.cpp): a launch runs the grid's blocks one after another, each block as
// blockDim.x fibers switched at __syncthreads() (every thread of the block must reach it, as on
// a GPU), shared memory shared by the block's threads. It checks the kernels' logic (indexing, chunk
// bounds, slot offsets, the boundary chunk's ordered pass, shared-memory layouts), not GPU timing
// or memory-model details. The runtime calls GpuFlatIndex makes (allocation, copies, streams,
// device queries) are emulated too, with host memory, so the whole index runs on the CPU in the
// tests. Used only by tests; never part of the library.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <tuple>
#include <ucontext.h>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3() = default;
  dim3(unsigned a, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
struct uint2 {
  std::uint32_t x, y;
};
struct uint4 {
  std::uint32_t x, y, z, w;
};

inline dim3 threadIdx;
inline dim3 blockIdx, blockDim, gridDim;

// ---- the runtime API GpuFlatIndex calls: host memory stands in for device memory ------------
// One emulated device. Allocations are counted against a settable capacity, so that running out
// of device memory can be tested; "device" pointers are host pointers, copies are memcpy.
using cudaStream_t = void*;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidDevice = 101,
  cudaErrorNoDevice = 100,
  cudaErrorInsufficientDriver = 35,
};
enum cudaMemcpyKind { cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };
enum cudaMemoryType { cudaMemoryTypeUnregistered, cudaMemoryTypeHost, cudaMemoryTypeDevice, cudaMemoryTypeManaged };
enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount };
inline constexpr unsigned cudaStreamNonBlocking = 1;
#define CUDART_VERSION 13000

struct cudaDeviceProp {
  char name[256];
  int major, minor;
  std::size_t totalGlobalMem;
};
struct cudaPointerAttributes {
  cudaMemoryType type;
  int device;
};

namespace emu {
struct DeviceMemory {
  std::size_t capacity = std::size_t{1} << 32;  // 4 GiB unless a test says otherwise
  std::size_t used = 0;
  std::map<const void*, std::size_t> blocks;     // every live allocation and its size
};
inline DeviceMemory& device_memory() {
  static DeviceMemory m;
  return m;
}
inline std::mutex& runtime_mutex() {  // emulated calls from several host threads take turns
  static std::mutex mu;
  return mu;
}
inline int& sm_count() {
  static int n = 4;
  return n;
}
inline bool is_device_pointer(const void* p) {
  std::lock_guard<std::mutex> lock(runtime_mutex());
  auto& m = device_memory().blocks;
  auto it = m.upper_bound(p);
  if (it == m.begin()) return false;
  --it;
  return static_cast<const char*>(p) < static_cast<const char*>(it->first) + it->second;
}
}  // namespace emu

inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorName(cudaError_t e) {
  return e == cudaErrorMemoryAllocation ? "cudaErrorMemoryAllocation" : e ? "cudaError" : "cudaSuccess";
}
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaErrorMemoryAllocation ? "out of memory" : "emulated"; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int d) { return d == 0 ? cudaSuccess : cudaErrorInvalidDevice; }
inline cudaError_t cudaGetDevice(int* d) {
  *d = 0;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return cudaErrorInvalidDevice;
  std::snprintf(p->name, sizeof(p->name), "CPU emulation");
  p->major = 9;
  p->minor = 0;
  p->totalGlobalMem = emu::device_memory().capacity;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr, int) {
  *v = emu::sm_count();
  return cudaSuccess;
}
inline cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total) {
  *total = emu::device_memory().capacity;
  *free_bytes = *total - emu::device_memory().used;
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
  static char token;
  *s = &token;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  std::lock_guard<std::mutex> lock(emu::runtime_mutex());
  emu::DeviceMemory& m = emu::device_memory();
  if (bytes > m.capacity - m.used) return cudaErrorMemoryAllocation;
  *p = std::malloc(bytes ? bytes : 1);
  m.used += bytes;
  m.blocks[*p] = bytes;
  return cudaSuccess;
}
inline cudaError_t cudaMallocAsync(void** p, std::size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }
inline cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lock(emu::runtime_mutex());
  emu::DeviceMemory& m = emu::device_memory();
  m.used -= m.blocks.at(p);
  m.blocks.erase(p);
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }
inline cudaError_t cudaMemsetAsync(void* p, int v, std::size_t n, cudaStream_t) {
  std::memset(p, v, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t n, cudaMemcpyKind, cudaStream_t) {
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy2DAsync(void* dst, std::size_t dpitch, const void* src, std::size_t spitch,
                                     std::size_t width, std::size_t height, cudaMemcpyKind, cudaStream_t) {
  for (std::size_t r = 0; r < height; ++r)
    std::memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
  return cudaSuccess;
}
using cudaMemPool_t = void*;
enum cudaMemPoolAttr { cudaMemPoolAttrReleaseThreshold };
inline cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* pool, int) {
  *pool = nullptr;
  return cudaSuccess;
}
inline cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t, cudaMemPoolAttr, void*) { return cudaSuccess; }
inline cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  a->type = emu::is_device_pointer(p) ? cudaMemoryTypeDevice : cudaMemoryTypeUnregistered;
  a->device = 0;
  return cudaSuccess;
}

inline int __popc(std::uint32_t x) { return __builtin_popcount(x); }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
inline std::uint32_t atomicAdd(std::uint32_t* p, std::uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }

namespace emu {

// The threads of a block are fibers (ucontext) run by one OS thread: each runs until it reaches
// __syncthreads() or ends, then the next one runs; when every fiber has arrived, all resume.
// Deterministic, and cheap enough to run every kernel over thousands of codes in the tests.
struct Fiber {
  ucontext_t ctx;
  bool done = false;
};

struct Scheduler {
  ucontext_t main;
  std::vector<Fiber> fibers;
  std::vector<std::vector<char>> stacks;
  unsigned current = 0;
  void (*entry)(void*) = nullptr;
  void* arg = nullptr;
};

inline Scheduler& scheduler() {
  static Scheduler s;
  return s;
}

inline void fiber_main() {
  Scheduler& s = scheduler();
  s.entry(s.arg);
  s.fibers[s.current].done = true;
  swapcontext(&s.fibers[s.current].ctx, &s.main);
}

inline void yield_to_scheduler() {
  Scheduler& s = scheduler();
  swapcontext(&s.fibers[s.current].ctx, &s.main);
}

inline std::vector<std::max_align_t>& dynamic_shared() {
  static std::vector<std::max_align_t> smem;
  return smem;
}

// Runs one block: `threads` fibers calling entry(arg), scheduled round-robin between barriers.
inline void run_block(unsigned threads, void (*entry)(void*), void* arg) {
  Scheduler& s = scheduler();
  s.entry = entry;
  s.arg = arg;
  s.fibers.assign(threads, Fiber{});
  if (s.stacks.size() < threads) s.stacks.resize(threads, std::vector<char>(256 * 1024));
  for (unsigned t = 0; t < threads; ++t) {
    getcontext(&s.fibers[t].ctx);
    s.fibers[t].ctx.uc_stack.ss_sp = s.stacks[t].data();
    s.fibers[t].ctx.uc_stack.ss_size = s.stacks[t].size();
    s.fibers[t].ctx.uc_link = nullptr;
    makecontext(&s.fibers[t].ctx, fiber_main, 0);
  }
  for (bool running = true; running;) {
    running = false;
    for (unsigned t = 0; t < threads; ++t) {
      if (s.fibers[t].done) continue;
      s.current = t;
      threadIdx = dim3(t);
      swapcontext(&s.main, &s.fibers[t].ctx);
      running = true;
    }
  }
}

// Runs kernel(args...) over the grid: blocks in order, each as block.x fibers.
template <class Kernel, class... Args>
struct Call {
  Kernel kernel;
  std::tuple<Args...> args;
  static void run(void* self) {
    Call* c = static_cast<Call*>(self);
    std::apply(c->kernel, c->args);
  }
};

template <class Kernel>
struct Bound {
  dim3 grid, block;
  std::size_t smem;
  Kernel kernel;
  template <class... Args>
  void operator()(Args... args) const {
    static std::mutex launch_mu;  // one launch at a time: the scheduler and indices are global
    std::lock_guard<std::mutex> lock(launch_mu);
    gridDim = grid;
    blockDim = block;
    dynamic_shared().assign(smem / sizeof(std::max_align_t) + 1, std::max_align_t{});
    Call<Kernel, Args...> call{kernel, std::tuple<Args...>(args...)};
    for (unsigned by = 0; by < grid.y; ++by) {
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        blockIdx = dim3(bx, by);
        run_block(block.x, &Call<Kernel, Args...>::run, &call);
      }
    }
  }
};

template <class Kernel>
Bound<Kernel> bind(dim3 grid, dim3 block, std::size_t smem, Kernel kernel) {
  return Bound<Kernel>{grid, block, smem, kernel};
}

}  // namespace emu

inline void __syncthreads() { emu::yield_to_scheduler(); }

#define DH_LAUNCH(kernel, grid, block, smem, stream) ::emu::bind(dim3(grid), dim3(block), (smem), &kernel)
#define DH_EXTERN_SHARED(type, name) type* name = reinterpret_cast<type*>(::emu::dynamic_shared().data())
