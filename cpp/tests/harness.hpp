// A minimal unit-test harness for the C++ core (no external framework needed to build the tests).
// TEST(name) registers a test; CHECK / CHECK_EQ / CHECK_THROWS record failures and keep going.
// main() runs every test and ends with the line "N passed, N failed".
#pragma once

#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace harness {

struct Test {
  const char* name;
  std::function<void()> fn;
};

inline std::vector<Test>& registry() {
  static std::vector<Test> tests;
  return tests;
}
inline int& failures_in_test() {
  static int n = 0;
  return n;
}
struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

inline void fail(const char* file, int line, const std::string& what) {
  ++failures_in_test();
  std::fprintf(stderr, "  %s:%d: %s\n", file, line, what.c_str());
}

inline int run_all() {
  int passed = 0, failed = 0;
  for (const Test& t : registry()) {
    failures_in_test() = 0;
    try {
      t.fn();
    } catch (const std::exception& e) {
      fail(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
    }
    if (failures_in_test() == 0) {
      ++passed;
    } else {
      ++failed;
      std::fprintf(stderr, "FAILED %s\n", t.name);
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace harness

#define HARNESS_CAT2(a, b) a##b
#define HARNESS_CAT(a, b) HARNESS_CAT2(a, b)
#define TEST(name)                                                                    \
  static void name();                                                                 \
  static harness::Register HARNESS_CAT(register_, name)(#name, &name);                \
  static void name()

#define CHECK(cond) \
  do { if (!(cond)) harness::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); } while (0)

#define CHECK_EQ(a, b)                                                                      \
  do {                                                                                      \
    const auto& va_ = (a);                                                                  \
    const auto& vb_ = (b);                                                                  \
    if (!(va_ == vb_)) {                                                                    \
      std::ostringstream os_;                                                               \
      os_ << "CHECK_EQ(" #a ", " #b "): " << va_ << " != " << vb_;                          \
      harness::fail(__FILE__, __LINE__, os_.str());                                         \
    }                                                                                       \
  } while (0)

#define CHECK_THROWS(expr, type)                                                            \
  do {                                                                                      \
    bool thrown_ = false;                                                                   \
    try { (void)(expr); } catch (const type&) { thrown_ = true; } catch (...) {}            \
    if (!thrown_) harness::fail(__FILE__, __LINE__, "CHECK_THROWS(" #expr ", " #type ")");  \
  } while (0)

#define HARNESS_MAIN() \
  int main() { return harness::run_all(); }
