// evaluate_retrieval: validation, the parallel loop over queries and the per-query metrics.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <new>
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

// The database class ids narrowed to T when they all fit T, else empty: int32 for the portable
// pass (half the memory traffic per query; bytes measured slower there), bytes for the
// instruction sets' own passes (64 compared per instruction). Query ids are compared as int64 in
// the portable pass, so one outside the range matches nothing; the level passes are only used
// for groups whose query labels fit.
template <typename T>
std::vector<T> narrow_classes(const LabelsView& db_labels) {
  std::vector<T> out;
  const std::int64_t* ids = db_labels.class_ids;
  if (ids != nullptr &&
      all_within(ids, db_labels.n, std::numeric_limits<T>::min(), std::numeric_limits<T>::max()))
    out.assign(ids, ids + db_labels.n);
  return out;
}

// One evaluation: the settings every query shares, and the per-query parts (average precision,
// rank cut-offs, radius curves) as separate steps. Each worker thread has its own Worker.
class Evaluation {
 public:
  Evaluation(const CodesView& query_codes, const CodesView& db_codes, const LabelsView& query_labels,
             const LabelsView& db_labels, const EvalOptions& opt)
      : qc_(query_codes), dc_(db_codes), ql_(query_labels), dl_(db_labels), opt_(opt),
        nq_(query_codes.n), nbits_(db_codes.code_size * 8), nd_(nbits_ + 1), nk_(opt.ks.size()),
        topk_(static_cast<std::int64_t>(opt.topk == 0 || opt.topk > db_codes.n ? db_codes.n : opt.topk)),
        expected_(opt.ties == TieOrder::Expected),
        harmonic_(expected_ ? detail::harmonic_table(db_codes.n) : std::vector<long double>{}),
        db_classes_i32_(narrow_classes<std::int32_t>(db_labels)),
        db_classes_u8_(narrow_classes<std::uint8_t>(db_labels)),
        prepared_db_(nullptr, &std::free) {
    prepare_byte_distances();
  }

  EvalResult run() {
    EvalResult res;
    res.average_precision.assign(opt_.want_map ? nq_ : 0, 0.0);
    res.relevant_total.assign(nq_, 0);
    std::vector<BlockSums> blocks((nq_ + kQueryBlock - 1) / kQueryBlock);
    // Each thread claims the next block as it finishes one, so a core that runs slower (another
    // process on it, a virtual CPU descheduled) does not leave the other waiting at the end. A
    // block's sums do not depend on which thread ran it.
    std::atomic<std::size_t> next{0};
    parallel_for(std::min<std::size_t>(blocks.size(), static_cast<std::size_t>(get_num_threads())),
                 [&](std::size_t, std::size_t) {
                   Worker w(*this);
                   for (std::size_t b; (b = next.fetch_add(1, std::memory_order_relaxed)) < blocks.size();)
                     run_block(w, b, blocks[b], res);
                 });
    finish(blocks, res);
    return res;
  }

 private:
  // Where the level has distances as bytes (the recording pass, ties by index), the database is
  // rewritten once into its layout, unless that copy would take more than 64 MiB and more than 4
  // times the codes' own bytes: then the ranking computes int32 distances as before.
  void prepare_byte_distances() {
    const kernels::KernelTable& table = kernels::active();
    const std::size_t cs = dc_.code_size;
    if (expected_ || cs > kernels::kRankByteCodeSize || table.rank_prepare == nullptr) return;
    const std::size_t size = kernels::rank_prepared_size(dc_.n, cs);
    if (size > (std::size_t{64} << 20) && size > 4 * dc_.n * cs) return;
    prepared_db_.reset(static_cast<std::uint8_t*>(std::aligned_alloc(32, size)));
    if (!prepared_db_) throw std::bad_alloc();
    table.rank_prepare(dc_.data, dc_.n, cs, prepared_db_.get());
    bytes_ = {prepared_db_.get(), table.rank_distances, table.rank_bytes};
  }

