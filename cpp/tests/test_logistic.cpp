// The logistic pass (sigmoid in place + sum of softplus) at every level against a double oracle.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <vector>

#include "deephash/logistic.hpp"
#include "deephash/simd.hpp"
#include "harness.hpp"

using namespace deephash;

namespace {

double softplus(double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::fabs(t))); }
double sigmoid(double t) { return t >= 0 ? 1.0 / (1.0 + std::exp(-t)) : std::exp(t) / (1.0 + std::exp(t)); }

std::vector<float> random_logits(std::size_t n, float scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = normal(rng);
  return x;
}

// Runs the pass at the active level; checks every sigmoid to 4e-7 relative (1e-37 absolute,
// for outputs near the float underflow) and the sum to 1e-6 relative.
void check_against_oracle(const std::vector<float>& input) {
  std::vector<float> x = input;
  const double sum = sigmoid_softplus_inplace(x.data(), x.size());
  double expected = 0.0;
  int bad = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double t = input[i], want = sigmoid(t);
    expected += softplus(t);
    if (std::fabs(x[i] - want) > 4e-7 * want + 1e-37 && bad++ < 3) {
      std::ostringstream os;
      os << simd_level_name(logistic_level()) << " n=" << x.size() << " i=" << i << " t=" << t
         << ": sigmoid " << x[i] << ", expected " << want;
      harness::fail(__FILE__, __LINE__, os.str());
    }
  }
  std::ostringstream os;
  os << simd_level_name(logistic_level()) << " n=" << x.size() << ": sum " << sum << ", expected " << expected;
  if (!(std::fabs(sum - expected) <= 1e-6 * std::fabs(expected) + 1e-30)) harness::fail(__FILE__, __LINE__, os.str());
}

template <typename Fn>
void at_every_level(Fn fn) {
  for (SimdLevel level : available_simd_levels()) {
    set_simd_level(simd_level_name(level));
    fn();
  }
  set_simd_level("auto");
}

}  // namespace

TEST(logistic_matches_oracle_for_every_length_and_scale) {
  at_every_level([] {
    for (std::size_t n : {0, 1, 7, 8, 9, 255, 256, 257, 300, 4096, 100003})
      for (float scale : {0.1f, 3.0f, 30.0f}) check_against_oracle(random_logits(n, scale, unsigned(n) * 7 + 1));
  });
}

TEST(logistic_edge_values) {
  at_every_level([] {
    // Around the clamp of the exp argument (87), far beyond it, both zeros, and the tiny ones.
    std::vector<float> x = {0.0f, -0.0f, 1e-30f, -1e-30f, 86.9f, -86.9f, 87.0f, -87.0f, 87.5f, -87.5f,
                            100.0f, -100.0f, 1e30f, -1e30f, 15.9f, -15.9f, 0.5f};
    std::vector<float> y = x;
    const double sum = sigmoid_softplus_inplace(y.data(), y.size());
    double expected = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i) {
      expected += softplus(x[i]);
      const double want = sigmoid(x[i]);
      CHECK(std::fabs(y[i] - want) <= 4e-7 * want + 1e-37);
      CHECK(y[i] >= 0.0f && y[i] <= 1.0f);
    }
    CHECK(std::fabs(sum - expected) <= 1e-6 * expected);
  });
}

TEST(logistic_nan_and_infinity) {
  at_every_level([] {
    for (std::size_t at : {0, 5, 8, 13}) {  // in a full vector, and in the tail
      std::vector<float> x(14, 0.25f);
      x[at] = std::numeric_limits<float>::quiet_NaN();
      const double sum = sigmoid_softplus_inplace(x.data(), x.size());
      CHECK(std::isnan(sum));
      CHECK(std::isnan(x[at]));
      CHECK(std::fabs(x[(at + 1) % 14] - sigmoid(0.25)) < 1e-7);
    }
    std::vector<float> x(16, 1.0f);
    x[3] = std::numeric_limits<float>::infinity();
    x[4] = -std::numeric_limits<float>::infinity();
    const double sum = sigmoid_softplus_inplace(x.data(), x.size());
    CHECK(std::isinf(sum) && sum > 0);
    CHECK_EQ(x[3], 1.0f);
    CHECK(x[4] >= 0.0f && x[4] < 1e-37f);
  });
}

TEST(logistic_level_follows_simd_level) {
  set_simd_level("scalar");
  CHECK(logistic_level() == SimdLevel::Scalar);
  set_simd_level("auto");
#if defined(__x86_64__) || defined(_M_X64)
  const SimdLevel best = simd_level();
  if ((best == SimdLevel::AVX2 || best == SimdLevel::AVX512) && __builtin_cpu_supports("fma"))
    CHECK(logistic_level() == SimdLevel::AVX2);
#else
  CHECK(logistic_level() == SimdLevel::Scalar);
#endif
}

HARNESS_MAIN()
