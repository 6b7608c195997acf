// A CPU stand-in for the parts of the CUDA runtime and language the kernels of cuda/src/kernels/
// use, so that those kernel sources compile with a C++ compiler and run on the CPU in the tests
// (test_kernels_emulated.cpp): a launch runs the grid's blocks one after another, each block as
// blockDim.x fibers switched at __syncthreads() (every thread of the block must reach it, as on
// a GPU), shared memory shared by the block's threads. It checks the kernels' logic (indexing, chunk
// bounds, slot offsets, the boundary chunk's ordered pass, shared-memory layouts), not GPU timing
// or memory-model details. Used only by tests; never part of the library.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
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

using cudaStream_t = void*;
enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline const char* cudaGetErrorName(cudaError_t) { return "cudaSuccess"; }
inline const char* cudaGetErrorString(cudaError_t) { return "no error"; }

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
