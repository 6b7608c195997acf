// BinaryIndex (the shared interface), FlatIndex and load_index.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bind_common.hpp"
#include "deephash/flat_index.hpp"
#include "deephash/index.hpp"

namespace deephash::py_bind {

namespace {

// A 1-D array that takes over the vector's buffer (no copy: range results can be large); the
// vector is freed with the array.
template <class T>
py::array_t<T> adopt(std::vector<T>&& v) {
  if (v.empty()) return py::array_t<T>(0);
  auto* owner = new std::vector<T>(std::move(v));
  py::capsule release(owner, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(owner->size())}, {static_cast<py::ssize_t>(sizeof(T))},
                        owner->data(), release);
}

std::string path_arg(const py::object& path) {
  return py::module_::import("os").attr("fspath")(path).cast<std::string>();
}

void add(BinaryIndex& index, const py::handle& codes_obj) {
  auto codes = codes_arg(codes_obj, "codes", static_cast<std::int64_t>(index.code_size()));
  const std::size_t n = static_cast<std::size_t>(codes.shape(0));
  py::gil_scoped_release release;
  index.add(codes.data(), n);
}

void add_with_ids(BinaryIndex& index, const py::handle& codes_obj, const py::handle& ids_obj) {
  auto codes = codes_arg(codes_obj, "codes", static_cast<std::int64_t>(index.code_size()));
  auto ids = ids_arg(ids_obj, "ids");
  if (ids.shape(0) != codes.shape(0)) {
    throw py::value_error("ids must have one entry per code: expected " + std::to_string(codes.shape(0)) + ", got " +
                          std::to_string(ids.shape(0)));
  }
  const std::size_t n = static_cast<std::size_t>(codes.shape(0));
  py::gil_scoped_release release;
  index.add_with_ids(codes.data(), n, ids.data());
}

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

std::size_t remove_ids(BinaryIndex& index, const py::handle& ids_obj) {
  auto ids = ids_arg(ids_obj, "ids");
  const std::size_t n = static_cast<std::size_t>(ids.shape(0));
  py::gil_scoped_release release;
  return index.remove_ids(ids.data(), n);
}

py::array_t<std::uint8_t> reconstruct(const BinaryIndex& index, const py::handle& id_obj) {
  const std::int64_t id = int_arg(id_obj, "id");
  py::array_t<std::uint8_t> out(static_cast<py::ssize_t>(index.code_size()));
  std::uint8_t* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    index.reconstruct(id, dst);
  }
  return out;
}

}  // namespace

