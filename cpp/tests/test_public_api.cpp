// Built with only cpp/include/ on its include path (no internal headers): every public header
// compiles on its own, and a program can index, search, save and load through them alone.
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

#include "deephash/codes.hpp"
#include "deephash/common.hpp"
#include "deephash/contrastive.hpp"
#include "deephash/flat_index.hpp"
#include "deephash/index.hpp"
#include "deephash/logistic.hpp"
#include "deephash/metrics.hpp"
#include "deephash/mih_index.hpp"
#include "deephash/simd.hpp"
#include "deephash/threads.hpp"
#include "harness.hpp"

using namespace deephash;

TEST(index_search_save_load_through_the_public_headers) {
  std::vector<std::uint8_t> codes(100 * 8);
  for (std::size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<std::uint8_t>(i * 37 + i / 8);
  FlatIndex flat(64);
  MIHIndex mih(64);
  flat.add(codes.data(), 100);
  mih.add(codes.data(), 100);
  std::vector<dist_t> d1(5), d2(5);
  std::vector<idx_t> i1(5), i2(5);
  flat.search(codes.data() + 8 * 7, 1, 5, d1.data(), i1.data());
  mih.search(codes.data() + 8 * 7, 1, 5, d2.data(), i2.data());
  CHECK(d1 == d2 && i1 == i2);
  CHECK(i1[0] == 7 && d1[0] == 0);
  const std::string path = "/tmp/deephash-public-api-" + std::to_string(::getpid()) + ".dhi";
  mih.save(path);
  auto loaded = load_index(path, true);
  ::unlink(path.c_str());
  CHECK(loaded->type() == IndexType::MIH && loaded->ntotal() == 100 && loaded->is_mmapped());
}

HARNESS_MAIN()
