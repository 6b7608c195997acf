// The per-query ranking pass (distances, relevance, histogram) and the index-order pass.
#include <algorithm>

#include "deephash/simd.hpp"
#include "ranking.hpp"

namespace deephash::metrics::detail {

QueryRanking::QueryRanking(std::size_t n_db, std::size_t nbits)
    : distance(n_db),
      relevant(n_db),
      count(nbits + 1),
      rel_count(nbits + 1),
      start(nbits + 2),
      rel_start(nbits + 2) {}

void QueryRanking::rank(const CodesView& query_codes, const CodesView& db_codes,
                        const LabelsView& query_labels, const LabelsView& db_labels, std::size_t q) {
  const std::size_t n = db_codes.n;
  hamming_distances(query_codes.data + q * query_codes.code_size, db_codes.data, n,
                    db_codes.code_size, distance.data());
  std::fill(count.begin(), count.end(), 0);
  std::fill(rel_count.begin(), rel_count.end(), 0);
  const dist_t* dist = distance.data();
  std::uint8_t* rel = relevant.data();
  std::int64_t* cnt = count.data();
  std::int64_t* rcnt = rel_count.data();

  if (db_labels.class_ids != nullptr) {
    const std::int64_t label = query_labels.class_ids[q];
    const std::int64_t* ids = db_labels.class_ids;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t is_rel = ids[i] == label;
      rel[i] = is_rel;
      ++cnt[dist[i]];
      rcnt[dist[i]] += is_rel;
    }
  } else {
    // Only the query's non-zero words can make an item relevant: test those alone.
    const std::size_t words = db_labels.words;
    const std::uint64_t* qbits = query_labels.bitsets + q * words;
    query_words.clear();
    for (std::size_t w = 0; w < words; ++w)
      if (qbits[w] != 0) query_words.push_back(w);
    const std::uint64_t* bits = db_labels.bitsets;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t* row = bits + i * words;
      std::uint8_t is_rel = 0;
      for (std::size_t w : query_words) {
        if (row[w] & qbits[w]) {
          is_rel = 1;
          break;
        }
      }
      rel[i] = is_rel;
      ++cnt[dist[i]];
      rcnt[dist[i]] += is_rel;
    }
  }

  start[0] = 0;
  rel_start[0] = 0;
  for (std::size_t d = 0; d < count.size(); ++d) {
    start[d + 1] = start[d] + count[d];
    rel_start[d + 1] = rel_start[d] + rel_count[d];
  }
  relevant_total = rel_start.back();
}

QueryRanking::Cut QueryRanking::locate(std::int64_t n) const noexcept {
  // The first distance d with start[d + 1] >= n.
  const auto it = std::lower_bound(start.begin() + 1, start.end(), n);
  const std::size_t d = static_cast<std::size_t>(it - start.begin()) - 1;
  return Cut{d, n - start[d]};
}

void index_order_pass(const QueryRanking& r, std::size_t max_distance, QueryRanking::Cut ap_cut,
                      const RankTargets& targets, IndexOrderSums& out) {
  const std::size_t nd = r.count.size();
  out.group_sum.assign(nd, 0.0);
  out.cut_sum = 0.0;
  out.cut_relevant = 0;
  out.rank_relevant.assign(targets.cuts.size(), 0);

  // Per distance: items and relevant items placed so far, and the next rank cut-off waiting there.
  std::vector<std::int64_t> seen(nd, 0), rel_seen(nd, 0);
  std::vector<std::size_t> next_target(nd, 0), end_target(nd, 0);
  {
    std::size_t j = 0;
    for (std::size_t d = 0; d < nd; ++d) {
      next_target[d] = j;
      while (j < targets.order.size() && targets.cuts[targets.order[j]].distance == d) ++j;
      end_target[d] = j;
    }
  }
  const bool track_targets = !targets.order.empty();

  const std::size_t n = r.distance.size();
  const dist_t* dist = r.distance.data();
  const std::uint8_t* rel = r.relevant.data();
  for (std::size_t i = 0; i < n; ++i) {
    const auto d = static_cast<std::size_t>(dist[i]);
    if (d > max_distance) continue;
    const std::int64_t within = ++seen[d];
    if (rel[i]) {
      const std::int64_t rel_within = ++rel_seen[d];
      const double precision = static_cast<double>(r.rel_start[d] + rel_within) /
                               static_cast<double>(r.start[d] + within);
      out.group_sum[d] += precision;
      if (d == ap_cut.distance && within <= ap_cut.within) {
        out.cut_sum += precision;
        ++out.cut_relevant;
      }
    }
    if (track_targets) {
      std::size_t& t = next_target[d];
      while (t < end_target[d] && targets.cuts[targets.order[t]].within == within) {
        out.rank_relevant[targets.order[t]] = r.rel_start[d] + rel_seen[d];
        ++t;
      }
    }
  }
}

}  // namespace deephash::metrics::detail
