// GpuFlatIndex and BinaryIndex.to_gpu (builds with CUDA only; python/deephash_engine/gpu.py gives
// the same names a clear error in builds without it). Queries may be NumPy arrays (results come
// back as NumPy), CuPy arrays or PyTorch CUDA tensors (k-NN results then come back as arrays of the
// same library on the same device, without a copy), or other arrays on a CUDA device, DLPack
// producers or with __cuda_array_interface__ (JAX, Numba, ...: read through a CuPy view; results
// as CuPy arrays).
#ifdef DEEPHASH_WITH_CUDA

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bind_common.hpp"
#include "bind_index_ops.hpp"
#include "deephash/index.hpp"
#include "deephash_cuda/device.hpp"
#include "deephash_cuda/gpu_flat_index.hpp"

namespace deephash::py_bind {

namespace {

using cuda::GpuFlatIndex;

// A C-contiguous (n, code_size) uint8 array in device memory, described by
// __cuda_array_interface__; data is 0 when obj is not such an array.
struct DeviceCodes {
  std::uintptr_t data = 0;
  std::size_t n = 0;
  py::object owner;  // keeps the array alive for the call
};

DeviceCodes device_codes_arg(const py::handle& obj, const char* name, const GpuFlatIndex& index) {
  DeviceCodes out;
  if (!py::hasattr(obj, "__cuda_array_interface__")) return out;
  const py::dict cai = obj.attr("__cuda_array_interface__");
  const std::string typestr = cai["typestr"].cast<std::string>();
  if (typestr != "|u1")
    throw py::type_error(std::string(name) + " must be uint8 codes, got a device array of type " + typestr);
  const py::tuple shape = cai["shape"];
  const std::size_t cs = index.code_size();
  std::size_t n = 0;
  if (shape.size() == 2) {
    n = shape[0].cast<std::size_t>();
    if (shape[1].cast<std::size_t>() != cs)
      throw py::value_error(std::string(name) + " must have " + std::to_string(cs) + " bytes per code, got " +
                            std::to_string(shape[1].cast<std::size_t>()));
  } else if (shape.size() == 1 && shape[0].cast<std::size_t>() == cs) {
    n = 1;
  } else {
    throw py::value_error(std::string(name) + " must have shape (n, " + std::to_string(cs) + ")");
  }
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    const py::tuple strides = cai["strides"];
    const bool contiguous = shape.size() == 1 ? strides[0].cast<std::size_t>() == 1
                                              : (n <= 1 || strides[0].cast<std::size_t>() == cs) &&
                                                    strides[1].cast<std::size_t>() == 1;
    if (!contiguous) throw py::value_error(std::string(name) + " must be C-contiguous on the device");
  }
  out.data = py::tuple(cai["data"])[0].cast<std::uintptr_t>();
  out.n = n;
  out.owner = py::reinterpret_borrow<py::object>(obj);
  if (n > 0) {
    const int dev = cuda::pointer_device(reinterpret_cast<const void*>(out.data));
    if (dev != index.device())
      throw py::value_error(std::string(name) + " lives on " + (dev < 0 ? std::string("the host") : "device " + std::to_string(dev)) +
                            ", the index on device " + std::to_string(index.device()));
  }
  return out;
}

// An empty (nq, k) array of `dtype` made by the library of `like`, on the index's device.
py::object empty_like_library(const py::handle& like, std::size_t nq, std::size_t k, const char* dtype, int device) {
  const std::string module = py::str(py::type::of(like).attr("__module__"));
  const py::tuple shape = py::make_tuple(nq, k);
  if (module.rfind("cupy", 0) == 0) {
    py::module_ cupy = py::module_::import("cupy");
    py::object ctx = cupy.attr("cuda").attr("Device")(device);
    ctx.attr("__enter__")();
    py::object a = cupy.attr("empty")(shape, py::arg("dtype") = dtype);
    ctx.attr("__exit__")(py::none(), py::none(), py::none());
    return a;
  }
  if (module.rfind("torch", 0) == 0) {
    py::module_ torch = py::module_::import("torch");
    return torch.attr("empty")(shape, py::arg("dtype") = torch.attr(dtype), py::arg("device") = like.attr("device"));
  }
  throw py::type_error("device queries must be a CuPy array or a PyTorch CUDA tensor, got " + module + "." +
                       py::str(py::type::of(like).attr("__name__")).cast<std::string>());
}

// True when `obj` comes from a library whose arrays the results are made by (CuPy, PyTorch).
bool results_library(const py::handle& obj) {
  const std::string module = py::str(py::type::of(obj).attr("__module__"));
  return module.rfind("cupy", 0) == 0 || module.rfind("torch", 0) == 0;
}

// A device array to search with: obj itself when it is a CuPy array or a PyTorch CUDA tensor; a
// CuPy view of it, without a copy, when it is another array on a CUDA device (JAX, Numba, ...),
// read through DLPack where it speaks it, else through __cuda_array_interface__; None for host data.
py::object device_array(const py::handle& obj) {
  const bool cai = py::hasattr(obj, "__cuda_array_interface__");
  if (cai && results_library(obj)) return py::reinterpret_borrow<py::object>(obj);
  bool dlpack_cuda = false;
  if (py::hasattr(obj, "__dlpack_device__")) {
    const py::tuple where = obj.attr("__dlpack_device__")();
    dlpack_cuda = where[0].cast<int>() == 2;  // kDLCUDA
  }
  if (!dlpack_cuda && !cai) return py::none();
  py::module_ cupy;
  try {
    cupy = py::module_::import("cupy");
  } catch (const py::error_already_set&) {
    throw py::type_error("device queries other than CuPy arrays and PyTorch CUDA tensors are read through CuPy "
                         "without a copy, which is not installed; got " +
                         py::str(py::type::of(obj).attr("__module__")).cast<std::string>() + "." +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>() +
                         ": install CuPy, or pass a CuPy array or a PyTorch CUDA tensor");
  }
  return dlpack_cuda ? cupy.attr("from_dlpack")(obj) : cupy.attr("asarray")(obj);
}

std::uintptr_t device_pointer(const py::object& a) {
  return py::tuple(a.attr("__cuda_array_interface__")["data"])[0].cast<std::uintptr_t>();
}

py::tuple search(const GpuFlatIndex& index, const py::handle& queries_obj, const py::handle& k_obj) {
  const std::int64_t k = k_arg(k_obj);
  const py::object on_device = device_array(queries_obj);
  if (!on_device.is_none()) {
    const DeviceCodes dq = device_codes_arg(on_device, "queries", index);
    py::object D = empty_like_library(on_device, dq.n, static_cast<std::size_t>(k), "int32", index.device());
    py::object I = empty_like_library(on_device, dq.n, static_cast<std::size_t>(k), "int64", index.device());
    auto* d = reinterpret_cast<dist_t*>(device_pointer(D));
    auto* i = reinterpret_cast<idx_t*>(device_pointer(I));
    {
      py::gil_scoped_release release;
      index.search(reinterpret_cast<const std::uint8_t*>(dq.data), dq.n, static_cast<std::size_t>(k), d, i, true);
    }
    return py::make_tuple(D, I);
  }
  auto queries = codes_arg(queries_obj, "queries", static_cast<std::int64_t>(index.code_size()));
  const std::size_t nq = static_cast<std::size_t>(queries.shape(0));
  py::array_t<dist_t> D({nq, static_cast<std::size_t>(k)});
  py::array_t<idx_t> I({nq, static_cast<std::size_t>(k)});
  dist_t* d = D.mutable_data();
  idx_t* i = I.mutable_data();
  {
    py::gil_scoped_release release;
    index.search(queries.data(), nq, static_cast<std::size_t>(k), d, i);
  }
  return py::make_tuple(D, I);
}

py::tuple range_search(const GpuFlatIndex& index, const py::handle& queries_obj, const py::handle& radius_obj) {
  const std::int64_t radius = int_arg(radius_obj, "radius");
  if (radius < 0) throw py::value_error("radius must be >= 0, got " + std::to_string(radius));
  const int r = static_cast<int>(std::min<std::int64_t>(radius, index.nbits()));
  const py::object on_device = device_array(queries_obj);
  RangeResult res;
  if (!on_device.is_none()) {
    const DeviceCodes dq = device_codes_arg(on_device, "queries", index);
    py::gil_scoped_release release;
    res = index.range_search(reinterpret_cast<const std::uint8_t*>(dq.data), dq.n, r, true);
  } else {
    auto queries = codes_arg(queries_obj, "queries", static_cast<std::int64_t>(index.code_size()));
    const std::size_t nq = static_cast<std::size_t>(queries.shape(0));
    py::gil_scoped_release release;
    res = index.range_search(queries.data(), nq, r);
  }
  return py::make_tuple(adopt(std::move(res.lims)), adopt(std::move(res.distances)), adopt(std::move(res.ids)));
}

}  // namespace

