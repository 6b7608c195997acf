// Device queries for the CUDA part of deephash (plain C++; no CUDA headers needed to include it).
#pragma once

#include <string>

namespace deephash::cuda {

// Number of usable CUDA devices; 0 on any CUDA error (no driver, no device, ...). Never throws.
int device_count() noexcept;

// "NAME (sm_XY, N MiB)" for a device, or an empty string when it cannot be queried.
std::string device_name(int device) noexcept;

}  // namespace deephash::cuda
