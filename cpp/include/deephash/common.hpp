// Shared types, constants and the exception types of the deephash core.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace deephash {

using idx_t = std::int64_t;   // item ids: int64, stable, >= 0 for real items
using dist_t = std::int32_t;  // Hamming distances: small integers in [0, nbits]

// Padding for k-NN rows that have fewer than k results (the FAISS convention).
inline constexpr idx_t kMissingId = -1;
inline constexpr dist_t kMissingDistance = std::numeric_limits<dist_t>::max();

// Base of every error thrown by the core. Errors are thrown only at validation boundaries;
// kernels never throw.
struct Error {
  virtual ~Error() = default;
};

// Bad argument value (shape, width, k, radius, duplicate ids, ...). Maps to Python ValueError.
struct InvalidArgument : std::invalid_argument, Error {
  using std::invalid_argument::invalid_argument;
};

// An id that the index does not hold. Maps to Python KeyError.
struct UnknownId : std::out_of_range, Error {
  using std::out_of_range::out_of_range;
};

// A file that cannot be read or written, or that fails validation (truncated, corrupted, foreign,
// newer format). Maps to Python deephash_engine.IndexFileError (an OSError).
struct FileError : std::runtime_error, Error {
  using std::runtime_error::runtime_error;
};

// The widest code, in bits, that an index holds and that the file format stores. One limit for
// constructors, pack_bits and the loader, so that every index saved can be loaded back.
inline constexpr std::int64_t kMaxNbits = std::int64_t{1} << 20;

// Validate nbits: any positive number of bits, at most kMaxNbits. Throws InvalidArgument naming
// `what`. A code of nbits bits takes code_size_for(nbits) = ceil(nbits / 8) bytes; the padding
// bits nbits .. 8 * code_size - 1 (the high bits of the last byte) are zero (codes.hpp checks them).
inline void check_nbits(std::int64_t nbits, const char* what = "nbits") {
  if (nbits <= 0) {
    throw InvalidArgument(std::string(what) + " must be a positive number of bits, got " + std::to_string(nbits));
  }
  if (nbits > kMaxNbits) {
    throw InvalidArgument(std::string(what) + " must be at most " + std::to_string(kMaxNbits) + " (2^20), got " +
                          std::to_string(nbits));
  }
}

// Bytes per code of nbits bits: ceil(nbits / 8).
inline constexpr std::size_t code_size_for(std::int64_t nbits) noexcept {
  return static_cast<std::size_t>((nbits + 7) / 8);
}

}  // namespace deephash
