// MIHIndex: exact multi-index hashing (Norouzi, Punjani, Fleet, "Fast Exact Search in Hamming Space
// with Multi-Index Hashing", TPAMI 2014) for k-NN and range search.
//
// The nbits of a code are cut into m substrings; table j maps substring j to the items holding it.
// Pigeonhole: if two codes differ in at most m*r + a bits (0 <= a < m), then some substring
// j <= a differs in at most r bits or some substring differs in at most r - 1 bits. k-NN probes all
// keys at substring radius 0, 1, 2, ... table by table, checks each new candidate's full distance,
// and stops once the k-th best distance is within the radius the probes already guarantee: the
// result is exact, ties included (smaller id first), identical to FlatIndex.
//
// Beyond the paper's reference code: threads across queries, 64-bit ids, de-duplication by one bit
// per item and thread (a query clears only the words it marked, never the whole array),
// deletes by tombstones with compaction, a tail of recent adds scanned linearly until it is merged,
// and a per-query cost model that answers with a linear scan when probing would cost more.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "deephash/index.hpp"

namespace deephash {

class CountingTopK;  // internal (src/topk.hpp), used by the private probing methods
struct ScanView;     // internal (src/flat_scan.hpp)
struct FilterView;   // internal (src/allow_list.hpp)
struct ProbedHits;   // internal (src/mih_search.cpp)

struct MIHQueryStats {
  std::int64_t candidates = 0;  // full distances computed
  std::int64_t buckets = 0;     // table lookups
  std::int32_t radius = -1;     // substring radius reached (-1: answered by the linear scan)
  bool scanned = false;         // answered (or finished) by a linear scan
};

struct MIHStats {
  std::int64_t queries = 0, candidates = 0, buckets = 0, scans = 0, radius_sum = 0;
  // Queries sent to the linear scan without a probe, because recent probes of their kind cost
  // more than they saved (counted in scans too).
  std::int64_t unprobed = 0;
};

// One kind of search in the plan an index learns for single queries (docs/engine.md, "Learned
// plan"): k-NN with k in [from, to], or range search with a radius in [from, to] (to = -1: and
// above).
struct MIHPlanEntry {
  bool range = false;
  int from = 0, to = 0;
  std::int64_t queries = 0;             // that asked the plan since the tables were built
  double worth = 1.0;                   // the cost model's average worth of a probe, in [-1, 1]
  double probe_ns = 0.0, scan_ns = 0.0;  // measured time per query of each path (0: not timed yet)
  bool probing = true;                  // where its queries go, but for the few that explore
};

class MIHIndex final : public BinaryIndex {
 public:
  // m = 0 chooses m automatically (about nbits / log2(n), retuned when the index grows);
  // otherwise 1 <= m <= nbits with substrings of at most 32 bits.
  MIHIndex(int nbits, int m = 0);
  ~MIHIndex() override;

  IndexType type() const noexcept override { return IndexType::MIH; }
  int nbits() const noexcept override { return nbits_; }
  std::size_t ntotal() const override;
  idx_t next_id() const override;
  bool is_mmapped() const override;
  int m() const;
  bool auto_m() const noexcept { return auto_m_; }
  std::vector<int> substring_bits() const;
  std::size_t memory_usage() const;
  std::size_t tail_size() const;        // items added since the tables were last built
  std::size_t tombstones() const;       // removed items not yet compacted away
  MIHStats stats() const;
  void reset_stats();
  std::vector<MIHPlanEntry> plan() const;  // the kinds of search that asked the plan

  void add(const std::uint8_t* codes, std::size_t n) override;
  void add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids) override;
  void search(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
              idx_t* ids) const override;
  // As search (search_filtered when allow != nullptr), also filling one MIHQueryStats per query
  // when stats != nullptr and the strategy when strategy != nullptr.
  void search_with_stats(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                         idx_t* ids, MIHQueryStats* stats, const IdSelector* allow = nullptr,
                         FilterStrategy* strategy = nullptr) const;
  RangeResult range_search(const std::uint8_t* queries, std::size_t nq, int radius) const override;
  // Few allowed items: their codes are gathered and scanned. Many: the tables are probed with the
  // membership test (a query whose probing would cost more than a scan is scanned with it).
  void search_filtered(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances, idx_t* ids,
                       const IdSelector& allow, FilterStrategy* strategy = nullptr) const override;
  RangeResult range_search_filtered(const std::uint8_t* queries, std::size_t nq, int radius, const IdSelector& allow,
                                    FilterStrategy* strategy = nullptr) const override;
  std::size_t remove_ids(const idx_t* ids, std::size_t n) override;
  void reset() override;
  void reconstruct(idx_t id, std::uint8_t* out) const override;
  void reconstruct_batch(const idx_t* ids, std::size_t n, std::uint8_t* out) const override;
  std::vector<idx_t> ids() const override;
  void save(const std::string& path) const override;
  // Merges the tail and drops tombstones now (otherwise done automatically).
  void compact();

  static std::unique_ptr<MIHIndex> from_file(const io::Header& header,
                                             const std::shared_ptr<const io::MappedFile>& file,
                                             const std::string& path, bool mmap);

  static int auto_m_for(int nbits, std::size_t n) noexcept;

 private:
  void rebuild_locked();  // tables over every stored item, m retuned when automatic
  void compact_locked();
  void maybe_merge_tail_locked();
  // Probe one query; false (the caller scans it) once probing would cost more than `budget`.
  // `skip`: positions never returned (tombstones, and items a filter does not allow).
  bool probe_knn(const std::uint8_t* q, CountingTopK& top, MIHQueryStats& st, double budget,
                 const std::uint8_t* skip) const;
  // The substring radius each table searches for a range search of radius m*r + a (a + 1 tables
  // at r, the others at r - 1), chosen for the query whose substrings are keys[0..m).
  void table_radii(const std::uint64_t* keys, int r, int a, std::vector<int>& reach) const;
  // Probe one query for a range search; on success its hits, ordered by (distance, id), are in `hits`.
  bool probe_range(const std::uint8_t* q, int radius, ProbedHits& hits, MIHQueryStats& st, double budget,
                   const std::uint8_t* skip) const;
  FilterView filtered_locked(const IdSelector* allow, FilterStrategy* strategy) const;
  RangeResult range_search_with(const std::uint8_t* queries, std::size_t nq, int radius, const IdSelector* allow,
                                FilterStrategy* strategy) const;
  // What scanning costs per query, in the cost model's nanoseconds, in a search of nq queries.
  double scan_cost(std::size_t nq) const noexcept;
  ScanView scan_view() const noexcept;  // the stored codes as a linear scan sees them

  struct State;  // the lock, the stored codes, the tables, tombstones and counters (mih_state.hpp)
  int nbits_;
  bool auto_m_;
  std::unique_ptr<State> s_;
};

}  // namespace deephash
