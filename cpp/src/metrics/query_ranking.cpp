// The per-query ranking pass (distances, relevance, histogram) and the index-order pass.
#include <algorithm>

#include "deephash/simd.hpp"
#include "ranking.hpp"

namespace deephash::metrics::detail {

namespace {

// Calls f(c, i) for every item i of every chunk c, in index order within each chunk, the chunks
// interleaved so that consecutive calls touch independent counters.
template <typename F>
inline void for_each_interleaved(const std::size_t (&chunk_begin)[kStreams + 1], F&& f) {
  // A local copy: byte stores in f may alias anything, which would force reloads of a member.
  std::size_t begin[kStreams + 1];
  std::copy(chunk_begin, chunk_begin + kStreams + 1, begin);
  std::size_t shortest = begin[1] - begin[0];
  for (std::size_t c = 1; c < kStreams; ++c) shortest = std::min(shortest, begin[c + 1] - begin[c]);
  for (std::size_t j = 0; j < shortest; ++j)
    for (std::size_t c = 0; c < kStreams; ++c) f(c, begin[c] + j);
  for (std::size_t c = 0; c < kStreams; ++c)
    for (std::size_t i = begin[c] + shortest; i < begin[c + 1]; ++i) f(c, i);
}

}  // namespace

QueryRanking::QueryRanking(std::size_t n_db, std::size_t nbits)
    : distance(n_db),
      relevant(n_db),
      count(nbits + 1),
      rel_count(nbits + 1),
      start(nbits + 2),
      rel_start(nbits + 2),
      chunk_hist(kStreams * 2 * (nbits + 1)) {
  for (std::size_t c = 0; c <= kStreams; ++c) chunk_begin[c] = n_db * c / kStreams;
}

namespace {

// Histogram of (distance, relevance) per chunk, bin 2d + rel, with is_relevant(i) evaluated
// inline (no flag array for class ids). With `record`, every relevant item also leaves a record.
template <typename IsRelevant>
void histogram_pass(QueryRanking& r, IsRelevant is_relevant, bool record) {
  const std::size_t nd = r.count.size();
  std::fill(r.chunk_hist.begin(), r.chunk_hist.end(), 0);
  const dist_t* dist = r.distance.data();
  std::int64_t* hist = r.chunk_hist.data();
  if (record) {
    // Every item writes a record; only a relevant one keeps it (branch-free, one spare slot).
    const std::size_t n = r.distance.size();
    if (r.relevant_items.size() < n + 1) r.relevant_items.resize(n + 1);
    RelevantItem* items = r.relevant_items.data();
    std::size_t kept = 0;
    for_each_interleaved(r.chunk_begin, [&](std::size_t c, std::size_t i) {
      const auto d = static_cast<std::size_t>(dist[i]);
      const std::size_t rel = is_relevant(i);
      std::int64_t* h = hist + c * 2 * nd + 2 * d;
      items[kept] = static_cast<RelevantItem>(d * kStreams + c) << 32 | static_cast<RelevantItem>(h[0] + h[1]);
      kept += rel;
      ++h[rel];
    });
    r.relevant_items_count = kept;
  } else {
    for_each_interleaved(r.chunk_begin, [&](std::size_t c, std::size_t i) {
      ++hist[c * 2 * nd + 2 * static_cast<std::size_t>(dist[i]) + is_relevant(i)];
    });
  }
}

}  // namespace

void QueryRanking::rank(const CodesView& query_codes, const CodesView& db_codes,
                        const LabelsView& query_labels, const LabelsView& db_labels, std::size_t q,
                        bool record_relevant) {
  const std::size_t n = db_codes.n;
  hamming_distances(query_codes.data + q * query_codes.code_size, db_codes.data, n,
                    db_codes.code_size, distance.data());
  const auto same_class = [&](const auto* ids) {
    const std::int64_t label = query_labels.class_ids[q];
    histogram_pass(*this, [=](std::size_t i) -> std::size_t { return ids[i] == label; }, record_relevant);
  };
  if (db_classes_i32 != nullptr) {
    same_class(db_classes_i32);
  } else if (db_labels.class_ids != nullptr) {
    same_class(db_labels.class_ids);
  } else {
    // Only the query's non-zero words can make an item relevant: test those alone.
    const std::size_t words = db_labels.words;
    const std::uint64_t* qbits = query_labels.bitsets + q * words;
    query_words.clear();
    for (std::size_t w = 0; w < words; ++w)
      if (qbits[w] != 0) query_words.push_back(w);
    const std::uint64_t* bits = db_labels.bitsets;
    std::uint8_t* rel = relevant.data();
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
    }
    histogram_pass(*this, [=](std::size_t i) -> std::size_t { return rel[i]; }, record_relevant);
  }

