// SIMD level, threads, CUDA presence and build information.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bind_common.hpp"
#include "deephash/simd.hpp"
#include "deephash/threads.hpp"

#ifdef DEEPHASH_WITH_CUDA
#include "deephash_cuda/device.hpp"
#endif

namespace deephash::py_bind {

namespace {
std::vector<std::string> names(const std::vector<SimdLevel>& levels) {
  std::vector<std::string> out;
  for (SimdLevel l : levels) out.emplace_back(simd_level_name(l));
  return out;
}

int cuda_device_count() noexcept {
#ifdef DEEPHASH_WITH_CUDA
  return deephash::cuda::device_count();
#else
  return 0;
#endif
}
}  // namespace

void bind_runtime(py::module_& m) {
  m.def("simd_level", [] { return std::string(simd_level_name(simd_level())); },
        "Name of the SIMD level the Hamming kernels use now.");
  m.def("available_simd_levels", [] { return names(available_simd_levels()); },
        "SIMD levels compiled into this build and supported by this CPU, from scalar upwards.");
  m.def("set_simd_level", &set_simd_level, py::arg("name"),
        "Select the SIMD level: 'scalar', 'avx2', 'avx512', 'neon' or 'auto' (the best available).");
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Bound the number of threads the core uses (>= 1); the default is all cores.");
  m.def("get_num_threads", &num_threads, "Number of threads the core uses.");
  m.def("cuda_device_count", &cuda_device_count,
        "Number of usable CUDA devices (0 when the build has no CUDA or on any CUDA error).");
  m.def("build_info", [] {
    py::dict info;
    info["version"] = DEEPHASH_VERSION;
    info["compiled_simd_levels"] = names(compiled_simd_levels());
    info["available_simd_levels"] = names(available_simd_levels());
    info["simd_level"] = std::string(simd_level_name(simd_level()));
    info["num_threads"] = num_threads();
#ifdef DEEPHASH_WITH_CUDA
    info["cuda"] = true;
    info["cuda_version"] = DEEPHASH_CUDA_VERSION;
    info["cuda_archs"] = std::string(DEEPHASH_CUDA_ARCHS);
    info["cuda_device_count"] = deephash::cuda::device_count();
#else
    info["cuda"] = false;
    info["cuda_version"] = py::none();
    info["cuda_archs"] = py::none();
    info["cuda_device_count"] = 0;
#endif
#if defined(__clang__)
    info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    info["compiler"] = std::string("gcc ") + __VERSION__;
#else
    info["compiler"] = "unknown";
#endif
    return info;
  }, "Version, SIMD levels (compiled, available, in use), threads, CUDA support and compiler.");
}

}  // namespace deephash::py_bind
