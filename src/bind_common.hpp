// Argument conversion shared by the binding files: NumPy arrays in, validated views out.
// Every check raises at once with a message naming the argument, the expected and the actual value.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "deephash/id_selector.hpp"

namespace deephash::py_bind {

namespace py = pybind11;

// A C-contiguous uint8 array of shape (n, code_size) (a 1-D array of code_size bytes is taken as
// one row when allow_1d). Raises TypeError for any other dtype (no silent cast) and ValueError for
// a wrong shape or width. A non-contiguous array is copied. expected_code_size < 0: any width.
py::array_t<std::uint8_t, py::array::c_style> codes_arg(const py::handle& obj, const char* name,
                                                        std::int64_t expected_code_size,
                                                        bool allow_1d = true);

// A C-contiguous int64 array of shape (n,). Other integer dtypes are accepted when every value
// fits (they are ids, not codes); floats raise TypeError. An empty sequence (e.g. []) is valid.
py::array_t<std::int64_t, py::array::c_style> ids_arg(const py::handle& obj, const char* name);

// A Python int (or an object with __index__) as int64: bool and non-integers raise TypeError,
// a value beyond the int64 range raises ValueError naming the argument.
std::int64_t int_arg(const py::handle& obj, const char* name);

// k of a k-NN search: an int >= 1 (ValueError otherwise).
std::int64_t k_arg(const py::handle& obj);

// A getter that may wait for a writer's lock: it waits without the GIL.
template <class F>
py::cpp_function unlocked(F f) {
  return py::cpp_function(f, py::call_guard<py::gil_scoped_release>());
}

// The allow-list of a filtered search: None (no filter), an IdSelector (used as is), or an integer
// array-like of ids (a selector built for this call). Holds whichever it is for the call.
struct AllowArg {
  std::unique_ptr<IdSelector> owned;
  const IdSelector* selector = nullptr;
};
AllowArg allow_arg(const py::handle& obj);

// "dtype('float64')"-style name of an array's dtype, for messages.
std::string dtype_name(const py::array& a);

// A 1-D array that takes over the vector's buffer (no copy: range results can be large); the
// vector is freed with the array.
template <class T>
inline py::array_t<T> adopt(std::vector<T>&& v) {
  if (v.empty()) return py::array_t<T>(0);
  auto* owner = new std::vector<T>(std::move(v));
  py::capsule release(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(owner->size())}, {static_cast<py::ssize_t>(sizeof(T))},
                        owner->data(), release);
}

inline std::string path_arg(const py::object& path) {
  return py::module_::import("os").attr("fspath")(path).cast<std::string>();
}

// Registers the module's exception types (DeepHashError, IndexFileError) and the translator that
// maps core exceptions to them. Called once from module.cpp.
void register_errors(py::module_& m);

}  // namespace deephash::py_bind
