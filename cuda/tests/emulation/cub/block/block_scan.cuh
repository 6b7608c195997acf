// CPU stand-in for cub::BlockScan (the exclusive prefix sum over a block that knn_collect uses),
// for the kernel emulation of the tests (see ../../cuda_runtime.h).
#pragma once

#include "../../cuda_runtime.h"

namespace cub {

template <class T, int kThreads>
class BlockScan {
 public:
  struct TempStorage {
    T values[kThreads];
  };
  explicit BlockScan(TempStorage& tmp) : tmp_(tmp) {}
  void ExclusiveSum(T input, T& output, T& aggregate) {
    tmp_.values[threadIdx.x] = input;
    __syncthreads();
    T run = 0, all = 0;
    for (unsigned i = 0; i < blockDim.x; ++i) {
      if (i == threadIdx.x) run = all;
      all += tmp_.values[i];
    }
    output = run;
    aggregate = all;
    __syncthreads();
  }

 private:
  TempStorage& tmp_;
};

}  // namespace cub
