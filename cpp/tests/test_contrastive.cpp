// The contrastive block pass at every level against a double oracle.
#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <vector>

#include "deephash/contrastive.hpp"
#include "deephash/simd.hpp"
#include "harness.hpp"

using namespace deephash;

namespace {

struct Case {
  std::size_t rows, cols;
  std::vector<float> r, s, u_norm, v_norm;
  float margin;
};

// Random u (rows x bits) and v (cols x bits) at a scale where the margin splits the pairs.
Case make_case(std::size_t rows, std::size_t cols, unsigned seed) {
  const std::size_t bits = 12;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> u(rows * bits), v(cols * bits);
  for (float& x : u) x = normal(rng);
  for (float& x : v) x = normal(rng);
  Case c{rows, cols, std::vector<float>(rows * cols), std::vector<float>(rows * cols),
         std::vector<float>(rows), std::vector<float>(cols), 2.0f * bits};
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t k = 0; k < bits; ++k) c.u_norm[i] += u[i * bits + k] * u[i * bits + k];
  for (std::size_t j = 0; j < cols; ++j)
    for (std::size_t k = 0; k < bits; ++k) c.v_norm[j] += v[j * bits + k] * v[j * bits + k];
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) {
      float dot = 0.0f;
      for (std::size_t k = 0; k < bits; ++k) dot += u[i * bits + k] * v[j * bits + k];
      c.r[i * cols + j] = 2.0f * dot;
      c.s[i * cols + j] = (rng() % 3 == 0) ? 1.0f : 0.0f;
    }
  return c;
}

void check_case(const Case& c) {
  std::vector<float> r = c.r, row_weight(c.rows, 0.5f);  // row_weight is added to
  const double got = contrastive_pass(r.data(), c.s.data(), c.rows, c.cols, c.u_norm.data(),
                                      c.v_norm.data(), c.margin, row_weight.data());
  double want = 0.0;
  int bad = 0, inside = 0, outside = 0;
  for (std::size_t i = 0; i < c.rows; ++i) {
    double weight = 0.5;
    for (std::size_t j = 0; j < c.cols; ++j) {
      const std::size_t at = i * c.cols + j;
      const double d = std::max(double(c.u_norm[i]) + c.v_norm[j] - c.r[at], 0.0);
      const bool similar = c.s[at] > 0;
      want += similar ? d : std::max(c.margin - d, 0.0);
      const double w = similar ? 1.0 : (d < c.margin ? -1.0 : 0.0);
      if (!similar) (d < c.margin ? inside : outside)++;
      weight += w;
      // a distance within rounding of the margin may fall either side
      if (r[at] != w && std::fabs(d - c.margin) > 1e-3 && bad++ < 3) {
        std::ostringstream os;
        os << simd_level_name(contrastive_level()) << " (" << i << ", " << j << "): weight " << r[at]
           << ", expected " << w;
        harness::fail(__FILE__, __LINE__, os.str());
      }
    }
    CHECK(std::fabs(row_weight[i] - weight) <= 1e-3 + 1e-6 * std::fabs(weight));
  }
  if (c.rows * c.cols > 100) CHECK(inside > 0 && outside > 0);  // both sides of the margin seen
  std::ostringstream os;
  os << simd_level_name(contrastive_level()) << " " << c.rows << "x" << c.cols << ": " << got << ", expected " << want;
  if (!(std::fabs(got - want) <= 1e-5 * std::fabs(want) + 1e-6)) harness::fail(__FILE__, __LINE__, os.str());
}

}  // namespace

TEST(contrastive_matches_oracle_at_every_level) {
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(simd_level_name(level));
    for (std::size_t rows : {1, 3, 16})
      for (std::size_t cols : {1, 7, 8, 9, 33, 500}) check_case(make_case(rows, cols, unsigned(rows * 1000 + cols)));
  }
  set_simd_level("auto");
}

TEST(contrastive_clamps_negative_distances_to_zero) {
  // r above |u|^2 + |v|^2 (rounding in the product): d = 0, a similar pair adds 0
  std::vector<float> r = {10.0f, 10.0f}, s = {1.0f, 0.0f}, u_norm = {2.0f}, v_norm = {3.0f, 3.0f}, w = {0.0f};
  const double got = contrastive_pass(r.data(), s.data(), 1, 2, u_norm.data(), v_norm.data(), 4.0f, w.data());
  CHECK(std::fabs(got - 4.0) < 1e-12);  // 0 for the similar pair, margin - 0 for the other
  CHECK_EQ(r[0], 1.0f);
  CHECK_EQ(r[1], -1.0f);
  CHECK_EQ(w[0], 0.0f);
}

HARNESS_MAIN()
