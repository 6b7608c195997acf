// IdSelector and FlatIndex (the BinaryIndex interface itself is bound in bind_index.cpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bind_common.hpp"
#include "deephash/flat_index.hpp"
#include "deephash/id_selector.hpp"

namespace deephash::py_bind {

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
}

}  // namespace deephash::py_bind
