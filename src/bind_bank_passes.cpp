// The fused block passes that the memory-bank losses run on each block of pair products:
// the logistic pass (DPSH, DSDH, DHN) and the contrastive pass (DSH).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bind_common.hpp"
#include "deephash/bank_products.hpp"
#include "deephash/contrastive.hpp"
#include "deephash/logistic.hpp"

namespace deephash::py_bind {

namespace {

// A C-contiguous array of dtype T (writeable when `in_place`), taken as is: the passes write into
// their arguments, so a converted copy would silently lose the result. `dtype` names T in errors.
template <class T>
py::array typed_arg(const py::handle& obj, const char* name, const char* dtype, bool in_place = false) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy.ndarray of " + dtype + ", got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": expected dtype('" + dtype + "'), got " + dtype_name(a));
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

py::array float32_arg(const py::handle& obj, const char* name, bool in_place) {
  return typed_arg<float>(obj, name, "float32", in_place);
}

std::string shape_text(const py::array& a) {
  std::string out = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out += (i ? ", " : "") + std::to_string(a.shape(i));
  return out + (a.ndim() == 1 ? ",)" : ")");
}

// A 2-d float32 array of `cols` columns (any rows), C-contiguous.
py::array matrix_arg(const py::handle& obj, const char* name, std::size_t cols, bool in_place) {
  py::array a = float32_arg(obj, name, in_place);
  if (a.ndim() != 2 || static_cast<std::size_t>(a.shape(1)) != cols)
    throw py::value_error(std::string(name) + ": expected shape (n, " + std::to_string(cols) + "), got " +
                          shape_text(a));
  return a;
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

  m.def("bank_products_available", &bank_products_available,
        "True where the AMX bank products run: a CPU with AMX-BF16 and AVX512-BF16 whose operating "
        "system grants the tile state, and DEEPHASH_BANK_PRODUCTS is not 'float32'.");
  m.def("bank_products_unavailable_reason", [] { return std::string(bank_products_unavailable_reason()); },
        "Why bank_products_available() is False ('' when it is True).");
  py::class_<PackedBank>(m, "PackedBank",
                         "A memory bank's rows in AMX tile layouts, as bfloat16 high and low halves (about "
                         "16 significant bits in each product). Rows start at zero.")
      .def(py::init<std::size_t, std::size_t>(), py::arg("rows"), py::arg("dim"))
      .def_property_readonly("rows", &PackedBank::rows)
      .def_property_readonly("dim", &PackedBank::dim)
      .def_property_readonly("memory_bytes", &PackedBank::memory_bytes)
      .def(
          "write",
          [](PackedBank& bank, const py::handle& values_obj, const py::handle& index_obj,
             const py::handle& classes_obj) {
            py::array values = matrix_arg(values_obj, "values", bank.dim(), false);
            py::array index = typed_arg<std::int64_t>(index_obj, "index", "int64");
            check_length(index, "index", values.shape(0));
            const std::int32_t* cp = nullptr;
            py::array classes;
            if (!classes_obj.is_none()) {
              classes = typed_arg<std::int32_t>(classes_obj, "classes", "int32");
              check_length(classes, "classes", values.shape(0));
              cp = static_cast<const std::int32_t*>(classes.data());
            }
            const float* vp = static_cast<const float*>(values.data());
            const std::int64_t* ip = static_cast<const std::int64_t*>(index.data());
            const std::size_t count = static_cast<std::size_t>(values.shape(0));
            py::gil_scoped_release release;
            bank.write(vp, ip, count, cp);
          },
          py::arg("values"), py::arg("index"), py::arg("classes") = py::none(),
          "Rows index[i] := values[i] (float32 (count, dim), int64 (count,)), with class classes[i] "
          "(int32 (count,); None: -1, no class; only contrastive reads classes). A later repeat wins.")
      .def(
          "logistic",
          [](const PackedBank& bank, const py::handle& u_obj, const py::handle& out_obj, std::size_t threads) {
            py::array u = matrix_arg(u_obj, "u", bank.dim(), false);
            py::array out = matrix_arg(out_obj, "sigmoid_v", bank.dim(), true);
            if (out.shape(0) != u.shape(0))
              throw py::value_error("sigmoid_v: expected the shape of u, " + shape_text(u) + ", got " + shape_text(out));
            const float* up = static_cast<const float*>(u.data());
            float* op = static_cast<float*>(out.mutable_data());
            const std::size_t batch = static_cast<std::size_t>(u.shape(0));
            py::gil_scoped_release release;
            return bank.logistic(up, batch, op, threads);
          },
          py::arg("u"), py::arg("sigmoid_v"), py::arg("threads") = 0,
          "With theta = u V^T over every row v of the bank: writes sigmoid(theta) V into sigmoid_v "
          "(float32, u's shape) and returns the sum of log(1 + exp(theta)) (double). Rows never "
          "written are zero: each adds log 2 per row of u and nothing to sigmoid_v. threads: how "
          "many of the core's threads (0: its default).")
      .def(
          "contrastive",
          [](const PackedBank& bank, const py::handle& u_obj, const py::handle& norm_obj, const py::handle& class_obj,
             float margin, const py::handle& wv_obj, const py::handle& ws_obj, std::size_t threads) {
            py::array u = matrix_arg(u_obj, "u", bank.dim(), false);
            const py::ssize_t batch = u.shape(0);
            py::array u_norm = float32_arg(norm_obj, "u_norm", false);
            check_length(u_norm, "u_norm", batch);
            py::array u_class = typed_arg<std::int32_t>(class_obj, "u_class", "int32");
            check_length(u_class, "u_class", batch);
            py::array wv = matrix_arg(wv_obj, "weight_v", bank.dim(), true);
            if (wv.shape(0) != batch)
              throw py::value_error("weight_v: expected the shape of u, " + shape_text(u) + ", got " + shape_text(wv));
            py::array ws = float32_arg(ws_obj, "weight_sum", true);
            check_length(ws, "weight_sum", batch);
            const float* up = static_cast<const float*>(u.data());
            const float* np_ = static_cast<const float*>(u_norm.data());
            const std::int32_t* cp = static_cast<const std::int32_t*>(u_class.data());
            float* wvp = static_cast<float*>(wv.mutable_data());
            float* wsp = static_cast<float*>(ws.mutable_data());
            py::gil_scoped_release release;
            return bank.contrastive(up, np_, cp, static_cast<std::size_t>(batch), margin, wvp, wsp, threads);
          },
          py::arg("u"), py::arg("u_norm"), py::arg("u_class"), py::arg("margin"), py::arg("weight_v"),
          py::arg("weight_sum"), py::arg("threads") = 0,
          "The contrastive (DSH) terms of u against every row: d = max(u_norm[i] + |v|^2 - 2 u.v, 0), "
          "similar where u_class[i] equals the row's class. Writes weight_v = W V and weight_sum = W 1 "
          "for W = S - (1 - S)[d < margin] and returns the sum of s d + (1 - s) max(margin - d, 0). "
          "Rows never written are zeros with no class.");
}

}  // namespace deephash::py_bind
