// A/B of two builds of the core: FlatIndex and MIHIndex search times, one binary per build, run in
// alternation (docs/benchmarks.md, "The house refactor, A/B").
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>
#include "deephash/flat_index.hpp"
#include "deephash/mih_index.hpp"
#include "deephash/threads.hpp"
using namespace deephash;
static double med(std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; }
int main() {
  set_num_threads(2);
  const size_t n = 1000000, cs = 8;
  std::vector<uint8_t> codes(n * cs); std::mt19937_64 r(1); for (auto& c : codes) c = r();
  // structured-ish: 64 centres with 4 flipped bits
  std::vector<uint8_t> sc(n * cs);
  for (size_t i = 0; i < n; ++i) { size_t c = r() % 64; for (size_t b = 0; b < cs; ++b) sc[i*cs+b] = codes[c*cs+b]; for (int f=0;f<4;++f){int bit=r()%64; sc[i*cs+bit/8]^=1u<<(bit%8);} }
  FlatIndex flat(64); flat.add(codes.data(), n);
  MIHIndex mih(64); mih.add(sc.data(), n);
  std::vector<dist_t> D(1000 * 10); std::vector<idx_t> I(1000 * 10);
  auto t = [&](auto f) { std::vector<double> v; for (int i = 0; i < 7; ++i) { auto a = std::chrono::steady_clock::now(); f(); v.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count()); } return med(v); };
  double f1 = t([&] { for (int q = 0; q < 50; ++q) flat.search(codes.data() + q * 997 * cs, 1, 10, D.data(), I.data()); }) / 50;
  double f1000 = t([&] { flat.search(codes.data(), 1000, 10, D.data(), I.data()); });
  double m1 = t([&] { for (int q = 0; q < 50; ++q) mih.search(sc.data() + q * 997 * cs, 1, 10, D.data(), I.data()); }) / 50;
  double m1000 = t([&] { mih.search(sc.data(), 1000, 10, D.data(), I.data()); });
  printf("flat nq=1 %.3f ms  flat nq=1000 %.2f ms  mih nq=1 %.3f ms  mih nq=1000 %.2f ms\n", f1, f1000, m1, m1000);
}
