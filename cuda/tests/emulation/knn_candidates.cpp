// The kernel source compiled for the CPU emulation (see cuda_runtime.h beside this file).
#include "kernels/knn_candidates.cu"
