// deephash_engine._core: the compiled module. Each concern binds itself in its own bind_*.cpp.
#include <pybind11/pybind11.h>

#include "bind_common.hpp"

namespace py = pybind11;

namespace deephash::py_bind {
void bind_runtime(py::module_& m);
void bind_codes(py::module_& m);
void bind_index(py::module_& m);
void bind_flat(py::module_& m);
void bind_mih(py::module_& m);
void bind_gpu(py::module_& m);
void bind_metrics(py::module_& m);
void bind_bank_passes(py::module_& m);
void bind_serve(py::module_& m);
}  // namespace deephash::py_bind

PYBIND11_MODULE(_core, m) {
  m.doc() = "deephash_engine compiled core: SIMD Hamming kernels, indexes, persistence";
  deephash::py_bind::register_errors(m);
  deephash::py_bind::bind_runtime(m);
  deephash::py_bind::bind_codes(m);
  deephash::py_bind::bind_index(m);
  deephash::py_bind::bind_flat(m);
  deephash::py_bind::bind_mih(m);
  deephash::py_bind::bind_gpu(m);
  deephash::py_bind::bind_metrics(m);
  deephash::py_bind::bind_bank_passes(m);
  deephash::py_bind::bind_serve(m);
}
