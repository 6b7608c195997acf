// The fused block passes that the memory-bank losses run on each block of pair products:
// the logistic pass (DPSH, DSDH, DHN) and the contrastive pass (DSH).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bind_common.hpp"
#include "deephash/contrastive.hpp"
#include "deephash/logistic.hpp"

namespace deephash::py_bind {

namespace {

// A float32 C-contiguous array (writeable when `in_place`), taken as is: the passes write into
// their arguments, so a converted copy would silently lose the result.
py::array float32_arg(const py::handle& obj, const char* name, bool in_place) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy.ndarray of float32, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<float>()))
    throw py::type_error(std::string(name) + ": expected dtype('float32'), got " + dtype_name(a));
  if (!(a.flags() & py::array::c_style)) {
    std::string strides;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) strides += (i ? ", " : "") + std::to_string(a.strides(i));
    throw py::value_error(std::string(name) + ": expected a C-contiguous array, got strides (" + strides +
                          ") in bytes");
  }
  if (in_place && !a.writeable())
    throw py::value_error(std::string(name) + ": expected a writeable array (it is updated in place), got a read-only one");
  return a;
}

std::string shape_text(const py::array& a) {
  std::string out = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out += (i ? ", " : "") + std::to_string(a.shape(i));
  return out + (a.ndim() == 1 ? ",)" : ")");
}

void check_length(const py::array& a, const char* name, py::ssize_t expected) {
  if (a.ndim() != 1 || a.shape(0) != expected)
    throw py::value_error(std::string(name) + ": expected shape (" + std::to_string(expected) + ",), got " +
                          shape_text(a));
}

}  // namespace

void bind_bank_passes(py::module_& m) {
  m.def(
      "sigmoid_softplus_",
      [](const py::handle& obj) {
        py::array x = float32_arg(obj, "x", true);
        float* data = static_cast<float*>(x.mutable_data());
        const std::size_t n = static_cast<std::size_t>(x.size());
        py::gil_scoped_release release;
        return sigmoid_softplus_inplace(data, n);
      },
      py::arg("x"),
      "Replace every element t of the float32 array x (C-contiguous, any shape) by "
      "sigmoid(t) = 1 / (1 + exp(-t)), in place, and return sum(log(1 + exp(t))) as a float "
      "(accumulated in double). One pass; the AVX2 kernel is accurate to a few ulp.");
  m.def("logistic_level", [] { return std::string(simd_level_name(logistic_level())); },
        "SIMD level of sigmoid_softplus_: 'avx2', or 'scalar' (exact libm calls, slower than a "
        "deep-learning framework's vectorised passes).");
  m.def(
      "contrastive_pass_",
      [](const py::handle& r_obj, const py::handle& s_obj, const py::handle& u_obj,
         const py::handle& v_obj, float margin, const py::handle& w_obj) {
        py::array r = float32_arg(r_obj, "r", true), s = float32_arg(s_obj, "s", false);
        py::array u_norm = float32_arg(u_obj, "u_norm", false), v_norm = float32_arg(v_obj, "v_norm", false);
        py::array row_weight = float32_arg(w_obj, "row_weight", true);
        if (r.ndim() != 2) throw py::value_error("r: expected a 2-d array, got " + std::to_string(r.ndim()) + " dimensions");
        const py::ssize_t rows = r.shape(0), cols = r.shape(1);
        if (s.ndim() != 2 || s.shape(0) != rows || s.shape(1) != cols)
          throw py::value_error("s: expected the shape of r, " + shape_text(r) + ", got " + shape_text(s));
        check_length(u_norm, "u_norm", rows);
        check_length(v_norm, "v_norm", cols);
        check_length(row_weight, "row_weight", rows);
        float* rp = static_cast<float*>(r.mutable_data());
        float* wp = static_cast<float*>(row_weight.mutable_data());
        const float* sp = static_cast<const float*>(s.data());
        const float* up = static_cast<const float*>(u_norm.data());
        const float* vp = static_cast<const float*>(v_norm.data());
        py::gil_scoped_release release;
        return contrastive_pass(rp, sp, static_cast<std::size_t>(rows), static_cast<std::size_t>(cols),
                                up, vp, margin, wp);
      },
      py::arg("r"), py::arg("s"), py::arg("u_norm"), py::arg("v_norm"), py::arg("margin"),
      py::arg("row_weight"),
      "One block of the contrastive (DSH) loss against a bank, all float32 C-contiguous. On entry "
      "r[i, j] = 2 u_i . v_j; s[i, j] is 1 for a similar pair, 0 otherwise; u_norm = |u_i|^2, "
      "v_norm = |v_j|^2. With d = max(u_norm[i] + v_norm[j] - r[i, j], 0), returns the sum of "
      "s d + (1 - s) max(margin - d, 0), overwrites r with the pair weights s - (1 - s) [d < margin] "
      "and adds their row sums to row_weight.");
}

}  // namespace deephash::py_bind
