// The AMX bank products (PackedBank: logistic and contrastive) against a double oracle, where this CPU and system run them;
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

// The contrastive oracle in double: value, W V and W 1 with W = S - (1 - S)[d < margin].
void contrastive_oracle(const std::vector<float>& u, const std::vector<std::int32_t>& u_class,
                        const std::vector<float>& bank, const std::vector<std::int32_t>& bank_class, std::size_t batch,
                        std::size_t dim, std::size_t rows, float margin, double& total, std::vector<double>& wv,
                        std::vector<double>& ws) {
  total = 0.0;
  wv.assign(batch * dim, 0.0);
  ws.assign(batch, 0.0);
  for (std::size_t i = 0; i < batch; ++i)
    for (std::size_t j = 0; j < rows; ++j) {
      double d = 0.0;
      for (std::size_t k = 0; k < dim; ++k) {
        const double diff = double(u[i * dim + k]) - bank[j * dim + k];
        d += diff * diff;
      }
      const bool similar = bank_class[j] >= 0 && bank_class[j] == u_class[i];
      total += similar ? d : std::max(double(margin) - d, 0.0);
      const double w = similar ? 1.0 : (d < margin ? -1.0 : 0.0);
      ws[i] += w;
      for (std::size_t k = 0; k < dim; ++k) wv[i * dim + k] += w * bank[j * dim + k];
    }
}

TEST(contrastive_matches_oracle) {
  if (!bank_products_available()) return;
  const Case cases[] = {{128, 64, 1000, 1.0f}, {1, 8, 1, 1.0f}, {33, 48, 70, 1.0f}, {17, 16, 257, 1.0f},
                        {128, 128, 600, 1.0f}, {5, 100, 33, 1.0f}};
  unsigned seed = 40;
  for (const Case& c : cases)
    for (std::size_t threads : {1, 2}) {
      std::mt19937 rng(seed++);
      PackedBank packed(c.rows, c.dim);
      std::vector<float> bank(c.rows * c.dim, 0.0f);
      std::vector<std::int32_t> bank_class(c.rows, -1);
      std::vector<std::int64_t> order;
      for (std::size_t j = 0; j < c.rows; ++j)
        if (j % 3 != 2 || c.rows < 3) order.push_back(static_cast<std::int64_t>(j));
      std::shuffle(order.begin(), order.end(), rng);
      const std::vector<float> values = uniform(order.size() * c.dim, c.scale, rng);
      std::vector<std::int32_t> classes(order.size());
      for (std::size_t i = 0; i < order.size(); ++i) {
        classes[i] = static_cast<std::int32_t>(rng() % 4);
        bank_class[order[i]] = classes[i];
        for (std::size_t k = 0; k < c.dim; ++k) bank[order[i] * c.dim + k] = values[i * c.dim + k];
      }
      packed.write(values.data(), order.data(), order.size(), classes.data());
      const std::vector<float> u = uniform(c.batch * c.dim, c.scale, rng);
      std::vector<float> u_norm(c.batch, 0.0f);
      std::vector<std::int32_t> u_class(c.batch);
      for (std::size_t i = 0; i < c.batch; ++i) {
        for (std::size_t k = 0; k < c.dim; ++k) u_norm[i] += u[i * c.dim + k] * u[i * c.dim + k];
        u_class[i] = static_cast<std::int32_t>(rng() % 4);
      }
      // the margin near the median distance (2 dim scale^2 / 3): pairs on both sides of it
      const float margin = 2.0f * c.dim * c.scale * c.scale / 3.0f;
      std::vector<float> wv(c.batch * c.dim, -7.0f), ws(c.batch, -7.0f);
      const double total = packed.contrastive(u.data(), u_norm.data(), u_class.data(), c.batch, margin, wv.data(),
                                              ws.data(), threads);
      double want_total;
      std::vector<double> want_wv, want_ws;
      contrastive_oracle(u, u_class, bank, bank_class, c.batch, c.dim, c.rows, margin, want_total, want_wv, want_ws);
      std::ostringstream label;
      label << "contrastive batch " << c.batch << " dim " << c.dim << " rows " << c.rows << " threads " << threads;
      // each d carries an error near 1e-6 of |u|^2 + |v|^2 (cancellation when d is small, or
      // close to the margin), so the value is compared against the sum of those norms
      double norms = 0.0;
      for (std::size_t i = 0; i < c.batch; ++i)
        for (std::size_t j = 0; j < c.rows; ++j) {
          double vn = 0.0;
          for (std::size_t k = 0; k < c.dim; ++k) vn += double(bank[j * c.dim + k]) * bank[j * c.dim + k];
          norms += u_norm[i] + vn;
        }
      if (!(std::fabs(total - want_total) <= 2e-5 * norms))
        harness::fail(__FILE__, __LINE__, label.str() + ": value " + std::to_string(total) + ", expected " +
                                              std::to_string(want_total));
      // a pair within rounding of the margin may fall on the other side of it: allow a few
      int flipped = 0;
      for (std::size_t i = 0; i < c.batch; ++i) {
        const double err = std::fabs(ws[i] - want_ws[i]);
        if (err > 0.5) flipped += static_cast<int>(err + 0.5);
      }
      if (flipped > 2) harness::fail(__FILE__, __LINE__, label.str() + ": " + std::to_string(flipped) + " weights differ");
      double worst = 0.0, scale = 0.0;
      for (std::size_t i = 0; i < c.batch * c.dim; ++i) {
        worst = std::max(worst, std::fabs(wv[i] - want_wv[i]));
        scale = std::max(scale, std::fabs(want_wv[i]));
      }
      // float32 sums of exact weights times 16-bit values, plus any flipped pair (|v| <= scale)
      if (!(worst <= 2e-5 * scale + 1e-5 + flipped * c.scale))
        harness::fail(__FILE__, __LINE__, label.str() + ": weight_v off by " + std::to_string(worst));
    }
}

TEST(contrastive_unwritten_rows_are_dissimilar_zeros) {
  if (!bank_products_available()) return;
  PackedBank packed(50, 16);
  std::vector<float> u(2 * 16, 0.5f), u_norm(2, 16 * 0.25f), wv(2 * 16), ws(2);
  const std::int32_t u_class[] = {0, 1};
  // d = |u|^2 = 4 for every pair: inside a margin of 5, outside a margin of 3
  double total = packed.contrastive(u.data(), u_norm.data(), u_class, 2, 5.0f, wv.data(), ws.data());
  CHECK(std::fabs(total - 2 * 50 * 1.0) < 1e-9);
  CHECK_EQ(ws[0], -50.0f);
  for (float x : wv) CHECK_EQ(x, 0.0f);
  total = packed.contrastive(u.data(), u_norm.data(), u_class, 2, 3.0f, wv.data(), ws.data());
  CHECK_EQ(total, 0.0);
  CHECK_EQ(ws[1], 0.0f);
  CHECK_THROWS(packed.contrastive(u.data(), u_norm.data(), u_class, 0, 3.0f, wv.data(), ws.data()), InvalidArgument);
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
  CHECK_EQ(packed.memory_bytes(), std::size_t{4 * 32 * 32 * 2 + 32 * 4 + 32 * 4});
}

int main() { return harness::run_all(); }
