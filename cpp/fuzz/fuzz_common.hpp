// Shared by the fuzz harnesses: a scratch path on a RAM-backed folder where there is one (save()
// fsyncs, which on a disk would cost milliseconds per input), an exact Hamming distance, and a
// check that stops the fuzzer with a message.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "deephash/common.hpp"

namespace fuzz {

inline const std::string& scratch_path(const char* name) {
  static const std::string path = [name] {
    const char* dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    return std::string(dir) + "/deephash-fuzz-" + name + "-" + std::to_string(::getpid()) + ".dhi";
  }();
  return path;
}

inline int hamming(const std::uint8_t* a, const std::uint8_t* b, std::size_t n) {
  int d = 0;
  for (std::size_t i = 0; i < n; ++i) d += __builtin_popcount(static_cast<unsigned>(a[i] ^ b[i]));
  return d;
}

[[noreturn]] inline void fail(const char* what, const char* file, int line) {
  std::fprintf(stderr, "fuzz check failed at %s:%d: %s\n", file, line, what);
  std::abort();
}

}  // namespace fuzz

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) ::fuzz::fail(#cond, __FILE__, __LINE__); \
  } while (0)
