// The index methods whose binding is the same for every index class (BinaryIndex and
// GpuFlatIndex): argument checks, the GIL released around the core call, NumPy results.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bind_common.hpp"

namespace deephash::py_bind::ops {

template <class Index>
void add(Index& index, const py::handle& codes_obj) {
  auto codes = codes_arg(codes_obj, "codes", static_cast<std::int64_t>(index.code_size()));
  const std::size_t n = static_cast<std::size_t>(codes.shape(0));
  py::gil_scoped_release release;
  index.add(codes.data(), n);
}

template <class Index>
void add_with_ids(Index& index, const py::handle& codes_obj, const py::handle& ids_obj) {
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

template <class Index>
std::size_t remove_ids(Index& index, const py::handle& ids_obj) {
  auto ids = ids_arg(ids_obj, "ids");
  const std::size_t n = static_cast<std::size_t>(ids.shape(0));
  py::gil_scoped_release release;
  return index.remove_ids(ids.data(), n);
}

template <class Index>
void reset(Index& index) {
  py::gil_scoped_release release;
  index.reset();
}

template <class Index>
py::array_t<std::uint8_t> reconstruct(const Index& index, const py::handle& id_obj) {
  const std::int64_t id = int_arg(id_obj, "id");
  py::array_t<std::uint8_t> out(static_cast<py::ssize_t>(index.code_size()));
  std::uint8_t* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    index.reconstruct(id, dst);
  }
  return out;
}

template <class Index>
py::array_t<std::uint8_t> reconstruct_batch(const Index& index, const py::handle& ids_obj) {
  auto ids = ids_arg(ids_obj, "ids");
  const std::size_t n = static_cast<std::size_t>(ids.shape(0));
  py::array_t<std::uint8_t> out({n, index.code_size()});
  std::uint8_t* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    index.reconstruct_batch(ids.data(), n, dst);
  }
  return out;
}

template <class Index>
py::array_t<std::int64_t> ids(const Index& index) {
  std::vector<std::int64_t> out;
  {
    py::gil_scoped_release release;
    out = index.ids();
  }
  return adopt(std::move(out));
}

template <class Index>
void save(const Index& index, const py::object& path) {
  const std::string p = path_arg(path);
  py::gil_scoped_release release;
  index.save(p);
}

}  // namespace deephash::py_bind::ops
