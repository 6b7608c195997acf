// The CUDA source compiled for the CPU emulation (see cuda_runtime.h beside this file).
#include "device.cu"
