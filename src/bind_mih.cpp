// MIHIndex: exact multi-index hashing.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "bind_common.hpp"
#include "deephash/mih_index.hpp"

namespace deephash::py_bind {

void bind_mih(py::module_& m) {
  py::class_<MIHIndex, BinaryIndex>(m, "MIHIndex",
      "Exact k-NN and range search by multi-index hashing (Norouzi, Punjani, Fleet 2014).\n"
      "Same interface and identical results as FlatIndex, ties included; sub-linear on structured codes,\n"
      "and a per-query linear scan when probing would cost more (uniform codes, large radius or k).")
      .def(py::init([](const py::handle& nbits_obj, py::object m) {
             const std::int64_t nbits = int_arg(nbits_obj, "nbits");
             check_nbits(nbits);
             const std::int64_t mm = m.is_none() ? 0 : int_arg(m, "m");
             if (!m.is_none() && (mm <= 0 || mm > nbits))
               throw py::value_error("m must be a positive int (at most nbits) or None, got " + std::to_string(mm));
             return std::make_unique<MIHIndex>(static_cast<int>(nbits), static_cast<int>(mm));
           }), py::arg("nbits"), py::arg("m") = py::none(),
           "m: number of substring tables, or None to choose about nbits / log2(ntotal) and retune it\n"
           "when the tables are rebuilt as the index grows.")
      .def_property_readonly("m", unlocked(&MIHIndex::m), "Number of substring tables in use.")
      .def_property_readonly("auto_m", &MIHIndex::auto_m, "True when m is chosen automatically.")
      .def_property_readonly("substring_bits", unlocked(&MIHIndex::substring_bits), "Bits of each substring.")
      .def("memory_usage", &MIHIndex::memory_usage, py::call_guard<py::gil_scoped_release>(), "Bytes held by codes, ids and tables.")
      .def_property_readonly("tail_size", unlocked(&MIHIndex::tail_size),
                             "Items added since the tables were built (scanned linearly until merged).")
      .def_property_readonly("tombstones", unlocked(&MIHIndex::tombstones), "Removed items not yet compacted away.")
      .def("compact", [](MIHIndex& index) {
             py::gil_scoped_release release;
             index.compact();
           }, "Merge the tail into the tables and drop tombstones now.")
      .def("stats", [](const MIHIndex& index) {
             const MIHStats s = index.stats();
             py::dict d;
             d["queries"] = s.queries;
             d["candidates"] = s.candidates;
             d["buckets"] = s.buckets;
             d["linear_scans"] = s.scans;
             d["unprobed_scans"] = s.unprobed;
             d["mean_radius"] = s.queries ? static_cast<double>(s.radius_sum) / static_cast<double>(s.queries) : 0.0;
             d["mean_candidates"] = s.queries ? static_cast<double>(s.candidates) / static_cast<double>(s.queries) : 0.0;
             return d;
           }, "Counters since creation or reset_stats(): queries, candidates checked, buckets probed,\n"
              "queries answered by a linear scan (of which unprobed_scans went to it without a probe,\n"
              "their kind of search having lately cost more to probe than to scan), mean substring\n"
              "radius reached.")
      .def("reset_stats", &MIHIndex::reset_stats)
      .def("plan", [](const MIHIndex& index) {
             py::list out;
             for (const MIHPlanEntry& e : index.plan()) {
               py::dict d;
               d["search"] = e.range ? "range" : "knn";
               if (e.range) {
                 d["radius"] = e.to < 0 ? py::object(py::make_tuple(e.from, py::none())) : py::object(py::make_tuple(e.from, e.to));
               } else {
                 d["k"] = py::make_tuple(e.from, e.to);
               }
               d["queries"] = e.queries;
               d["path"] = e.probing ? "probe" : "scan";
               d["model_worth"] = e.worth;
               d["probe_us"] = e.probe_ns > 0 ? py::object(py::float_(e.probe_ns / 1e3)) : py::object(py::none());
               d["scan_us"] = e.scan_ns > 0 ? py::object(py::float_(e.scan_ns / 1e3)) : py::object(py::none());
               out.append(d);
             }
             return out;
           }, "What the index has learned about single queries (searches of fewer than 16 queries,\n"
              "unfiltered) since its tables were built, one dict per kind of search that asked:\n"
              "search ('knn' with a range of k, or 'range' with a range of radii), queries, path\n"
              "(where its queries go: 'probe' or 'scan'; every 128 queries or more the other path\n"
              "takes one, four in a row for the scan, to keep both timed), model_worth (the cost\n"
              "model's average saving of a probe against a scan, -1..1) and the measured\n"
              "microseconds per query of each path (None until timed).")
      .def_static("auto_m_for", &MIHIndex::auto_m_for, py::arg("nbits"), py::arg("n"),
                  "The table count chosen automatically for n codes of nbits bits.")
      .def("search_with_stats", [](const MIHIndex& index, const py::handle& queries_obj, const py::handle& k_obj,
                                   const py::handle& allow_obj) {
             const std::int64_t k = k_arg(k_obj);
             const AllowArg allow = allow_arg(allow_obj);
             FilterStrategy strategy = FilterStrategy::None;
             auto queries = codes_arg(queries_obj, "queries", static_cast<std::int64_t>(index.code_size()));
             const std::size_t nq = static_cast<std::size_t>(queries.shape(0));
             py::array_t<dist_t> D({nq, static_cast<std::size_t>(k)});
             py::array_t<idx_t> I({nq, static_cast<std::size_t>(k)});
             std::vector<MIHQueryStats> st(nq);
             dist_t* d = D.mutable_data();
             idx_t* i = I.mutable_data();
             {
               py::gil_scoped_release release;
               index.search_with_stats(queries.data(), nq, static_cast<std::size_t>(k), d, i, st.data(), allow.selector,
                                       &strategy);
             }
             py::array_t<std::int64_t> cand(static_cast<py::ssize_t>(nq)), buck(static_cast<py::ssize_t>(nq));
             py::array_t<std::int32_t> rad(static_cast<py::ssize_t>(nq));
             py::array_t<bool> scanned(static_cast<py::ssize_t>(nq));
             for (std::size_t q = 0; q < nq; ++q) {
               cand.mutable_data()[q] = st[q].candidates;
               buck.mutable_data()[q] = st[q].buckets;
               rad.mutable_data()[q] = st[q].radius;
               scanned.mutable_data()[q] = st[q].scanned;
             }
             py::dict stats;
             stats["candidates"] = cand;
             stats["buckets"] = buck;
             stats["radius"] = rad;
             stats["linear_scan"] = scanned;
             stats["filter"] = std::string(filter_strategy_name(strategy));
             return py::make_tuple(D, I, stats);
           }, py::arg("queries"), py::arg("k"), py::arg("allow") = py::none(),
           "search() plus per-query statistics: candidates checked, buckets probed, substring radius\n"
           "reached, whether the query was answered by a linear scan, and how a filter ran ('none',\n"
           "'gather': the few allowed codes scanned, 'probe': the tables probed with the filter).")
      .def("__repr__", [](const MIHIndex& index) {
        return "MIHIndex(nbits=" + std::to_string(index.nbits()) + ", m=" + std::to_string(index.m()) +
               ", ntotal=" + std::to_string(index.ntotal()) + ")";
      });
}

}  // namespace deephash::py_bind
