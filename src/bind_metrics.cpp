// Binding of the retrieval metrics: deephash_engine._core.evaluate_retrieval.
// The public, validated API is deephash_engine.metrics; this layer still checks every argument.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bind_common.hpp"
#include "deephash/metrics.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace {

using deephash::metrics::LabelsView;

// Labels arrive as int64 class ids (n,) or uint64 multi-hot bitsets (n, words), C-contiguous.
struct LabelsArg {
  py::array array;
  LabelsView view;
};

LabelsArg labels_arg(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  auto a = py::reinterpret_borrow<py::array>(obj);
  LabelsArg out;
  if (a.ndim() == 1) {
    if (!a.dtype().equal(py::dtype::of<std::int64_t>()))
      throw py::type_error(std::string(name) + " (class ids) must have dtype int64, got " +
                           deephash::py_bind::dtype_name(a));
    auto c = py::array_t<std::int64_t, py::array::c_style>::ensure(a);
    out.view.class_ids = c.data();
    out.view.n = static_cast<std::size_t>(c.shape(0));
    out.array = c;
  } else if (a.ndim() == 2) {
    if (!a.dtype().equal(py::dtype::of<std::uint64_t>()))
      throw py::type_error(std::string(name) + " (multi-hot bitsets) must have dtype uint64, got " +
                           deephash::py_bind::dtype_name(a));
    auto c = py::array_t<std::uint64_t, py::array::c_style>::ensure(a);
    out.view.bitsets = c.data();
    out.view.n = static_cast<std::size_t>(c.shape(0));
    out.view.words = static_cast<std::size_t>(c.shape(1));
    out.array = c;
  } else {
    throw py::value_error(std::string(name) + " must be 1-D (class ids) or 2-D (bitsets), got " +
                          std::to_string(a.ndim()) + " dimensions");
  }
  return out;
}

template <typename E>
E choice(const std::string& value, const char* name, std::initializer_list<std::pair<const char*, E>> options) {
  std::string allowed;
  for (const auto& [label, e] : options) {
    if (value == label) return e;
    allowed += allowed.empty() ? "" : ", ";
    allowed += std::string("'") + label + "'";
  }
  throw py::value_error(std::string(name) + " must be one of " + allowed + ", got '" + value + "'");
}

deephash::metrics::CodesView codes_view(const py::array_t<std::uint8_t, py::array::c_style>& a) {
  return {a.data(), static_cast<std::size_t>(a.shape(0)), static_cast<std::size_t>(a.shape(1))};
}

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

py::dict evaluate_retrieval(const py::handle& query_codes, const py::handle& db_codes,
                            const py::handle& query_labels, const py::handle& db_labels, std::int64_t topk,
                            const std::string& ties, const std::string& normalize, const std::string& empty,
                            bool want_map, const std::vector<std::int64_t>& ks, bool want_radius) {
  using namespace deephash::metrics;
  auto db = deephash::py_bind::codes_arg(db_codes, "db_codes", -1, false);
  auto q = deephash::py_bind::codes_arg(query_codes, "query_codes", db.shape(1), false);
  LabelsArg ql = labels_arg(query_labels, "query_labels");
  LabelsArg dl = labels_arg(db_labels, "db_labels");
  if (topk < 0) throw py::value_error("topk must be >= 0 (0 means the whole database), got " + std::to_string(topk));
  EvalOptions opt;
  opt.ties = choice<TieOrder>(ties, "ties", {{"index", TieOrder::Index}, {"expected", TieOrder::Expected}});
  opt.normalize = choice<Normalization>(normalize, "normalize",
                                        {{"retrieved", Normalization::Retrieved}, {"min", Normalization::Min}});
  opt.empty = choice<EmptyPolicy>(empty, "empty", {{"zero", EmptyPolicy::Zero}, {"skip", EmptyPolicy::Skip}});
  opt.want_map = want_map;
  opt.topk = static_cast<std::size_t>(topk);
  opt.ks = ks;
  opt.want_radius = want_radius;

  EvalResult r;
  {
    py::gil_scoped_release release;
    r = evaluate_retrieval(codes_view(q), codes_view(db), ql.view, dl.view, opt);
  }
  py::dict out;
  out["map"] = r.map;
  out["map_queries"] = r.map_queries;
  out["average_precision"] = to_numpy(r.average_precision);
  out["precision_at_k"] = to_numpy(r.precision_at_k);
  out["recall_at_k"] = to_numpy(r.recall_at_k);
  out["rank_queries"] = r.rank_queries;
  out["radius_precision"] = to_numpy(r.radius_precision);
  out["radius_recall"] = to_numpy(r.radius_recall);
  out["radius_map"] = to_numpy(r.radius_map);
  out["radius_queries"] = r.radius_queries;
  out["relevant_total"] = to_numpy(r.relevant_total);
  return out;
}

}  // namespace

namespace deephash::py_bind {

void bind_metrics(py::module_& m) {
  m.def("evaluate_retrieval", &evaluate_retrieval, "query_codes"_a, "db_codes"_a, "query_labels"_a,
        "db_labels"_a, py::kw_only(), "topk"_a = 0, "ties"_a = "index", "normalize"_a = "retrieved",
        "empty"_a = "zero", "want_map"_a = true, "ks"_a = std::vector<std::int64_t>{},
        "want_radius"_a = false,
        "Ranks every query against the database by Hamming distance (counting over the nbits+1 "
        "distances) and returns the requested retrieval metrics as a dict. Codes are packed uint8; "
        "labels are int64 class ids (n,) or uint64 multi-hot bitsets (n, words). Releases the GIL.");
}

}  // namespace deephash::py_bind
