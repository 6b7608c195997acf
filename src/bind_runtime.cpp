// SIMD level, threads, CUDA presence and build information.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "deephash/bank_products.hpp"
#include "deephash/common.hpp"
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

py::dict plan_dict(const kernels::WidthPlan& plan) {
  py::dict d;
  d["single"] = std::string(simd_level_name(plan.single->level));
  d["batch"] = std::string(simd_level_name(plan.batch->level));
  return d;
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
        "The forced SIMD level, or the best level this CPU runs when none is forced (each code "
        "width then runs the level measured fastest for it: see simd_plan).");
  m.def("available_simd_levels", [] { return names(available_simd_levels()); },
        "SIMD levels compiled into this build and supported by this CPU, from scalar upwards.");
  m.def("set_simd_level", &set_simd_level, py::arg("name"),
        "Force one SIMD level for every code width: 'scalar', 'avx2', 'avx512' or 'neon'; 'auto' "
        "goes back to each width's measured plan (see simd_plan).");
  m.def("simd_plan", [](py::object nbits) -> py::dict {
    py::dict out;
    if (nbits.is_none()) {
      for (const auto& [cs, plan] : simd_plans()) out[py::int_(8 * cs)] = plan_dict(plan);
      return out;
    }
    const std::int64_t bits = nbits.cast<std::int64_t>();
    check_nbits(bits);
    py::gil_scoped_release release;
    const kernels::WidthPlan plan = kernels::plan_for(code_size_for(bits));
    py::gil_scoped_acquire acquire;
    return plan_dict(plan);
  }, py::arg("nbits") = py::none(),
        "The kernels each code width runs: {'single': level, 'batch': level} for one query at a time "
        "and for groups of queries. With nbits, that width's plan (a length that is not whole bytes runs "
        "the plan of its ceil(nbits / 8) bytes; measured now if it was not yet: "
        "well under a millisecond); without, {nbits: plan} for every width measured so far in this "
        "process. While a level is forced (DEEPHASH_SIMD or set_simd_level) every width runs it.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"),
        "Bound the number of threads the core uses (>= 1); the default is all cores.");
  m.def("get_num_threads", &get_num_threads, "Number of threads the core uses.");
  m.def("set_thread_spin", [](const py::handle& us) { set_thread_spin(int_arg(us, "microseconds")); },
        py::arg("microseconds"),
        "How long (microseconds, default 200, at most 100000) the core's idle threads poll for the next parallel "
        "call before they sleep. A thread woken from sleep joins a call late (up to a millisecond on a virtual "
        "machine); a process whose searches come less than this apart (a service) keeps its threads ready by "
        "raising it, at the price of an idle core polling that long after each call.");
  m.def("get_thread_spin", &get_thread_spin, "The core threads' polling time in microseconds (set_thread_spin).");
  m.def("cuda_device_count", &cuda_device_count,
        "Number of usable CUDA devices (0 when the build has no CUDA or on any CUDA error).");
  m.def("build_info", [] {
    py::dict info;
    info["version"] = DEEPHASH_VERSION;
    info["compiled_simd_levels"] = names(compiled_simd_levels());
    info["available_simd_levels"] = names(available_simd_levels());
    info["simd_level"] = std::string(simd_level_name(simd_level()));
    info["simd_forced"] = simd_level_forced();
    py::dict plans;
    for (const auto& [cs, plan] : simd_plans()) plans[py::int_(8 * cs)] = plan_dict(plan);
    info["simd_plan"] = plans;
    info["num_threads"] = get_num_threads();
    // the AMX products of the training losses' memory banks (bank_products.hpp)
    info["bank_products"] = bank_products_available();
    info["bank_products_reason"] = std::string(bank_products_unavailable_reason());
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
  }, "Version, SIMD levels (compiled, available, in use), threads, the AMX bank products of training "
     "(and why not), CUDA support and compiler.");
}

}  // namespace deephash::py_bind
