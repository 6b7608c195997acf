#include "bind_common.hpp"

#include <string>

#include "deephash/common.hpp"

using namespace pybind11::literals;

namespace deephash::py_bind {

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

py::array_t<std::uint8_t, py::array::c_style> codes_arg(const py::handle& obj, const char* name,
                                                        std::int64_t expected_code_size, bool allow_1d) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy uint8 array of packed codes, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  }
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<std::uint8_t>())) {
    throw py::type_error(std::string(name) + " must have dtype uint8 (packed codes), got " + dtype_name(a) +
                         "; use deephash_engine.pack_bits() to turn real values into codes");
  }
  if (a.ndim() == 1 && allow_1d) {
    a = a.attr("reshape")(1, -1).cast<py::array>();
  }
  if (a.ndim() != 2) {
    throw py::value_error(std::string(name) + " must be a 2-D array of shape (n, code_size), got " +
                          std::to_string(a.ndim()) + " dimensions");
  }
  if (expected_code_size >= 0 && a.shape(1) != expected_code_size) {
    throw py::value_error(std::string(name) + " must have " + std::to_string(expected_code_size) +
                          " bytes per code (nbits=" + std::to_string(expected_code_size * 8) + "), got " +
                          std::to_string(a.shape(1)) + " bytes");
  }
  return py::array_t<std::uint8_t, py::array::c_style>::ensure(a);
}

py::array_t<std::int64_t, py::array::c_style> ids_arg(const py::handle& obj, const char* name) {
  py::module_ np = py::module_::import("numpy");
  py::array a = np.attr("asarray")(obj).cast<py::array>();
  if (a.ndim() == 1 && a.size() == 0) return py::array_t<std::int64_t, py::array::c_style>(0);  // [] is float64
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u') {
    throw py::type_error(std::string(name) + " must be an integer array, got dtype " + dtype_name(a));
  }
  if (a.ndim() != 1) {
    throw py::value_error(std::string(name) + " must be 1-D, got " + std::to_string(a.ndim()) + " dimensions");
  }
  if (kind == 'u' && a.dtype().itemsize() == 8 && a.size() > 0) {
    const auto mx = np.attr("max")(a).cast<std::uint64_t>();
    if (mx > static_cast<std::uint64_t>(INT64_MAX))
      throw py::value_error(std::string(name) + " holds a value above the int64 range");
  }
  return np.attr("ascontiguousarray")(a, "dtype"_a = "int64").cast<py::array_t<std::int64_t, py::array::c_style>>();
}

std::int64_t int_arg(const py::handle& obj, const char* name) {
  if (PyBool_Check(obj.ptr()))
    throw py::type_error(std::string(name) + " must be an int, not bool");
  PyObject* index = PyNumber_Index(obj.ptr());
  if (!index) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + " must be an int, got " + py::str(py::type::of(obj)).cast<std::string>());
  }
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (overflow != 0)
    throw py::value_error(std::string(name) + " must fit in int64 (|value| < 2**63), got " +
                          py::str(obj).cast<std::string>());
  if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
  return static_cast<std::int64_t>(v);
}

AllowArg allow_arg(const py::handle& obj) {
  AllowArg out;
  if (obj.is_none()) return out;
  if (py::isinstance<IdSelector>(obj)) {
    out.selector = obj.cast<const IdSelector*>();
    return out;
  }
  auto ids = ids_arg(obj, "allow");
  out.owned = std::make_unique<IdSelector>(ids.data(), static_cast<std::size_t>(ids.shape(0)));
  out.selector = out.owned.get();
  return out;
}

std::int64_t k_arg(const py::handle& obj) {
  const std::int64_t k = int_arg(obj, "k");
  if (k <= 0) throw py::value_error("k must be > 0, got " + std::to_string(k));
  return k;
}

void register_errors(py::module_& m) {
  // Created with the C API so that IndexFileError can derive from both OSError and DeepHashError.
  static PyObject* base = PyErr_NewExceptionWithDoc(
      "deephash_engine._core.DeepHashError", "Base class of the errors raised by deephash_engine.",
      PyExc_Exception, nullptr);
  py::tuple file_bases = py::make_tuple(py::handle(PyExc_OSError), py::handle(base));
  static PyObject* file_error = PyErr_NewExceptionWithDoc(
      "deephash_engine._core.IndexFileError",
      "An index file cannot be read or written, or fails validation (truncated, corrupted, foreign, newer format).",
      file_bases.ptr(), nullptr);
  m.attr("DeepHashError") = py::handle(base);
  m.attr("IndexFileError") = py::handle(file_error);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const deephash::FileError& e) {
      PyErr_SetString(file_error, e.what());
    } catch (const deephash::UnknownId& e) {
      PyErr_SetString(PyExc_KeyError, e.what());
    } catch (const deephash::InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });
}

}  // namespace deephash::py_bind
