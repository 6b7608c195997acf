// BinaryIndex (the interface every index shares: add, search, range search, remove, save) and
// load_index. The concrete indexes bind only their constructors and extras (bind_flat, bind_mih, ...).
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

namespace deephash::py_bind {

namespace {

py::tuple search(const BinaryIndex& index, const py::handle& queries_obj, const py::handle& k_obj,
                 const py::handle& allow_obj) {
  const std::int64_t k = k_arg(k_obj);
  const AllowArg allow = allow_arg(allow_obj);
  auto queries = codes_arg(queries_obj, "queries", static_cast<std::int64_t>(index.code_size()));
  const std::size_t nq = static_cast<std::size_t>(queries.shape(0));
  py::array_t<dist_t> distances({nq, static_cast<std::size_t>(k)});
  py::array_t<idx_t> ids({nq, static_cast<std::size_t>(k)});
  dist_t* d = distances.mutable_data();
  idx_t* i = ids.mutable_data();
  {
    py::gil_scoped_release release;
    if (allow.selector)
      index.search_filtered(queries.data(), nq, static_cast<std::size_t>(k), d, i, *allow.selector);
    else
      index.search(queries.data(), nq, static_cast<std::size_t>(k), d, i);
  }
  return py::make_tuple(distances, ids);
}

py::tuple range_search(const BinaryIndex& index, const py::handle& queries_obj, const py::handle& radius_obj,
                       const py::handle& allow_obj) {
  const std::int64_t radius = int_arg(radius_obj, "radius");
  const AllowArg allow = allow_arg(allow_obj);
  if (radius < 0) throw py::value_error("radius must be >= 0, got " + std::to_string(radius));
  auto queries = codes_arg(queries_obj, "queries", static_cast<std::int64_t>(index.code_size()));
  const std::size_t nq = static_cast<std::size_t>(queries.shape(0));
  const int r = static_cast<int>(std::min<std::int64_t>(radius, index.nbits()));
  RangeResult res;
  {
    py::gil_scoped_release release;
    res = allow.selector ? index.range_search_filtered(queries.data(), nq, r, *allow.selector)
                         : index.range_search(queries.data(), nq, r);
  }
  return py::make_tuple(adopt(std::move(res.lims)), adopt(std::move(res.distances)), adopt(std::move(res.ids)));
}

}  // namespace

void bind_index(py::module_& m) {
  py::class_<BinaryIndex>(m, "BinaryIndex", "Interface shared by every index over packed binary codes.")
      .def_property_readonly("nbits", &BinaryIndex::nbits, "Bits per code.")
      .def_property_readonly("code_size", &BinaryIndex::code_size, "Bytes per code: ceil(nbits / 8).")
      .def_property_readonly("ntotal", unlocked(&BinaryIndex::ntotal), "Number of codes held.")
      .def_property_readonly("next_id", unlocked(&BinaryIndex::next_id), "The id the next add() assigns first.")
      .def_property_readonly("is_mmapped", unlocked(&BinaryIndex::is_mmapped),
                             "True while the codes are read from a memory-mapped file (until the first write).")
      .def("__len__", &BinaryIndex::ntotal, py::call_guard<py::gil_scoped_release>())
      .def("add", &ops::add<BinaryIndex>, py::arg("codes"),
           "Append (n, code_size) uint8 codes; they get ids next_id, next_id + 1, ...")
      .def("add_with_ids", &ops::add_with_ids<BinaryIndex>, py::arg("codes"), py::arg("ids"),
           "Append codes with caller ids (int64, unique, >= 0, not already present).")
      .def("search", &search, py::arg("queries"), py::arg("k"), py::arg("allow") = py::none(),
           "Exact k-NN: returns (D int32, I int64), both (nq, k), sorted by (distance, id);\n"
           "missing results are id -1 with distance 2147483647. allow: only these ids may be returned\n"
           "(an IdSelector, reusable, or an int64 array-like of ids).")
      .def("range_search", &range_search, py::arg("queries"), py::arg("radius"), py::arg("allow") = py::none(),
           "All items with distance <= radius (inclusive): returns (lims int64 (nq+1,), D int32, I int64),\n"
           "query i's results are D[lims[i]:lims[i+1]], sorted by (distance, id). allow: as in search.")
      .def("remove_ids", &ops::remove_ids<BinaryIndex>, py::arg("ids"),
           "Remove the items with these ids (absent ids are ignored); returns how many were removed.\n"
           "Remaining items keep their ids.")
      .def("reset", &ops::reset<BinaryIndex>, "Remove everything and restart ids at 0.")
      .def("reconstruct", &ops::reconstruct<BinaryIndex>, py::arg("id"), "The code of an id (KeyError when absent).")
      .def("ids", &ops::ids<BinaryIndex>,
           "The ids held, int64, in storage order (a FlatIndex: insertion order; a MIHIndex keeps "
           "8 MiB of codes or more sorted by substring).")
      .def("reconstruct_batch", &ops::reconstruct_batch<BinaryIndex>, py::arg("ids"),
           "The codes of these ids, (n, code_size) uint8, read at once (KeyError for an absent id).")
      .def("save", &ops::save<BinaryIndex>, py::arg("path"),
           "Write the index atomically to path (format: docs/format.md).");


  m.def("load_index", [](const py::object& path, bool mmap) {
          const std::string p = path_arg(path);
          std::unique_ptr<BinaryIndex> index;
          {
            py::gil_scoped_release release;
            index = load_index(p, mmap);
          }
          return index;
        }, py::arg("path"), py::arg("mmap") = false,
        "Read an index written by save(); with mmap=True flat code arrays stay in the file (read-only\n"
        "until the first write, which copies them into memory).");
}

}  // namespace deephash::py_bind
