// The fused logistic pass that the pairwise-likelihood bank losses run on each block of logits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "bind_common.hpp"
#include "deephash/logistic.hpp"

namespace deephash::py_bind {

void bind_logistic(py::module_& m) {
  m.def(
      "sigmoid_softplus_",
      [](const py::handle& obj) {
        if (!py::isinstance<py::array>(obj))
          throw py::type_error("x: expected a numpy.ndarray of float32, got " +
                               std::string(py::str(py::type::of(obj).attr("__name__"))));
        py::array x = py::reinterpret_borrow<py::array>(obj);
        if (!x.dtype().is(py::dtype::of<float>()))
          throw py::type_error("x: expected dtype('float32'), got " + dtype_name(x));
        if (!(x.flags() & py::array::c_style))
          throw py::value_error("x: expected a C-contiguous array (it is updated in place)");
        if (!x.writeable()) throw py::value_error("x: expected a writeable array (it is updated in place)");
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
}

}  // namespace deephash::py_bind
