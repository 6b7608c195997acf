// Device queries for the CUDA part of deephash (plain C++; no CUDA headers needed to include it).
#pragma once

#include <string>

namespace deephash::cuda {

// Number of usable CUDA devices; 0 on any CUDA error (no driver, no device, ...). Never throws.
int device_count() noexcept;

// "NAME (sm_XY, N MiB)" for a device, or an empty string when it cannot be queried.
std::string device_name(int device) noexcept;

// Why no device can be used, in words ("no CUDA driver ...", "no CUDA device ..."); empty when
// at least one can.
std::string unavailable_reason() noexcept;

// The device whose memory `p` points into (device or managed memory), or -1 for host memory.
int pointer_device(const void* p) noexcept;

}  // namespace deephash::cuda
