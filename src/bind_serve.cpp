// The two per-request loops of `deephash serve`'s search route, done in one pass each: decoding
// the queries' base64 codes and writing the answer's JSON. At 100 queries and k = 10 they cost
// 0.1-0.3 ms each in Python, a fifth of the whole request.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

#include "bind_common.hpp"

namespace deephash::py_bind {

namespace {

void put_int(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void put_list(std::string& out, const std::int64_t* values, std::int64_t lo, std::int64_t hi) {
  out.push_back('[');
  for (std::int64_t j = lo; j < hi; ++j) {
    if (j > lo) out.push_back(',');
    put_int(out, values[j]);
  }
  out.push_back(']');
}

// {"results":[{"ids":[...],"distances":[...](,"payloads":[...])},...]}: query q's hits are
// ids[lims[q]:lims[q + 1]] with their distances; payloads, when given, is a sequence of one JSON
// text (str) or None per hit, written as is (None: null).
py::bytes hits_json(const py::handle& lims_obj, const py::handle& ids_obj, const py::handle& distances_obj,
                    const py::object& payloads) {
  const auto lims = ids_arg(lims_obj, "lims");
  const auto ids = ids_arg(ids_obj, "ids");
  const auto distances = ids_arg(distances_obj, "distances");
  const std::int64_t nq = lims.shape(0) - 1;
  const std::int64_t total = ids.shape(0);
  if (nq < 0) throw py::value_error("lims must hold at least one offset (n queries + 1), got none");
  if (distances.shape(0) != total)
    throw py::value_error("ids and distances differ in length: " + std::to_string(total) + " and " +
                          std::to_string(distances.shape(0)));
  const std::int64_t* lim = lims.data();
  if (lim[0] != 0 || lim[nq] != total)
    throw py::value_error("lims must run from 0 to the number of hits (" + std::to_string(total) + "), got " +
                          std::to_string(lim[0]) + " to " + std::to_string(lim[nq]));
  for (std::int64_t q = 0; q < nq; ++q)
    if (lim[q + 1] < lim[q])
      throw py::value_error("lims must not decrease, got " + std::to_string(lim[q]) + " then " +
                            std::to_string(lim[q + 1]) + " at query " + std::to_string(q));
  const bool with_payloads = !payloads.is_none();
  py::sequence texts;
  if (with_payloads) {
    texts = py::reinterpret_borrow<py::sequence>(payloads);
    if (static_cast<std::int64_t>(py::len(texts)) != total)
      throw py::value_error("payloads must hold one entry per hit (" + std::to_string(total) + "), got " +
                            std::to_string(py::len(texts)));
  }

  std::string out;
  out.reserve(static_cast<std::size_t>(32 + nq * 30 + total * 14));
  out.append("{\"results\":[");
  for (std::int64_t q = 0; q < nq; ++q) {
    if (q > 0) out.push_back(',');
    out.append("{\"ids\":");
    put_list(out, ids.data(), lim[q], lim[q + 1]);
    out.append(",\"distances\":");
    put_list(out, distances.data(), lim[q], lim[q + 1]);
    if (with_payloads) {
      out.append(",\"payloads\":[");
      for (std::int64_t j = lim[q]; j < lim[q + 1]; ++j) {
        if (j > lim[q]) out.push_back(',');
        const py::object text = texts[static_cast<std::size_t>(j)];
        if (text.is_none()) {
          out.append("null");
        } else {
          if (!py::isinstance<py::str>(text))
            throw py::type_error("payloads[" + std::to_string(j) + "]: expected a JSON text (str) or None, got " +
                                 std::string(py::str(py::type::of(text).attr("__name__"))));
          out.append(std::string_view(text.cast<std::string_view>()));
        }
      }
      out.push_back(']');
    }
    out.push_back('}');
  }
  out.append("]}");
  return py::bytes(out);
}

// The value of a base64 character, or -1 (the standard alphabet; '=' is handled by the caller).
constexpr int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Decodes the canonical base64 of exactly `size` bytes into out; false for anything else (a wrong
// length, a character outside the alphabet, misplaced or missing '=', nonzero unused low bits).
bool decode_one(std::string_view text, std::size_t size, std::uint8_t* out) {
  const std::size_t groups = (size + 2) / 3;
  if (text.size() != 4 * groups) return false;
  const std::size_t pad = 3 * groups - size;  // '=' at the end: 0, 1 or 2
  std::size_t o = 0;
  for (std::size_t g = 0; g < groups; ++g) {
    const bool last = g + 1 == groups;
    std::uint32_t word = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      const unsigned char c = static_cast<unsigned char>(text[4 * g + j]);
      int v;
      if (last && j >= 4 - pad) {
        if (c != '=') return false;
        v = 0;
      } else {
        v = b64_value(c);
        if (v < 0) return false;
      }
      word = (word << 6) | static_cast<std::uint32_t>(v);
    }
    const std::size_t take = last ? 3 - pad : 3;
    if (last && pad > 0 && (word & ((1u << (8 * pad)) - 1)) != 0) return false;  // non-canonical tail bits
    for (std::size_t j = 0; j < take; ++j) out[o++] = static_cast<std::uint8_t>(word >> (16 - 8 * j));
  }
  return true;
}

// The codes of a request, each the canonical base64 of code_size bytes whose last byte has no bit
// of pad_mask set: an (n, code_size) uint8 array, or None when any text is not such a code (the
// caller then finds the first bad one and says why).
py::object decode_codes(const py::list& texts, std::int64_t code_size, int pad_mask) {
  if (code_size < 1) throw py::value_error("code_size must be >= 1, got " + std::to_string(code_size));
  const std::size_t n = py::len(texts), cs = static_cast<std::size_t>(code_size);
  py::array_t<std::uint8_t> out({n, cs});
  std::uint8_t* dst = out.mutable_data();
  for (std::size_t i = 0; i < n; ++i) {
    PyObject* item = PyList_GET_ITEM(texts.ptr(), static_cast<Py_ssize_t>(i));
    if (!PyUnicode_Check(item)) return py::none();
    Py_ssize_t len = 0;
    const char* data = PyUnicode_AsUTF8AndSize(item, &len);
    if (data == nullptr) {
      PyErr_Clear();
      return py::none();
    }
    std::uint8_t* row = dst + i * cs;
    if (!decode_one(std::string_view(data, static_cast<std::size_t>(len)), cs, row)) return py::none();
    if (row[cs - 1] & pad_mask) return py::none();
  }
  return std::move(out);
}

}  // namespace

void bind_serve(py::module_& m) {
  m.def("_hits_json", &hits_json, py::arg("lims"), py::arg("ids"), py::arg("distances"),
        py::arg("payloads") = py::none(),
        "The search answer of `deephash serve` as JSON bytes: "
        "{\"results\": [{\"ids\": [...], \"distances\": [...], \"payloads\": [...]?}, ...]}, query q's hits "
        "being ids[lims[q]:lims[q + 1]]; payloads (optional) holds one JSON text or None per hit, written as is.");
  m.def("_decode_codes", &decode_codes, py::arg("texts"), py::arg("code_size"), py::arg("pad_mask"),
        "The codes of a request, a list of canonical base64 texts of code_size bytes each, the last byte having no "
        "bit of pad_mask set, as an (n, code_size) uint8 array; None if any text is not such a code.");
}

}  // namespace deephash::py_bind