  struct Worker {
    explicit Worker(const Evaluation& e)
        : ranker(e.nbits_, e.db_classes_i32_.empty() ? nullptr : e.db_classes_i32_.data(),
                 e.db_classes_u8_.empty() ? nullptr : e.db_classes_u8_.data(), e.bytes_),
          rank_cuts(e.nk_) {}
    detail::GroupRanker ranker;
    detail::IndexOrderSums sums;
    std::vector<QueryRanking::Cut> rank_cuts;
    std::vector<double> exp_group_sum;
  };

  void run_block(Worker& w, std::size_t b, BlockSums& acc, EvalResult& res) const {
    acc.precision.assign(nk_, 0.0);
    acc.recall.assign(nk_, 0.0);
    if (opt_.want_radius) {
      acc.radius_precision.assign(nd_, 0.0);
      acc.radius_recall.assign(nd_, 0.0);
      acc.radius_map.assign(nd_, 0.0);
    }
    const std::size_t q_end = std::min(nq_, (b + 1) * kQueryBlock);
    for (std::size_t q = b * kQueryBlock; q < q_end; ++q) {
      const std::size_t slot = (q - b * kQueryBlock) % detail::kQueryGroup;
      if (slot == 0)
        w.ranker.rank(qc_, dc_, ql_, dl_, q, std::min(detail::kQueryGroup, q_end - q), !expected_);
      run_query(w, w.ranker[slot], q, acc, res);
    }
  }

  void run_query(Worker& w, QueryRanking& rk, std::size_t q, BlockSums& acc, EvalResult& res) const {
    const std::int64_t rel_total = rk.relevant_total;
    res.relevant_total[q] = rel_total;
    const QueryRanking::Cut ap_cut = rk.locate(topk_);
    for (std::size_t c = 0; c < nk_; ++c) w.rank_cuts[c] = rk.locate(opt_.ks[c]);

    // Deepest distance any requested part needs.
    std::size_t max_d = 0;
    if (opt_.want_map) max_d = ap_cut.distance;
    for (const auto& c : w.rank_cuts) max_d = std::max(max_d, c.distance);
    if (opt_.want_radius) max_d = nbits_;

    const std::vector<double>* group_sum = &w.sums.group_sum;
    if (expected_) {
      expected_group_sums(rk, max_d, harmonic_, w.exp_group_sum);
      group_sum = &w.exp_group_sum;
    } else {
      detail::index_order_pass(rk, max_d, opt_.want_map ? ap_cut : QueryRanking::Cut{nd_, 0}, w.rank_cuts, w.sums);
    }
    if (opt_.want_map) res.average_precision[q] = average_precision(rk, ap_cut, *group_sum, w.sums);
    const bool keep = rel_total > 0 || opt_.empty == EmptyPolicy::Zero;
    if (keep && nk_ > 0) add_rank_cuts(rk, w, acc);
    if (keep && opt_.want_radius) add_radius_curves(rk, *group_sum, acc);
  }

  // AP over the top topk_ results (NaN for an undefined one under EmptyPolicy::Skip).
  double average_precision(const QueryRanking& rk, const QueryRanking::Cut& ap_cut,
                           const std::vector<double>& group_sum, const detail::IndexOrderSums& sums) const {
    long double before = 0.0L;
    for (std::size_t d = 0; d < ap_cut.distance; ++d) before += group_sum[d];
    const std::int64_t min_den = std::min<std::int64_t>(topk_, rk.relevant_total);
    double ap = 0.0;
    bool defined = false;
    if (!expected_) {
      const std::int64_t retrieved = rk.rel_start[ap_cut.distance] + sums.cut_relevant;
      const std::int64_t den = opt_.normalize == Normalization::Retrieved ? retrieved : min_den;
      defined = den > 0;
      if (defined) ap = static_cast<double>((before + sums.cut_sum) / static_cast<long double>(den));
    } else if (opt_.normalize == Normalization::Retrieved) {
      ap = static_cast<double>(detail::expected_ap_retrieved(rk, ap_cut, before, harmonic_, defined));
    } else {
      const std::size_t d = ap_cut.distance;
      const long double sum = before + detail::expected_group_prefix_sum(rk.start[d], rk.rel_start[d], rk.count[d],
                                                                         rk.rel_count[d], ap_cut.within, harmonic_);
      defined = min_den > 0;
      if (defined) ap = static_cast<double>(sum / static_cast<long double>(min_den));
    }
    return defined || opt_.empty == EmptyPolicy::Zero ? ap : std::numeric_limits<double>::quiet_NaN();
  }

