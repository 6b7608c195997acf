// evaluate_retrieval on hand-computed cases, ties="expected" against every database order, and
// argument validation. (The Python suite holds it to a NumPy reference on random data.)
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "deephash/metrics.hpp"
#include "harness.hpp"

using namespace deephash;
using namespace deephash::metrics;

namespace {

// One-byte codes at the given distances from the all-zero query.
std::vector<std::uint8_t> codes_at(const std::vector<int>& distances) {
  std::vector<std::uint8_t> out;
  for (int d : distances) out.push_back(static_cast<std::uint8_t>((1u << d) - 1u));
  return out;
}

struct Case {
  std::vector<std::uint8_t> query, db;
  std::vector<std::int64_t> query_labels, db_labels;

  EvalResult run(const EvalOptions& opt) const {
    return evaluate_retrieval(CodesView{query.data(), query.size(), 1}, CodesView{db.data(), db.size(), 1},
                              LabelsView{query_labels.data(), nullptr, 0, query_labels.size()},
                              LabelsView{db_labels.data(), nullptr, 0, db_labels.size()}, opt);
  }
};

bool near(double a, double b) { return std::fabs(a - b) < 1e-12; }

EvalOptions map_at(std::size_t k, Normalization norm, TieOrder ties = TieOrder::Index) {
  EvalOptions opt;
  opt.topk = k;
  opt.normalize = norm;
  opt.ties = ties;
  return opt;
}

}  // namespace

TEST(ap_at_3_under_both_normalisations) {
  // Ranks [+ - - + +] and [+ - + + -] (relevant = class 1).
  Case a{{0}, codes_at({0, 1, 2, 3, 4}), {1}, {1, 0, 0, 1, 1}};
  Case b{{0}, codes_at({0, 1, 2, 3, 4}), {1}, {1, 0, 1, 1, 0}};
  CHECK(near(a.run(map_at(3, Normalization::Retrieved)).map, 1.0));
  CHECK(near(b.run(map_at(3, Normalization::Retrieved)).map, 5.0 / 6.0));
  CHECK(near(a.run(map_at(3, Normalization::Min)).map, 1.0 / 3.0));
  CHECK(near(b.run(map_at(3, Normalization::Min)).map, 5.0 / 9.0));
  CHECK(near(a.run(map_at(0, Normalization::Retrieved)).map, 0.7));  // (1 + 2/4 + 3/5) / 3
}

TEST(expected_ties_equal_the_mean_over_every_database_order) {
  // Tie groups {0,0,0}, {1,1,1}, {2}: every permutation of the database weighs every order inside
  // the groups equally, so the index-order mean over all 7! orders is the expectation.
  const std::vector<int> dist = {0, 0, 0, 1, 1, 1, 2};
  const std::vector<std::int64_t> labels = {1, 1, 0, 2, 1, 0, 2};
  for (std::size_t k : {1, 2, 4, 7}) {
    for (Normalization norm : {Normalization::Retrieved, Normalization::Min}) {
      std::vector<int> perm(dist.size());
      std::iota(perm.begin(), perm.end(), 0);
      double total = 0.0;
      int orders = 0;
      do {
        std::vector<int> d;
        std::vector<std::int64_t> l;
        for (int i : perm) {
          d.push_back(dist[static_cast<std::size_t>(i)]);
          l.push_back(labels[static_cast<std::size_t>(i)]);
        }
        total += Case{{0, 0}, codes_at(d), {1, 2}, l}.run(map_at(k, norm)).map;
        ++orders;
      } while (std::next_permutation(perm.begin(), perm.end()));
      const double expected = Case{{0, 0}, codes_at(dist), {1, 2}, labels}.run(map_at(k, norm, TieOrder::Expected)).map;
      CHECK(near(expected, total / orders));
    }
  }
}

TEST(rank_and_radius_parts) {
  // Distances [0, 1, 1, 3], relevance [+ - + -].
  Case c{{0}, codes_at({0, 1, 1, 3}), {1}, {1, 0, 1, 0}};
  EvalOptions opt;
  opt.want_map = false;
  opt.ks = {1, 3, 4};
  opt.want_radius = true;
  const EvalResult r = c.run(opt);
  CHECK(near(r.precision_at_k[0], 1.0) && near(r.precision_at_k[1], 2.0 / 3.0) && near(r.precision_at_k[2], 0.5));
  CHECK(near(r.recall_at_k[0], 0.5) && near(r.recall_at_k[1], 1.0));
  CHECK_EQ(r.radius_map.size(), std::size_t{9});
  CHECK(near(r.radius_precision[0], 1.0) && near(r.radius_precision[1], 2.0 / 3.0) && near(r.radius_precision[3], 0.5));
  CHECK(near(r.radius_map[1], 5.0 / 6.0));
  CHECK_EQ(r.relevant_total[0], std::int64_t{2});
}

TEST(empty_queries) {
  Case c{{0, 0}, codes_at({0, 1, 2}), {1, 7}, {1, 0, 0}};
  EvalOptions opt;
  opt.empty = EmptyPolicy::Skip;
  const EvalResult r = c.run(opt);
  CHECK(near(r.map, 1.0));
  CHECK_EQ(r.map_queries, std::int64_t{1});
  CHECK(std::isnan(r.average_precision[1]));
  opt.empty = EmptyPolicy::Zero;
  CHECK(near(c.run(opt).map, 0.5));
}

TEST(validation) {
  Case c{{0}, codes_at({0, 1}), {1}, {1, 0}};
  EvalOptions opt;
  opt.ks = {3};  // beyond the database
  CHECK_THROWS(c.run(opt), InvalidArgument);
  Case short_labels{{0}, codes_at({0, 1}), {1}, {1}};
  CHECK_THROWS(short_labels.run(EvalOptions{}), InvalidArgument);
  Case no_db{{0}, {}, {1}, {}};
  CHECK_THROWS(no_db.run(EvalOptions{}), InvalidArgument);
}

HARNESS_MAIN()
