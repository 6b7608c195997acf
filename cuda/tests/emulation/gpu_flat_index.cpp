// The CUDA source compiled for the CPU emulation (see cuda_runtime.h beside this file).
#include "gpu_flat_index.cu"
