// The ranking pass (distances, relevance, histogram, records; a group of queries per database
// chunk) and the index-order placement of the relevant items.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

#include "deephash/simd.hpp"
#include "ranking.hpp"

namespace deephash::metrics::detail {

QueryRanking::QueryRanking(std::size_t nbits)
    : hist(2 * (nbits + 1)), seen_at(nbits + 1), count(nbits + 1), rel_count(nbits + 1), start(nbits + 2), rel_start(nbits + 2) {}

void QueryRanking::finish_from_records() noexcept {
  // Relevant items per distance, in one histogram per quarter of the records: index_order_pass
  // places the four quarters side by side from these, and counting them side by side keeps
  // records of one distance (nearby items often share one) from chaining every increment
  // through one counter.
  const std::size_t nd = seen_at.size(), n = relevant_items_count;
  record_parts.assign(kRecordParts * nd, 0u);
  std::size_t from[kRecordParts + 1];
  for (std::size_t s = 0; s <= kRecordParts; ++s) from[s] = n * s / kRecordParts;
  const std::size_t shortest = from[1] - from[0];  // quarters differ by at most one record
  std::uint32_t* const part = record_parts.data();
  const RelevantItem* const items = relevant_items.data();
  for (std::size_t i = 0; i < shortest; ++i) {
    ++part[items[from[0] + i] >> 32];
    ++part[nd + (items[from[1] + i] >> 32)];
    ++part[2 * nd + (items[from[2] + i] >> 32)];
    ++part[3 * nd + (items[from[3] + i] >> 32)];
  }
  for (std::size_t s = 0; s < kRecordParts; ++s)
    for (std::size_t i = from[s] + shortest; i < from[s + 1]; ++i) ++part[s * nd + (items[i] >> 32)];
  for (std::size_t d = 0; d < nd; ++d) {
    const std::int64_t rel = std::int64_t{part[d]} + part[nd + d] + part[2 * nd + d] + part[3 * nd + d];
    hist[2 * d + 1] = rel;
    hist[2 * d] = static_cast<std::int64_t>(seen_at[d]) - rel;
  }
  finish();
}

void QueryRanking::finish() noexcept {
  start[0] = 0;
  rel_start[0] = 0;
  for (std::size_t d = 0; d < count.size(); ++d) {
    count[d] = hist[2 * d] + hist[2 * d + 1];
    rel_count[d] = hist[2 * d + 1];
    start[d + 1] = start[d] + count[d];
    rel_start[d + 1] = rel_start[d] + rel_count[d];
  }
  relevant_total = rel_start.back();
}

namespace {

// One chunk of the database for M queries. Without Record: histogram bin 2d + rel. With Record:
// only a running count of the items at each distance (all that a record needs), and a record of
// every relevant item (every item writes one; only a relevant one keeps it: branch-free, which is
// why the buffer has a spare slot); the per-distance relevant counts come from the records after
// the pass (finish_from_records). is_relevant(j, i, local) tells whether database item i
// (position `local` in the chunk) is relevant to query j of the group.
template <std::size_t M, bool Record, typename IsRelevant>
void chunk_pass(QueryRanking* const* r, const dist_t* distance, std::size_t base, std::size_t len,
                IsRelevant is_relevant) {
  if constexpr (Record) {
    // All the group's queries over the chunk at once (their distances and labels sit in L1): each
    // query's counter updates form a dependency chain through memory when distances repeat, so
    // the M chains interleave.
    std::uint32_t* seen[M];
    RelevantItem* items[M];
    const dist_t* dist[M];
    std::size_t kept[M];
    for (std::size_t j = 0; j < M; ++j) {
      seen[j] = r[j]->seen_at.data();
      items[j] = r[j]->relevant_items.data();
      dist[j] = distance + j * kDbChunk;
      kept[j] = r[j]->relevant_items_count;
    }
    for (std::size_t local = 0; local < len; ++local) {
#pragma GCC unroll 4
      for (std::size_t j = 0; j < M; ++j) {
        const auto d = static_cast<std::size_t>(dist[j][local]);
        const std::size_t rel = is_relevant(j, base + local, local);
        const std::uint32_t before = seen[j][d];
        items[j][kept[j]] = static_cast<RelevantItem>(d) << 32 | before;
        kept[j] += rel;
        seen[j][d] = before + 1;
      }
    }
    for (std::size_t j = 0; j < M; ++j) r[j]->relevant_items_count = kept[j];
  } else {
    for (std::size_t j = 0; j < M; ++j) {
      std::int64_t* const hist = r[j]->hist.data();
      const dist_t* const dist = distance + j * kDbChunk;
      for (std::size_t local = 0; local < len; ++local)
        ++hist[2 * static_cast<std::size_t>(dist[local]) + is_relevant(j, base + local, local)];
    }
  }
}

template <std::size_t M, typename IsRelevant>
void chunk_pass_for(bool record, QueryRanking* const* r, const dist_t* distance, std::size_t base,
                    std::size_t len, IsRelevant is_relevant) {
  if (record)
    chunk_pass<M, true>(r, distance, base, len, is_relevant);
  else
    chunk_pass<M, false>(r, distance, base, len, is_relevant);
}

// Dispatches on the group size so the inner loop over queries is unrolled.
template <typename IsRelevant>
void chunk_pass_any(std::size_t m, bool record, QueryRanking* const* r, const dist_t* distance,
                    std::size_t base, std::size_t len, IsRelevant is_relevant) {
  static_assert(kQueryGroup == 4, "one case per group size");
  switch (m) {
    case 1: chunk_pass_for<1>(record, r, distance, base, len, is_relevant); break;
    case 2: chunk_pass_for<2>(record, r, distance, base, len, is_relevant); break;
    case 3: chunk_pass_for<3>(record, r, distance, base, len, is_relevant); break;
    default: chunk_pass_for<4>(record, r, distance, base, len, is_relevant); break;
  }
}

}  // namespace

GroupRanker::GroupRanker(std::size_t nbits, const std::int32_t* db_classes_i32, const std::uint8_t* db_classes_u8,
                         ByteDistances bytes)
    : rankings_(kQueryGroup, QueryRanking(nbits)),
      distance_(kQueryGroup * kDbChunk),
      distance8_(bytes.prepared != nullptr ? kQueryGroup * kDbChunk : 0),
      relevant_(kQueryGroup * kDbChunk),
      query_words_(kQueryGroup),
      db_classes_i32_(db_classes_i32),
      db_classes_u8_(db_classes_u8),
      bytes_(bytes) {}

void GroupRanker::rank(const CodesView& query_codes, const CodesView& db_codes, const LabelsView& query_labels,
                       const LabelsView& db_labels, std::size_t q0, std::size_t m, bool record_relevant) {
  const std::size_t n = db_codes.n, cs = db_codes.code_size;
  QueryRanking* r[kQueryGroup];
  std::int64_t label[kQueryGroup] = {};
  for (std::size_t j = 0; j < m; ++j) {
    r[j] = &rankings_[j];
    std::fill(r[j]->hist.begin(), r[j]->hist.end(), 0);
    std::fill(r[j]->seen_at.begin(), r[j]->seen_at.end(), 0u);
    r[j]->relevant_items_count = 0;
    if (record_relevant && r[j]->relevant_items.size() < n + 1) r[j]->relevant_items.resize(n + 1);
    if (db_labels.class_ids != nullptr) {
      label[j] = query_labels.class_ids[q0 + j];
    } else {
      // Only the query's non-zero words can make an item relevant: test those alone.
      const std::uint64_t* qbits = query_labels.bitsets + (q0 + j) * db_labels.words;
      query_words_[j].clear();
      for (std::size_t w = 0; w < db_labels.words; ++w)
        if (qbits[w] != 0) query_words_[j].push_back(w);
    }
  }

  // The instruction set's own recording pass where it has one (kernels::RankChunkFn), for
  // distances below 256 and relevance by a key per item: class ids narrowed to bytes or to int32
  // (where the group's query labels fit them too), or the relevance bytes of multi-hot labels.
  const std::size_t nbits = r[0]->nbits();
  kernels::RankChunkFn level_pass = nullptr;
  enum class Keys { Bytes, Int32, Relevance } keys = Keys::Relevance;
  if (record_relevant && nbits < kernels::kRankBins) {
    auto labels_within = [&](std::int64_t lo, std::int64_t hi) {
      for (std::size_t j = 0; j < m; ++j)
        if (label[j] < lo || label[j] > hi) return false;
      return true;
    };
    if (db_labels.class_ids != nullptr) {
      if (db_classes_u8_ != nullptr && labels_within(0, 255))
        keys = Keys::Bytes;
      else if (db_classes_i32_ != nullptr &&
               labels_within(std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max()))
        keys = Keys::Int32;
    }
    // Class ids that fit neither (or a query label that does not) keep the portable pass.
    if (db_labels.class_ids == nullptr || keys != Keys::Relevance) level_pass = kernels::active().rank_chunk;
  }
  // With the level pass, distances as bytes where the database was prepared for them (kDbChunk
  // is a multiple of the prepared layout's 32-code blocks).
  const bool byte_distances = level_pass != nullptr && bytes_.prepared != nullptr;
  auto run_level_pass = [&](std::size_t base, std::size_t len) {
    for (std::size_t j = 0; j < m; ++j) {
      QueryRanking& q = *r[j];
      const std::int32_t* ids = nullptr;
      std::int32_t id = 0;
      const std::uint8_t* keys_j = relevant_.data() + j * kDbChunk;
      std::uint8_t key = 1;
      if (keys == Keys::Bytes) {
        keys_j = db_classes_u8_ + base;
        key = static_cast<std::uint8_t>(label[j]);
      } else if (keys == Keys::Int32) {
        keys_j = nullptr;
        ids = db_classes_i32_ + base;
        id = static_cast<std::int32_t>(label[j]);
      }
      std::uint64_t* out = q.relevant_items.data() + q.relevant_items_count;
      q.relevant_items_count +=  // the query's relevant items in this chunk
          byte_distances ? bytes_.rank(distance8_.data() + j * kDbChunk, len, nbits, ids, id, keys_j, key,
                                       q.seen_parts.data(), out)
                         : level_pass(distance_.data() + j * kDbChunk, len, nbits, ids, id, keys_j, key,
                                      q.seen_parts.data(), out);
    }
  };
  if (level_pass != nullptr)
    for (std::size_t j = 0; j < m; ++j) r[j]->seen_parts.assign(kernels::kRankHistograms * kernels::kRankBins, 0u);

  for (std::size_t base = 0; base < n; base += kDbChunk) {
    const std::size_t len = std::min(kDbChunk, n - base);
    for (std::size_t j = 0; j < m; ++j) {
      if (byte_distances)
        bytes_.distances(bytes_.prepared + kernels::rank_prepared_size(base, cs), len, cs,
                         query_codes.data + (q0 + j) * cs, distance8_.data() + j * kDbChunk);
      else
        hamming_distances(query_codes.data + (q0 + j) * cs, db_codes.data + base * cs, len, cs,
                          distance_.data() + j * kDbChunk);
    }
    if (level_pass != nullptr && keys != Keys::Relevance) {
      run_level_pass(base, len);
    } else if (db_classes_i32_ != nullptr) {
      const std::int32_t* ids = db_classes_i32_;
      chunk_pass_any(m, record_relevant, r, distance_.data(), base, len,
                     [&](std::size_t j, std::size_t i, std::size_t) -> std::size_t { return ids[i] == label[j]; });
    } else if (db_labels.class_ids != nullptr) {
      const std::int64_t* ids = db_labels.class_ids;
      chunk_pass_any(m, record_relevant, r, distance_.data(), base, len,
                     [&](std::size_t j, std::size_t i, std::size_t) -> std::size_t { return ids[i] == label[j]; });
    } else {
      const std::size_t words = db_labels.words;
      for (std::size_t j = 0; j < m; ++j) {
        const std::uint64_t* qbits = query_labels.bitsets + (q0 + j) * words;
        std::uint8_t* rel = relevant_.data() + j * kDbChunk;
        for (std::size_t local = 0; local < len; ++local) {
          const std::uint64_t* row = db_labels.bitsets + (base + local) * words;
          std::uint8_t is_rel = 0;
          for (std::size_t w : query_words_[j]) {
            if (row[w] & qbits[w]) {
              is_rel = 1;
              break;
            }
          }
          rel[local] = is_rel;
        }
      }
      const std::uint8_t* rel = relevant_.data();
      if (level_pass != nullptr) {
        run_level_pass(base, len);
        continue;
      }
      chunk_pass_any(m, record_relevant, r, distance_.data(), base, len,
                     [&](std::size_t j, std::size_t, std::size_t local) -> std::size_t { return rel[j * kDbChunk + local]; });
    }
  }
  for (std::size_t j = 0; j < m; ++j) {
    if (level_pass != nullptr) {
      const std::uint32_t* parts = r[j]->seen_parts.data();
      for (std::size_t d = 0; d < r[j]->seen_at.size(); ++d)
        for (std::size_t h = 0; h < kernels::kRankHistograms; ++h) r[j]->seen_at[d] += parts[h * kernels::kRankBins + d];
      r[j]->finish_from_records();
    } else if (record_relevant) {
      r[j]->finish_from_records();
    } else {
      r[j]->finish();
    }
  }
}

QueryRanking::Cut QueryRanking::locate(std::int64_t n) const noexcept {
  // The first distance d with start[d + 1] >= n.
  const auto it = std::lower_bound(start.begin() + 1, start.end(), n);
  const std::size_t d = static_cast<std::size_t>(it - start.begin()) - 1;
  return Cut{d, n - start[d]};
}

namespace {

// Exact integer to double for 0 <= x < 2^52, through the bit pattern of 2^52 + x: it vectorises
// without the 64-bit integer conversions that AVX2 lacks.
inline double exact_double(std::uint64_t x) noexcept {
  const std::uint64_t bits = x | 0x4330000000000000ULL;
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d - 4503599627370496.0;
}

// q[k] = (k + 1) / rank[k]: one IEEE division each, so every build and instruction set gives the
// same values; built for AVX-512 and AVX2 too where the compiler can pick at load time.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void precision_quotients(const std::int64_t* rank, std::size_t n, double* q) noexcept {
  for (std::size_t k = 0; k < n; ++k)
    q[k] = exact_double(k + 1) / exact_double(static_cast<std::uint64_t>(rank[k]));
}

}  // namespace