  const std::size_t nd = count.size();
  const std::int64_t* hist = chunk_hist.data();
  for (std::size_t d = 0; d < nd; ++d) {
    std::int64_t items = 0, relevant_items = 0;
    for (std::size_t c = 0; c < kStreams; ++c) {
      items += hist[c * 2 * nd + 2 * d] + hist[c * 2 * nd + 2 * d + 1];
      relevant_items += hist[c * 2 * nd + 2 * d + 1];
    }
    count[d] = items;
    rel_count[d] = relevant_items;
  }

  start[0] = 0;
  rel_start[0] = 0;
  for (std::size_t d = 0; d < nd; ++d) {
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
                      const std::vector<QueryRanking::Cut>& rank_cuts, IndexOrderSums& out) {
  const std::size_t nd = r.count.size();
  // Per (chunk, distance): items and relevant items of the earlier chunks at that distance.
  std::vector<std::int64_t> items_before(kStreams * nd), relevant_before(kStreams * nd);
  const std::int64_t* hist = r.chunk_hist.data();
  for (std::size_t d = 0; d < nd; ++d) {
    std::int64_t items = r.start[d], relevant_items = r.rel_start[d];
    for (std::size_t c = 0; c < kStreams; ++c) {
      items_before[c * nd + d] = items;
      relevant_before[c * nd + d] = relevant_items;
      items += hist[c * 2 * nd + 2 * d] + hist[c * 2 * nd + 2 * d + 1];
      relevant_items += hist[c * 2 * nd + 2 * d + 1];
    }
  }

  // A relevant item's 0-based ordinal among the relevant items in rank order, and its 1-based
  // rank, follow from its record; ordinals are distinct, so this sorts the ranks.
  out.relevant_rank.resize(static_cast<std::size_t>(r.rel_start[max_distance + 1]));
  std::int64_t* rel_rank = out.relevant_rank.data();
  // relevant_before[slot] counts up as the slot's records come by, in index order.
  for (std::size_t j = 0; j < r.relevant_items_count; ++j) {
    const RelevantItem item = r.relevant_items[j];
    const auto distance_chunk = static_cast<std::size_t>(item >> 32);
    if (distance_chunk / kStreams > max_distance) continue;  // ranked beyond every cut-off asked for
    const std::size_t slot = (distance_chunk % kStreams) * nd + distance_chunk / kStreams;
    rel_rank[relevant_before[slot]++] = items_before[slot] + static_cast<std::int64_t>(item & 0xffffffffu) + 1;
  }

  // The k-th relevant item (0-based) has precision (k + 1) / rank there.
  auto precision_sum = [&](std::size_t from, std::size_t to) {
    double sum = 0.0;
    for (std::size_t k = from; k < to; ++k)
      sum += static_cast<double>(k + 1) / static_cast<double>(rel_rank[k]);
    return sum;
  };
  out.group_sum.assign(nd, 0.0);
  for (std::size_t d = 0; d <= max_distance; ++d)
    out.group_sum[d] = precision_sum(static_cast<std::size_t>(r.rel_start[d]), static_cast<std::size_t>(r.rel_start[d + 1]));

  // Relevant items within the first n ranks: those of rank <= n, a prefix of rel_rank.
  auto relevant_within = [&](QueryRanking::Cut cut) {
    const std::int64_t n = r.start[cut.distance] + cut.within;
    const std::int64_t* first = rel_rank + r.rel_start[cut.distance];
    const std::int64_t* last = rel_rank + r.rel_start[cut.distance + 1];
    return static_cast<std::int64_t>(std::upper_bound(first, last, n) - rel_rank);
  };
  out.cut_sum = 0.0;
  out.cut_relevant = 0;
  if (ap_cut.distance <= max_distance) {
    const std::int64_t in_cut = relevant_within(ap_cut);
    out.cut_relevant = in_cut - r.rel_start[ap_cut.distance];
    out.cut_sum = precision_sum(static_cast<std::size_t>(r.rel_start[ap_cut.distance]), static_cast<std::size_t>(in_cut));
  }
  out.rank_relevant.resize(rank_cuts.size());
  for (std::size_t j = 0; j < rank_cuts.size(); ++j) out.rank_relevant[j] = relevant_within(rank_cuts[j]);
}

}  // namespace deephash::metrics::detail