  // Precision and recall at each requested rank.
  void add_rank_cuts(const QueryRanking& rk, const Worker& w, BlockSums& acc) const {
    ++acc.rank_queries;
    for (std::size_t c = 0; c < nk_; ++c) {
      const auto& cut = w.rank_cuts[c];
      const double found = expected_ ? static_cast<double>(rk.rel_start[cut.distance]) +
                                           static_cast<double>(cut.within) *
                                               static_cast<double>(rk.rel_count[cut.distance]) /
                                               static_cast<double>(rk.count[cut.distance])
                                     : static_cast<double>(w.sums.rank_relevant[c]);
      acc.precision[c] += found / static_cast<double>(opt_.ks[c]);
      if (rk.relevant_total > 0) acc.recall[c] += found / static_cast<double>(rk.relevant_total);
    }
  }

  // Precision, recall and mAP within each Hamming radius.
  void add_radius_curves(const QueryRanking& rk, const std::vector<double>& group_sum, BlockSums& acc) const {
    ++acc.radius_queries;
    double cum = 0.0;
    for (std::size_t r = 0; r < nd_; ++r) {
      cum += group_sum[r];
      const auto retrieved = static_cast<double>(rk.start[r + 1]);
      const auto found = static_cast<double>(rk.rel_start[r + 1]);
      if (retrieved > 0) acc.radius_precision[r] += found / retrieved;
      if (rk.relevant_total > 0) acc.radius_recall[r] += found / static_cast<double>(rk.relevant_total);
      if (found > 0) acc.radius_map[r] += cum / found;
    }
  }

  // Means over queries, summed block by block in a fixed order (independent of the threads).
  void finish(const std::vector<BlockSums>& blocks, EvalResult& res) const {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    if (opt_.want_map) {
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
    if (nk_ > 0) {
      res.precision_at_k = reduce(&BlockSums::precision, nk_, res.rank_queries);
      res.recall_at_k = reduce(&BlockSums::recall, nk_, res.rank_queries);
    }
    if (opt_.want_radius) {
      res.radius_precision = reduce(&BlockSums::radius_precision, nd_, res.radius_queries);
      res.radius_recall = reduce(&BlockSums::radius_recall, nd_, res.radius_queries);
      res.radius_map = reduce(&BlockSums::radius_map, nd_, res.radius_queries);
    }
  }

  const CodesView& qc_;
  const CodesView& dc_;
  const LabelsView& ql_;
  const LabelsView& dl_;
  const EvalOptions& opt_;
  const std::size_t nq_, nbits_, nd_, nk_;
  const std::int64_t topk_;
  const bool expected_;
  const std::vector<long double> harmonic_;
  const std::vector<std::int32_t> db_classes_i32_;
  const std::vector<std::uint8_t> db_classes_u8_;  // the same as bytes, when they all fit
  std::unique_ptr<std::uint8_t, decltype(&std::free)> prepared_db_;  // the byte distances' layout
  detail::ByteDistances bytes_;
};

}  // namespace

EvalResult evaluate_retrieval(const CodesView& query_codes, const CodesView& db_codes,
                              const LabelsView& query_labels, const LabelsView& db_labels,
                              const EvalOptions& opt) {
  validate(query_codes, db_codes, query_labels, db_labels, opt);
  if (db_codes.n > UINT32_MAX)
    throw InvalidArgument("db_codes must hold fewer than 2^32 codes, got " + std::to_string(db_codes.n));
  return Evaluation(query_codes, db_codes, query_labels, db_labels, opt).run();
}

}  // namespace deephash::metrics
