// evaluate_retrieval: validation, the parallel loop over queries and the per-query metrics.
#include <algorithm>
#include <cstdint>
#include <cmath>
#include <limits>
#include <string>

#include "deephash/threads.hpp"
#include "ranking.hpp"

namespace deephash::metrics {
namespace {

using detail::QueryRanking;

void check_codes(const CodesView& c, const char* name) {
  if (c.data == nullptr || c.n == 0)
    throw InvalidArgument(std::string(name) + " must hold at least one code, got 0");
  if (c.code_size == 0) throw InvalidArgument(std::string(name) + " must have at least one byte per code, got 0");
}

void check_labels(const LabelsView& l, std::size_t n, const char* name, const char* codes_name) {
  if ((l.class_ids == nullptr) == (l.bitsets == nullptr))
    throw InvalidArgument(std::string(name) + " must be either class ids or multi-hot bitsets");
  if (l.n != n)
    throw InvalidArgument(std::string(name) + " must have one row per code of " + codes_name + " (" +
                          std::to_string(n) + "), got " + std::to_string(l.n));
  if (l.bitsets != nullptr && l.words == 0)
    throw InvalidArgument(std::string(name) + " must have at least one 64-bit word per row, got 0");
}

void validate(const CodesView& qc, const CodesView& dc, const LabelsView& ql, const LabelsView& dl,
              const EvalOptions& opt) {
  check_codes(qc, "query_codes");
  check_codes(dc, "db_codes");
  if (qc.code_size != dc.code_size)
    throw InvalidArgument("query_codes must have as many bytes per code as db_codes (" +
                          std::to_string(dc.code_size) + "), got " + std::to_string(qc.code_size));
  check_labels(ql, qc.n, "query_labels", "query_codes");
  check_labels(dl, dc.n, "db_labels", "db_codes");
  if ((ql.class_ids == nullptr) != (dl.class_ids == nullptr))
    throw InvalidArgument("query_labels and db_labels must both be class ids or both multi-hot");
  if (ql.bitsets != nullptr && ql.words != dl.words)
    throw InvalidArgument("query_labels must have as many label words as db_labels (" +
                          std::to_string(dl.words) + "), got " + std::to_string(ql.words));
  for (std::int64_t k : opt.ks) {
    if (k < 1 || static_cast<std::size_t>(k) > dc.n)
      throw InvalidArgument("ks must lie in [1, " + std::to_string(dc.n) + "] (the database size), got " +
                            std::to_string(k));
  }
}

// Per-distance precision sums under ties = Expected, for distances 0..upto.
void expected_group_sums(const QueryRanking& rk, std::size_t upto, const std::vector<long double>& harmonic,
                         std::vector<double>& out) {
  out.assign(rk.count.size(), 0.0);
  for (std::size_t d = 0; d <= upto; ++d) {
    out[d] = static_cast<double>(detail::expected_group_prefix_sum(
        rk.start[d], rk.rel_start[d], rk.count[d], rk.rel_count[d], rk.count[d], harmonic));
  }
}

// Accumulators of one block of queries; blocks are fixed-size so sums do not depend on threads.
struct BlockSums {
  std::vector<double> precision, recall;                        // per rank cut-off
  std::vector<double> radius_precision, radius_recall, radius_map;  // per radius
  std::int64_t rank_queries = 0, radius_queries = 0;
};

constexpr std::size_t kQueryBlock = 16;  // a multiple of detail::kQueryGroup

bool all_within(const std::int64_t* ids, std::size_t n, std::int64_t lo, std::int64_t hi) {
  for (std::size_t i = 0; i < n; ++i)
    if (ids[i] < lo || ids[i] > hi) return false;
  return true;
}

// The database class ids as int32 when they all fit (half the memory traffic per query; uint8
// measured slower); query ids are compared as int64, so one outside that range matches nothing.
std::vector<std::int32_t> narrow_classes(const LabelsView& db_labels) {
  std::vector<std::int32_t> out;
  const std::int64_t* ids = db_labels.class_ids;
  if (ids != nullptr && all_within(ids, db_labels.n, INT32_MIN, INT32_MAX)) out.assign(ids, ids + db_labels.n);
  return out;
}

}  // namespace

EvalResult evaluate_retrieval(const CodesView& query_codes, const CodesView& db_codes,
                              const LabelsView& query_labels, const LabelsView& db_labels,
                              const EvalOptions& opt) {
  validate(query_codes, db_codes, query_labels, db_labels, opt);
  if (db_codes.n > UINT32_MAX)
    throw InvalidArgument("db_codes must hold fewer than 2^32 codes, got " + std::to_string(db_codes.n));
  const std::size_t nq = query_codes.n, n_db = db_codes.n, nbits = db_codes.code_size * 8;
  const std::size_t nd = nbits + 1, nk = opt.ks.size();
  const auto topk = static_cast<std::int64_t>(opt.topk == 0 || opt.topk > n_db ? n_db : opt.topk);
  const bool expected = opt.ties == TieOrder::Expected;
  const std::vector<long double> harmonic = expected ? detail::harmonic_table(n_db) : std::vector<long double>{};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<std::int32_t> db_classes_i32 = narrow_classes(db_labels);

  EvalResult res;
  res.average_precision.assign(opt.want_map ? nq : 0, 0.0);
  res.relevant_total.assign(nq, 0);
  const std::size_t nblocks = (nq + kQueryBlock - 1) / kQueryBlock;
  std::vector<BlockSums> blocks(nblocks);

  parallel_for(nblocks, [&](std::size_t b_begin, std::size_t b_end) {
    detail::GroupRanker ranker(nbits, db_classes_i32.empty() ? nullptr : db_classes_i32.data());
    detail::IndexOrderSums sums;
    std::vector<QueryRanking::Cut> rank_cuts(nk);
    std::vector<double> exp_group_sum;
    for (std::size_t b = b_begin; b < b_end; ++b) {
      BlockSums& acc = blocks[b];
      acc.precision.assign(nk, 0.0);
      acc.recall.assign(nk, 0.0);
      if (opt.want_radius) {
        acc.radius_precision.assign(nd, 0.0);
        acc.radius_recall.assign(nd, 0.0);
        acc.radius_map.assign(nd, 0.0);
      }
      const std::size_t q_end = std::min(nq, (b + 1) * kQueryBlock);
      for (std::size_t q = b * kQueryBlock; q < q_end; ++q) {
        const std::size_t j = (q - b * kQueryBlock) % detail::kQueryGroup;
        if (j == 0)
          ranker.rank(query_codes, db_codes, query_labels, db_labels, q,
                      std::min(detail::kQueryGroup, q_end - q), !expected);
        QueryRanking& rk = ranker[j];
        const std::int64_t rel_total = rk.relevant_total;
        res.relevant_total[q] = rel_total;
        const QueryRanking::Cut ap_cut = rk.locate(topk);

        for (std::size_t j = 0; j < nk; ++j) rank_cuts[j] = rk.locate(opt.ks[j]);

        // Deepest distance any requested part needs.
        std::size_t max_d = 0;
        if (opt.want_map) max_d = ap_cut.distance;
        for (const auto& c : rank_cuts) max_d = std::max(max_d, c.distance);
        if (opt.want_radius) max_d = nbits;

        const std::vector<double>* group_sum = &sums.group_sum;
        if (expected) {
          expected_group_sums(rk, max_d, harmonic, exp_group_sum);
          group_sum = &exp_group_sum;
        } else {
          detail::index_order_pass(rk, max_d, opt.want_map ? ap_cut : QueryRanking::Cut{nd, 0}, rank_cuts, sums);
        }

        if (opt.want_map) {
          long double before = 0.0L;
          for (std::size_t d = 0; d < ap_cut.distance; ++d) before += (*group_sum)[d];
          const std::int64_t min_den = std::min<std::int64_t>(topk, rel_total);
          double ap = 0.0;
          bool defined = false;
          if (!expected) {
            const std::int64_t retrieved = rk.rel_start[ap_cut.distance] + sums.cut_relevant;
            const std::int64_t den = opt.normalize == Normalization::Retrieved ? retrieved : min_den;
            defined = den > 0;
            if (defined) ap = static_cast<double>((before + sums.cut_sum) / static_cast<long double>(den));
          } else if (opt.normalize == Normalization::Retrieved) {
            ap = static_cast<double>(detail::expected_ap_retrieved(rk, ap_cut, before, harmonic, defined));
          } else {
            const std::size_t d = ap_cut.distance;
            const long double sum = before + detail::expected_group_prefix_sum(
                rk.start[d], rk.rel_start[d], rk.count[d], rk.rel_count[d], ap_cut.within, harmonic);
            defined = min_den > 0;
            if (defined) ap = static_cast<double>(sum / static_cast<long double>(min_den));
          }
          res.average_precision[q] = defined || opt.empty == EmptyPolicy::Zero ? ap : nan;
        }

        const bool keep = rel_total > 0 || opt.empty == EmptyPolicy::Zero;
        if (keep && nk > 0) {
          ++acc.rank_queries;
          for (std::size_t j = 0; j < nk; ++j) {
            const auto& c = rank_cuts[j];
            const double found = expected ? static_cast<double>(rk.rel_start[c.distance]) +
                                                static_cast<double>(c.within) *
                                                    static_cast<double>(rk.rel_count[c.distance]) /
                                                    static_cast<double>(rk.count[c.distance])
                                          : static_cast<double>(sums.rank_relevant[j]);
            acc.precision[j] += found / static_cast<double>(opt.ks[j]);
            if (rel_total > 0) acc.recall[j] += found / static_cast<double>(rel_total);
          }
        }
        if (keep && opt.want_radius) {
          ++acc.radius_queries;
          double cum = 0.0;
          for (std::size_t r = 0; r < nd; ++r) {
            cum += (*group_sum)[r];
            const auto retrieved = static_cast<double>(rk.start[r + 1]);
            const auto found = static_cast<double>(rk.rel_start[r + 1]);
            if (retrieved > 0) acc.radius_precision[r] += found / retrieved;
            if (rel_total > 0) acc.radius_recall[r] += found / static_cast<double>(rel_total);
            if (found > 0) acc.radius_map[r] += cum / found;
          }
        }
      }
    }
  });

  if (opt.want_map) {
    double total = 0.0;
    for (double ap : res.average_precision) {
      if (!std::isnan(ap)) {
        total += ap;
        ++res.map_queries;
      }
    }
    res.map = res.map_queries > 0 ? total / static_cast<double>(res.map_queries) : nan;
  }

  auto reduce = [&](std::vector<double> BlockSums::*field, std::size_t len, std::int64_t used) {
    std::vector<double> out(len, 0.0);
    for (const auto& blk : blocks)
      for (std::size_t i = 0; i < (blk.*field).size(); ++i) out[i] += (blk.*field)[i];
    for (double& v : out) v = used > 0 ? v / static_cast<double>(used) : nan;
    return out;
  };
  for (const auto& blk : blocks) {
    res.rank_queries += blk.rank_queries;
    res.radius_queries += blk.radius_queries;
  }
  if (nk > 0) {
    res.precision_at_k = reduce(&BlockSums::precision, nk, res.rank_queries);
    res.recall_at_k = reduce(&BlockSums::recall, nk, res.rank_queries);
  }
  if (opt.want_radius) {
    res.radius_precision = reduce(&BlockSums::radius_precision, nd, res.radius_queries);
    res.radius_recall = reduce(&BlockSums::radius_recall, nd, res.radius_queries);
    res.radius_map = reduce(&BlockSums::radius_map, nd, res.radius_queries);
  }
  return res;
}

}  // namespace deephash::metrics
