// The AMX bank products (PackedBank) against a double oracle, where this CPU and system run them;
// elsewhere, that they say so.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "deephash/bank_products.hpp"
#include "deephash/common.hpp"
#include "harness.hpp"

using namespace deephash;

namespace {

double softplus(double t) { return std::max(t, 0.0) + std::log1p(std::exp(-std::fabs(t))); }
double sigmoid(double t) { return t >= 0 ? 1.0 / (1.0 + std::exp(-t)) : std::exp(t) / (1.0 + std::exp(t)); }

std::vector<float> uniform(std::size_t n, float scale, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-scale, scale);
  std::vector<float> x(n);
  for (float& v : x) v = d(rng);
  return x;
}

// A bank of `rows` rows of which every third is never written, written in shuffled order.
struct Case {
  std::size_t batch, dim, rows;
  float scale;  // outputs in [-scale, scale]
};

// The oracle's value and sigmoid(theta) V, in double, with unwritten rows as zeros.
void oracle(const std::vector<float>& u, const std::vector<float>& bank, std::size_t batch, std::size_t dim,
            std::size_t rows, double& total, std::vector<double>& sv) {
  total = 0.0;
  sv.assign(batch * dim, 0.0);
  for (std::size_t i = 0; i < batch; ++i)
    for (std::size_t j = 0; j < rows; ++j) {
      double t = 0.0;
      for (std::size_t k = 0; k < dim; ++k) t += double(u[i * dim + k]) * bank[j * dim + k];
      total += softplus(t);
      const double p = sigmoid(t);
      for (std::size_t k = 0; k < dim; ++k) sv[i * dim + k] += p * bank[j * dim + k];
    }
}

// Checks logistic() against the oracle: the value to 2e-5 relative and each entry of
// sigmoid(theta) V to 2e-5 of the sum of |V| over its column (about 16 significant bits in
// each product, float32 sums over the bank).
void check_case(const Case& c, std::size_t threads, unsigned seed) {
  std::mt19937 rng(seed);
  PackedBank packed(c.rows, c.dim);
  std::vector<float> bank(c.rows * c.dim, 0.0f);
  std::vector<std::int64_t> order;
  for (std::size_t j = 0; j < c.rows; ++j)
    if (j % 3 != 2 || c.rows < 3) order.push_back(static_cast<std::int64_t>(j));
  std::shuffle(order.begin(), order.end(), rng);
  // Written in batches, as a training loop writes, with the first batch written twice (the later
  // values win).
  const std::vector<float> first = uniform(std::min<std::size_t>(order.size(), 7) * c.dim, c.scale, rng);
  packed.write(first.data(), order.data(), std::min<std::size_t>(order.size(), 7));
  for (std::size_t start = 0; start < order.size(); start += 50) {
    const std::size_t n = std::min<std::size_t>(50, order.size() - start);
    const std::vector<float> values = uniform(n * c.dim, c.scale, rng);
    packed.write(values.data(), order.data() + start, n);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t k = 0; k < c.dim; ++k) bank[order[start + i] * c.dim + k] = values[i * c.dim + k];
  }
  const std::vector<float> u = uniform(c.batch * c.dim, c.scale, rng);
  std::vector<float> sv(c.batch * c.dim, -1.0f);
  const double total = packed.logistic(u.data(), c.batch, sv.data(), threads);
  double want_total;
  std::vector<double> want;
  oracle(u, bank, c.batch, c.dim, c.rows, want_total, want);
  std::ostringstream label;
  label << "batch " << c.batch << " dim " << c.dim << " rows " << c.rows << " scale " << c.scale << " threads "
        << threads;
  if (!(std::fabs(total - want_total) <= 2e-5 * std::fabs(want_total)))
    harness::fail(__FILE__, __LINE__, label.str() + ": value " + std::to_string(total) + ", expected " +
                                          std::to_string(want_total));
  std::vector<double> column_abs(c.dim, 0.0);
  for (std::size_t j = 0; j < c.rows; ++j)
    for (std::size_t k = 0; k < c.dim; ++k) column_abs[k] += std::fabs(bank[j * c.dim + k]);
  int bad = 0;
  for (std::size_t i = 0; i < c.batch; ++i)
    for (std::size_t k = 0; k < c.dim; ++k) {
      const double err = std::fabs(sv[i * c.dim + k] - want[i * c.dim + k]);
      if (!(err <= 2e-5 * column_abs[k] + 1e-6) && bad++ < 3)
        harness::fail(__FILE__, __LINE__, label.str() + ": sigmoid_v[" + std::to_string(i) + "][" +
                                              std::to_string(k) + "] = " + std::to_string(sv[i * c.dim + k]) +
                                              ", expected " + std::to_string(want[i * c.dim + k]));
    }
}

}  // namespace