void index_order_pass(const QueryRanking& r, std::size_t max_distance, QueryRanking::Cut ap_cut,
                      const std::vector<QueryRanking::Cut>& rank_cuts, IndexOrderSums& out) {
  const std::size_t nd = r.count.size();
  // A relevant item's 0-based ordinal among the relevant items in rank order, and its 1-based
  // rank, follow from its record: records come in index order, so the ordinal within its tie
  // group counts up as the group's records come by. Ordinals are distinct: this sorts the ranks.
  // The quarters of the records are placed side by side, each with its own cursors (starting past
  // the earlier quarters' records of each distance): one cursor would chain every record through
  // the counter of its distance, and relevant items crowd into a few distances.
  constexpr std::size_t P = QueryRanking::kRecordParts;
  const std::uint32_t* const parts = r.record_parts.data();
  thread_local std::vector<std::int64_t> cursors;
  cursors.resize(P * nd);
  for (std::size_t d = 0; d < nd; ++d) {
    std::int64_t at = r.rel_start[d];
    for (std::size_t s = 0; s < P; ++s) {
      cursors[s * nd + d] = at;
      at += parts[s * nd + d];
    }
  }
  out.relevant_rank.resize(static_cast<std::size_t>(r.rel_start[max_distance + 1]));
  std::int64_t* rel_rank = out.relevant_rank.data();
  {
    // Locals, not members: the stores below are int64 and could alias the size_t count, which
    // the compiler would then reload after every store.
    const RelevantItem* const items = r.relevant_items.data();
    const std::size_t n_items = r.relevant_items_count;
    const std::int64_t* const start = r.start.data();
    std::int64_t* const next = cursors.data();
    std::size_t from[P + 1];
    for (std::size_t s = 0; s <= P; ++s) from[s] = n_items * s / P;
    auto place = [&](std::size_t s, RelevantItem item) {
      const auto d = static_cast<std::size_t>(item >> 32);
      if (d > max_distance) return;  // ranked beyond every cut-off asked for
      rel_rank[next[s * nd + d]++] = start[d] + static_cast<std::int64_t>(item & 0xffffffffu) + 1;
    };
    const std::size_t shortest = from[1] - from[0];
    for (std::size_t i = 0; i < shortest; ++i) {
      static_assert(P == 4, "one line per part");
      place(0, items[from[0] + i]);
      place(1, items[from[1] + i]);
      place(2, items[from[2] + i]);
      place(3, items[from[3] + i]);
    }
    for (std::size_t s = 0; s < P; ++s)
      for (std::size_t i = from[s] + shortest; i < from[s + 1]; ++i) place(s, items[i]);
  }

  // The k-th relevant item (0-based) has precision (k + 1) / rank there: the quotients are
  // computed in one vectorised pass, then summed in four partial sums (the additions do not wait
  // on each other), always in the same order.
  thread_local std::vector<double> quotient;
  quotient.resize(out.relevant_rank.size());
  precision_quotients(rel_rank, quotient.size(), quotient.data());
  const double* prec = quotient.data();
  auto precision_sum = [&](std::size_t from, std::size_t to) {
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    std::size_t k = from;
    for (; k + 4 <= to; k += 4) {
      s0 += prec[k];
      s1 += prec[k + 1];
      s2 += prec[k + 2];
      s3 += prec[k + 3];
    }
    for (; k < to; ++k) s0 += prec[k];
    return (s0 + s1) + (s2 + s3);
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