void bind_flat(py::module_& m) {
  py::class_<IdSelector>(m, "IdSelector",
                         "The ids a filtered search may return, built once (sorted, unique) and reusable with\n"
                         "any index: index.search(queries, k, allow=selector).")
      .def(py::init([](const py::handle& ids_obj) {
             auto ids = ids_arg(ids_obj, "ids");
             const std::size_t n = static_cast<std::size_t>(ids.shape(0));
             py::gil_scoped_release release;
             return std::make_unique<IdSelector>(ids.data(), n);
           }), py::arg("ids"))
      .def("__len__", &IdSelector::size)
      .def("__contains__", [](const IdSelector& s, const py::handle& id) { return s.contains(int_arg(id, "id")); })
      .def("__repr__", [](const IdSelector& s) { return "IdSelector(" + std::to_string(s.size()) + " ids)"; });

  py::class_<BinaryIndex>(m, "BinaryIndex", "Interface shared by every index over packed binary codes.")
      .def_property_readonly("nbits", &BinaryIndex::nbits, "Bits per code.")
      .def_property_readonly("code_size", &BinaryIndex::code_size, "Bytes per code (nbits / 8).")
      .def_property_readonly("ntotal", unlocked(&BinaryIndex::ntotal), "Number of codes held.")
      .def_property_readonly("next_id", unlocked(&BinaryIndex::next_id), "The id the next add() assigns first.")
      .def_property_readonly("is_mmapped", unlocked(&BinaryIndex::is_mmapped),
                             "True while the codes are read from a memory-mapped file (until the first write).")
      .def("__len__", &BinaryIndex::ntotal, py::call_guard<py::gil_scoped_release>())
      .def("add", &add, py::arg("codes"),
           "Append (n, code_size) uint8 codes; they get ids next_id, next_id + 1, ...")
      .def("add_with_ids", &add_with_ids, py::arg("codes"), py::arg("ids"),
           "Append codes with caller ids (int64, unique, >= 0, not already present).")
      .def("search", &search, py::arg("queries"), py::arg("k"), py::arg("allow") = py::none(),
           "Exact k-NN: returns (D int32, I int64), both (nq, k), sorted by (distance, id);\n"
           "missing results are id -1 with distance 2147483647. allow: only these ids may be returned\n"
           "(an IdSelector, reusable, or an int64 array-like of ids).")
      .def("range_search", &range_search, py::arg("queries"), py::arg("radius"), py::arg("allow") = py::none(),
           "All items with distance <= radius (inclusive): returns (lims int64 (nq+1,), D int32, I int64),\n"
           "query i's results are D[lims[i]:lims[i+1]], sorted by (distance, id). allow: as in search.")
      .def("remove_ids", &remove_ids, py::arg("ids"),
           "Remove the items with these ids (absent ids are ignored); returns how many were removed.\n"
           "Remaining items keep their ids.")
      .def("reset", [](BinaryIndex& index) {
             py::gil_scoped_release release;
             index.reset();
           }, "Remove everything and restart ids at 0.")
      .def("reconstruct", &reconstruct, py::arg("id"), "The code of an id (KeyError when absent).")
      .def("ids", [](const BinaryIndex& index) {
             std::vector<idx_t> ids;
             {
               py::gil_scoped_release release;
               ids = index.ids();
             }
             return adopt(std::move(ids));
           }, "The ids held, int64, in storage order.")
      .def("reconstruct_batch", [](const BinaryIndex& index, const py::handle& ids_obj) {
             auto ids = ids_arg(ids_obj, "ids");
             const std::size_t n = static_cast<std::size_t>(ids.shape(0));
             py::array_t<std::uint8_t> out({n, index.code_size()});
             std::uint8_t* dst = out.mutable_data();
             {
               py::gil_scoped_release release;
               index.reconstruct_batch(ids.data(), n, dst);
             }
             return out;
           }, py::arg("ids"), "The codes of these ids, (n, code_size) uint8, read at once (KeyError for an absent id).")
      .def("save", [](const BinaryIndex& index, const py::object& path) {
             const std::string p = path_arg(path);
             py::gil_scoped_release release;
             index.save(p);
           }, py::arg("path"), "Write the index atomically to path (format: docs/format.md).");

  py::class_<FlatIndex, BinaryIndex>(m, "FlatIndex",
                                     "Exact Hamming k-NN and range search by a SIMD linear scan.")
      .def(py::init([](const py::handle& nbits) {
             const std::int64_t n = int_arg(nbits, "nbits");
             check_nbits(n);
             return std::make_unique<FlatIndex>(static_cast<int>(n));
           }), py::arg("nbits"))
      .def("search_with_stats", [](const FlatIndex& index, const py::handle& queries_obj, const py::handle& k_obj,
                                   const py::handle& allow_obj) {
             const std::int64_t k = k_arg(k_obj);
             const AllowArg allow = allow_arg(allow_obj);
             auto queries = codes_arg(queries_obj, "queries", static_cast<std::int64_t>(index.code_size()));
             const std::size_t nq = static_cast<std::size_t>(queries.shape(0));
             py::array_t<dist_t> D({nq, static_cast<std::size_t>(k)});
             py::array_t<idx_t> I({nq, static_cast<std::size_t>(k)});
             dist_t* d = D.mutable_data();
             idx_t* i = I.mutable_data();
             FilterStrategy strategy = FilterStrategy::None;
             {
               py::gil_scoped_release release;
               if (allow.selector)
                 index.search_filtered(queries.data(), nq, static_cast<std::size_t>(k), d, i, *allow.selector, &strategy);
               else
                 index.search(queries.data(), nq, static_cast<std::size_t>(k), d, i);
             }
             py::dict stats;
             stats["filter"] = std::string(filter_strategy_name(strategy));
             return py::make_tuple(D, I, stats);
           }, py::arg("queries"), py::arg("k"), py::arg("allow") = py::none(),
           "search() plus how a filter ran: {'filter': 'none' | 'gather' (the few allowed codes\n"
           "gathered and scanned) | 'mask' (every code scanned with a membership test)}.")
      .def("__repr__", [](const FlatIndex& index) {
        return "FlatIndex(nbits=" + std::to_string(index.nbits()) + ", ntotal=" + std::to_string(index.ntotal()) + ")";
      });

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