TEST(unavailable_says_why) {
  if (bank_products_available()) {
    CHECK(std::string(bank_products_unavailable_reason()).empty());
    return;
  }
  std::printf("  bank products unavailable here: %s\n", bank_products_unavailable_reason());
  CHECK(!std::string(bank_products_unavailable_reason()).empty());
  bool threw = false;
  try {
    PackedBank b(10, 8);
  } catch (const std::runtime_error& e) {
    threw = std::string(e.what()).find(bank_products_unavailable_reason()) != std::string::npos;
  }
  CHECK(threw);
}

TEST(logistic_matches_oracle) {
  if (!bank_products_available()) return;
  const Case cases[] = {
      {128, 64, 1000, 1.0f},  // the training shape, smaller bank
      {1, 8, 1, 1.0f},        // one of everything, padded everywhere
      {33, 48, 70, 1.0f},     // batch, dim and rows off the tile sizes
      {17, 16, 257, 2.0f},    // a chunk and one row
      {128, 128, 600, 1.0f},  // four output tiles at a time, twice
      {5, 100, 33, 1.0f},     // dim padded to 128
      {64, 32, 520, 4.0f},    // large |theta|: saturated sigmoids
  };
  unsigned seed = 1;
  for (const Case& c : cases) check_case(c, 1, seed++);
  for (const Case& c : cases) check_case(c, 2, seed++);
}

TEST(logistic_is_deterministic_for_a_thread_count) {
  if (!bank_products_available()) return;
  std::mt19937 rng(7);
  const std::size_t rows = 3000, dim = 64, batch = 128;
  PackedBank packed(rows, dim);
  std::vector<std::int64_t> index(rows);
  for (std::size_t j = 0; j < rows; ++j) index[j] = static_cast<std::int64_t>(j);
  const std::vector<float> values = uniform(rows * dim, 1.0f, rng), u = uniform(batch * dim, 1.0f, rng);
  packed.write(values.data(), index.data(), rows);
  for (std::size_t threads : {1, 2, 3}) {
    std::vector<float> a(batch * dim), b(batch * dim);
    const double ta = packed.logistic(u.data(), batch, a.data(), threads);
    const double tb = packed.logistic(u.data(), batch, b.data(), threads);
    CHECK_EQ(ta, tb);
    CHECK(a == b);
  }
}

TEST(unwritten_rows_add_log2_and_nothing_else) {
  if (!bank_products_available()) return;
  PackedBank packed(100, 24);
  std::vector<float> u(3 * 24, 0.5f), sv(3 * 24, 1.0f);
  const double total = packed.logistic(u.data(), 3, sv.data());
  CHECK(std::fabs(total - 300 * std::log(2.0)) <= 1e-6 * total);
  for (float x : sv) CHECK_EQ(x, 0.0f);
}

TEST(nan_propagates) {
  if (!bank_products_available()) return;
  PackedBank packed(40, 16);
  std::vector<float> row(16, 0.25f);
  const std::int64_t at = 5;
  packed.write(row.data(), &at, 1);
  std::vector<float> u(2 * 16, 0.1f), sv(2 * 16);
  u[3] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(packed.logistic(u.data(), 2, sv.data())));
  CHECK(std::isnan(sv[0]));   // row 0 pairs with the written row through a NaN product
  CHECK(!std::isnan(sv[16]));  // row 1 is clean
}

TEST(bad_arguments_throw) {
  if (!bank_products_available()) return;
  CHECK_THROWS(PackedBank(0, 8), InvalidArgument);
  CHECK_THROWS(PackedBank(8, 0), InvalidArgument);
  PackedBank packed(10, 8);
  std::vector<float> values(2 * 8, 1.0f), sv(8);
  const std::int64_t bad[] = {3, 10};
  CHECK_THROWS(packed.write(values.data(), bad, 2), InvalidArgument);
  const std::int64_t negative[] = {-1};
  CHECK_THROWS(packed.write(values.data(), negative, 1), InvalidArgument);
  // nothing was written by the failed calls
  std::vector<float> u(8, 1.0f);
  CHECK(std::fabs(packed.logistic(u.data(), 1, sv.data()) - 10 * std::log(2.0)) < 1e-6);
  CHECK_THROWS(packed.logistic(u.data(), 0, sv.data()), InvalidArgument);
  CHECK_EQ(packed.memory_bytes(), std::size_t{4 * 32 * 32 * 2});
}

int main() { return harness::run_all(); }