void bind_gpu(py::module_& m) {
  py::class_<GpuFlatIndex>(m, "GpuFlatIndex",
                           "Exact Hamming k-NN and range search on a CUDA device, with FlatIndex's results\n"
                           "bit for bit (ties to the smaller id, same padding and errors), any k, range search.")
      .def(py::init([](const py::handle& nbits, const py::handle& device) {
             const std::int64_t n = int_arg(nbits, "nbits");
             check_nbits(n);
             const std::int64_t dev = int_arg(device, "device");
             py::gil_scoped_release release;
             return std::make_unique<GpuFlatIndex>(static_cast<int>(n), static_cast<int>(dev));
           }), py::arg("nbits"), py::arg("device") = 0)
      .def_static("from_index", [](const BinaryIndex& index, const py::handle& device) {
             const std::int64_t dev = int_arg(device, "device");
             py::gil_scoped_release release;
             return GpuFlatIndex::from_index(index, static_cast<int>(dev));
           }, py::arg("index"), py::arg("device") = 0,
           "A GpuFlatIndex with the items, ids and next_id of any index (FlatIndex, MIHIndex, ...).")
      .def_property_readonly("nbits", &GpuFlatIndex::nbits)
      .def_property_readonly("code_size", &GpuFlatIndex::code_size)
      .def_property_readonly("device", &GpuFlatIndex::device, "The CUDA device number.")
      .def_property_readonly("ntotal", unlocked(&GpuFlatIndex::ntotal), "Number of codes held.")
      .def_property_readonly("next_id", unlocked(&GpuFlatIndex::next_id), "The id the next add() assigns first.")
      .def("__len__", &GpuFlatIndex::ntotal, py::call_guard<py::gil_scoped_release>())
      .def("set_selection", [](GpuFlatIndex& index, const std::string& how) {
             if (how == "auto")
               index.set_selection(GpuFlatIndex::Selection::Auto);
             else if (how == "counting")
               index.set_selection(GpuFlatIndex::Selection::Counting);
             else
               throw py::value_error("selection is 'auto' or 'counting', got '" + how + "'");
           }, py::arg("how"),
           "How k-NN selects, for tests and benchmarks: 'auto' (one pass over the codes for k <= 4096,\n"
           "counting otherwise; the default) or 'counting' (two passes, any k). Results are the same.")
      .def("add", &ops::add<GpuFlatIndex>, py::arg("codes"),
           "Append (n, code_size) uint8 codes; they get ids next_id, next_id + 1, ...")
      .def("add_with_ids", &ops::add_with_ids<GpuFlatIndex>, py::arg("codes"), py::arg("ids"),
           "Append codes with caller ids (int64, unique, >= 0, not already present).")
      .def("search", &search, py::arg("queries"), py::arg("k"),
           "Exact k-NN: (D int32, I int64), both (nq, k), sorted by (distance, id); missing results are\n"
           "id -1 with distance 2147483647. Device queries (CuPy, PyTorch CUDA) give device results.")
      .def("range_search", &range_search, py::arg("queries"), py::arg("radius"),
           "All items with distance <= radius: (lims, D, I) as NumPy arrays, each query's slice sorted by\n"
           "(distance, id). Queries may be NumPy or device arrays.")
      .def("remove_ids", &ops::remove_ids<GpuFlatIndex>, py::arg("ids"),
           "Remove the items with these ids (absent ids are ignored); returns how many were removed.")
      .def("reset", &ops::reset<GpuFlatIndex>, "Remove everything; ids restart at 0.")
      .def("reconstruct", &ops::reconstruct<GpuFlatIndex>, py::arg("id"), "The code of an id (KeyError when absent).")
      .def("reconstruct_batch", &ops::reconstruct_batch<GpuFlatIndex>, py::arg("ids"),
           "The codes of these ids, (n, code_size) uint8.")
      .def("ids", &ops::ids<GpuFlatIndex>, "The ids held, int64, in insertion order (as FlatIndex.ids()).")
      .def("save", &ops::save<GpuFlatIndex>, py::arg("path"),
           "Write a FlatIndex file atomically (loads with or without a GPU).")
      .def("to_cpu", [](const GpuFlatIndex& index) {
             py::gil_scoped_release release;
             return index.to_cpu();
           }, "A FlatIndex with the same items, ids and next_id.")
      .def("memory_usage", [](const GpuFlatIndex& index) {
             const GpuFlatIndex::MemoryUsage u = index.memory_usage();
             py::dict d;
             d["device_bytes"] = u.device_bytes;
             d["host_bytes"] = u.host_bytes;
             return d;
           }, "{'device_bytes': codes and ids on the device, 'host_bytes': the host copy}.")
      .def("__repr__", [](const GpuFlatIndex& index) {
        return "GpuFlatIndex(nbits=" + std::to_string(index.nbits()) + ", ntotal=" + std::to_string(index.ntotal()) +
               ", device=" + std::to_string(index.device()) + ")";
      });

  py::object base = m.attr("BinaryIndex");
  base.attr("to_gpu") = py::cpp_function(
      [](const BinaryIndex& index, const py::handle& device) {
        const std::int64_t dev = int_arg(device, "device");
        py::gil_scoped_release release;
        return GpuFlatIndex::from_index(index, static_cast<int>(dev));
      },
      py::is_method(base), py::name("to_gpu"), py::arg("device") = 0,
      py::doc("A GpuFlatIndex on this CUDA device with the same items, ids and next_id."));

  // CUDA errors are RuntimeError; running out of device memory is MemoryError (index unchanged).
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const cuda::GpuOutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const cuda::CudaError& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
  });
}

}  // namespace deephash::py_bind

#else

#include <pybind11/pybind11.h>

namespace deephash::py_bind {
void bind_gpu(pybind11::module_&) {}  // no CUDA compiler at build time: gpu.py explains
}  // namespace deephash::py_bind

#endif
