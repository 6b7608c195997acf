// Closed forms for ties = Expected: every tie group in uniformly random order.
//
// Take a group of g items holding r relevant ones, with s items (rel_before relevant) ranked before
// it. Position j of the group (rank s + j) is relevant with probability r / g; given that it is,
// the other r - 1 relevant items are spread uniformly over the other g - 1 positions, so the first
// j - 1 positions hold (j - 1)(r - 1)/(g - 1) of them on average (hypergeometric mean). Hence
//   E[rel_j * precision(s + j)] = (r / g) * (rel_before + 1 + (j - 1)(r - 1)/(g - 1)) / (s + j),
// and summing over j = 1..m with the harmonic numbers H:
//   sum 1/(s + j)       = H[s + m] - H[s]
//   sum (j - 1)/(s + j) = m - (s + 1)(H[s + m] - H[s]).
// When AP is normalised by the relevant items retrieved and the cut-off falls inside a group, the
// denominator is random: condition on x, the relevant items among the m positions inside the cut
// (hypergeometric), apply the same formula to those m positions, and average over x.
#include <algorithm>
#include <cmath>

#include "ranking.hpp"

namespace deephash::metrics::detail {

std::vector<long double> harmonic_table(std::size_t n_max) {
  std::vector<long double> h(n_max + 1);
  h[0] = 0.0L;
  for (std::size_t i = 1; i <= n_max; ++i) h[i] = h[i - 1] + 1.0L / static_cast<long double>(i);
  return h;
}

long double expected_group_prefix_sum(std::int64_t s, std::int64_t rel_before, std::int64_t g,
                                      std::int64_t r, std::int64_t m,
                                      const std::vector<long double>& harmonic) noexcept {
  if (r == 0 || m == 0) return 0.0L;
  const long double dh = harmonic[static_cast<std::size_t>(s + m)] - harmonic[static_cast<std::size_t>(s)];
  long double v = static_cast<long double>(rel_before + 1) * dh;
  if (r >= 2) {  // then g >= 2
    v += static_cast<long double>(r - 1) / static_cast<long double>(g - 1) *
         (static_cast<long double>(m) - static_cast<long double>(s + 1) * dh);
  }
  return static_cast<long double>(r) / static_cast<long double>(g) * v;
}

long double expected_ap_retrieved(const QueryRanking& rk, QueryRanking::Cut cut, long double sum_before,
                                  const std::vector<long double>& harmonic, bool& defined) noexcept {
  const std::size_t d = cut.distance;
  const std::int64_t g = rk.count[d], r = rk.rel_count[d], m = cut.within;
  const std::int64_t s = rk.start[d], rel_before = rk.rel_start[d];
  const std::int64_t x_lo = std::max<std::int64_t>(0, m - (g - r)), x_hi = std::min(r, m);
  defined = rel_before + x_hi > 0;
  if (!defined) return 0.0L;
  if (x_lo == x_hi) {  // the relevant count inside the cut is fixed
    const long double sum = sum_before + expected_group_prefix_sum(s, rel_before, m, x_lo, m, harmonic);
    return sum / static_cast<long double>(rel_before + x_lo);
  }
  // Hypergeometric weights C(r, x) C(g - r, m - x), built by their ratios in log space.
  const std::size_t nx = static_cast<std::size_t>(x_hi - x_lo + 1);
  std::vector<long double> log_w(nx);
  log_w[0] = 0.0L;
  for (std::int64_t x = x_lo; x < x_hi; ++x) {
    const long double num = static_cast<long double>(r - x) * static_cast<long double>(m - x);
    const long double den = static_cast<long double>(x + 1) * static_cast<long double>(g - r - m + x + 1);
    log_w[static_cast<std::size_t>(x - x_lo + 1)] = log_w[static_cast<std::size_t>(x - x_lo)] + std::log(num / den);
  }
  const long double top = *std::max_element(log_w.begin(), log_w.end());
  long double total_w = 0.0L, total = 0.0L;
  for (std::int64_t x = x_lo; x <= x_hi; ++x) {
    const long double w = std::exp(log_w[static_cast<std::size_t>(x - x_lo)] - top);
    total_w += w;
    if (rel_before + x == 0) continue;  // this order retrieves no relevant item: AP 0
    const long double sum = sum_before + expected_group_prefix_sum(s, rel_before, m, x, m, harmonic);
    total += w * sum / static_cast<long double>(rel_before + x);
  }
  return total / total_w;
}

}  // namespace deephash::metrics::detail
