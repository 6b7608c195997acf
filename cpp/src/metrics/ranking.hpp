// Internal to the metrics: the per-query ranking pass and the tie-order computations on top of it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "deephash/metrics.hpp"

namespace deephash::metrics::detail {

// The histogram pass walks the database as kStreams contiguous chunks interleaved item by item,
// so the per-distance counters form kStreams independent dependency chains instead of one.
inline constexpr std::size_t kStreams = 4;

// A relevant item seen by the histogram pass (ties = Index), packed in one word: the high half is
// distance * kStreams + chunk, the low half how many items of its chunk had that distance before it
// (index order). Within a chunk the records come in index order.
using RelevantItem = std::uint64_t;

// One query ranked against the whole database: distances, relevance and the per-distance
// histogram. Holds buffers of N entries, reused from query to query by one thread.
struct QueryRanking {
  std::vector<dist_t> distance;        // (N,)
  std::vector<std::uint8_t> relevant;  // (N,) 0 or 1, filled for multi-hot labels only
  std::vector<std::int64_t> count;     // items at distance d, d in [0, nbits]
  std::vector<std::int64_t> rel_count; // relevant items at distance d
  std::vector<std::int64_t> start;     // items at distance < d, d in [0, nbits + 1]
  std::vector<std::int64_t> rel_start; // relevant items at distance < d
  std::int64_t relevant_total = 0;
  std::vector<std::size_t> query_words;  // non-zero words of a multi-hot query
  // The database class ids narrowed to int32 when they all fit, else null (the int64 ids are read).
  const std::int32_t* db_classes_i32 = nullptr;
  // Per chunk of the database: items (at 2d) and relevant items (at 2d + 1) at distance d.
  std::vector<std::int64_t> chunk_hist;   // kStreams x 2 (nbits + 1)
  std::size_t chunk_begin[kStreams + 1];  // chunk c covers [chunk_begin[c], chunk_begin[c + 1])
  // With record_relevant: every relevant item, in no particular order (N + 1 slots).
  std::vector<RelevantItem> relevant_items;
  std::size_t relevant_items_count = 0;

  QueryRanking(std::size_t n_db, std::size_t nbits);

  // Fills every member for query row q (relevant_items only when record_relevant).
  void rank(const CodesView& query_codes, const CodesView& db_codes, const LabelsView& query_labels,
            const LabelsView& db_labels, std::size_t q, bool record_relevant);

  // Where rank n (1-based, n in [1, N]) falls: the distance of the tie group holding it and how
  // many items of that group lie within the first n.
  struct Cut {
    std::size_t distance;
    std::int64_t within;
  };
  Cut locate(std::int64_t n) const noexcept;

  std::size_t nbits() const noexcept { return count.size() - 1; }
};

// Results of the index-order pass (ties = Index).
struct IndexOrderSums {
  std::vector<std::int64_t> relevant_rank;  // 1-based ranks of the relevant items, ascending
  std::vector<double> group_sum;  // per distance: sum of precision at each relevant item's rank
  double cut_sum = 0.0;           // the same over the cut group's items within the AP cut-off
  std::int64_t cut_relevant = 0;  // relevant items of the cut group within the AP cut-off
  std::vector<std::int64_t> rank_relevant;  // relevant items within each rank cut-off
};

// Places every relevant item at its rank under the (distance, index) order, from the records of
// the histogram pass, then sums precision over those with distance <= max_distance. `ap_cut` is the AP cut-off's location (a distance above
// max_distance: none); `rank_cuts` the rank cut-offs, each at a distance <= max_distance.
void index_order_pass(const QueryRanking& r, std::size_t max_distance, QueryRanking::Cut ap_cut,
                      const std::vector<QueryRanking::Cut>& rank_cuts, IndexOrderSums& out);

// H[n] = 1 + 1/2 + ... + 1/n for n in [0, n_max], in extended precision.
std::vector<long double> harmonic_table(std::size_t n_max);

// Expected sum of precision-at-rank over the relevant items among the first m positions of a tie
// group of g items holding r relevant ones, in uniformly random order, with s items (of which
// rel_before relevant) ranked before the group.
long double expected_group_prefix_sum(std::int64_t s, std::int64_t rel_before, std::int64_t g,
                                      std::int64_t r, std::int64_t m,
                                      const std::vector<long double>& harmonic) noexcept;

// Expected AP@k normalised by the relevant items retrieved (0 for an order that retrieves none),
// where the cut-off cuts through a tie group. sum_before: the (expected) precision sum over the
// groups before it. Sets `defined` to whether any order retrieves a relevant item.
long double expected_ap_retrieved(const QueryRanking& r, QueryRanking::Cut cut, long double sum_before,
                                  const std::vector<long double>& harmonic, bool& defined) noexcept;

}  // namespace deephash::metrics::detail
