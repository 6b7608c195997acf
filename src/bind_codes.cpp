// pack_bits / unpack_bits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "bind_common.hpp"
#include "deephash/codes.hpp"

namespace deephash::py_bind {

namespace {

template <class T>
py::array_t<std::uint8_t> pack_typed(const py::array& a) {
  auto arr = py::array_t<T, py::array::c_style>::ensure(a);
  const std::size_t n = static_cast<std::size_t>(arr.shape(0)), d = static_cast<std::size_t>(arr.shape(1));
  check_nbits(static_cast<std::int64_t>(d), "bits: the number of columns (nbits)");
  py::array_t<std::uint8_t> out({n, code_size_for(static_cast<std::int64_t>(d))});
  const T* src = arr.data();
  std::uint8_t* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    pack_bits<T>(src, n, d, dst);
  }
  return out;
}

py::array_t<std::uint8_t> pack(const py::array& input) {
  py::array a = input;
  if (a.ndim() == 1) a = a.attr("reshape")(1, -1).cast<py::array>();
  if (a.ndim() != 2)
    throw py::value_error("bits must be a 1-D or 2-D array, got " + std::to_string(a.ndim()) + " dimensions");
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  if (kind == 'b') return pack_typed<bool>(a);
  if (kind == 'f' && size == 4) return pack_typed<float>(a);
  if (kind == 'f' && size == 8) return pack_typed<double>(a);
  if (kind == 'f') return pack_typed<double>(a.attr("astype")("float64").cast<py::array>());  // float16
  if (kind == 'i' && size == 1) return pack_typed<std::int8_t>(a);
  if (kind == 'i' && size == 2) return pack_typed<std::int16_t>(a);
  if (kind == 'i' && size == 4) return pack_typed<std::int32_t>(a);
  if (kind == 'i' && size == 8) return pack_typed<std::int64_t>(a);
  if (kind == 'u') {
    throw py::type_error("bits must be real (signed or floating) or bool values, got " + dtype_name(a) +
                         ": unsigned values are all >= 0 and would give all-ones codes");
  }
  throw py::type_error("bits must be a real or bool array, got dtype " + dtype_name(a));
}

py::array_t<std::uint8_t> unpack(const py::handle& codes_obj, py::object nbits_obj) {
  auto codes = codes_arg(codes_obj, "codes", -1);
  const std::size_t n = static_cast<std::size_t>(codes.shape(0)), cs = static_cast<std::size_t>(codes.shape(1));
  std::size_t nbits = cs * 8;
  if (!nbits_obj.is_none()) {
    const long long v = nbits_obj.cast<long long>();
    if (v <= 0 || static_cast<std::size_t>(v) > cs * 8)
      throw py::value_error("nbits must be in [1, " + std::to_string(cs * 8) + "] for codes of " + std::to_string(cs) +
                            " bytes, got " + std::to_string(v));
    nbits = static_cast<std::size_t>(v);
  }
  py::array_t<std::uint8_t> out({n, nbits});
  const std::uint8_t* src = codes.data();
  std::uint8_t* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    unpack_bits(src, n, cs, nbits, dst);
  }
  return out;
}

}  // namespace

void bind_codes(py::module_& m) {
  m.attr("MAX_NBITS") = kMaxNbits;  // the widest code any index, pack_bits and the file format take
  m.def("pack_bits", &pack, py::arg("bits"),
        "Pack an (n, nbits) real or bool array, any nbits >= 1, into (n, ceil(nbits/8)) uint8 codes: bit j is\n"
        "bit j%8 of byte j/8 (LSB first), the padding bits of the last byte are 0; a real value x gives 1 iff\n"
        "x >= 0, a bool is its own bit. A 1-D array is one row.");
  m.def("unpack_bits", &unpack, py::arg("codes"), py::arg("nbits") = py::none(),
        "Unpack (n, code_size) uint8 codes into an (n, nbits) uint8 array of 0/1 (nbits defaults to 8*code_size).");
}

}  // namespace deephash::py_bind
