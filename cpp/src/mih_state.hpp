// The private state of a MIHIndex, shared by mih_index.cpp (building, updates, persistence) and
// mih_search.cpp (probing and scanning).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "code_store.hpp"
#include "deephash/mih_index.hpp"
#include "mih_plan.hpp"
#include "mih_table.hpp"
#include "shared_mutex.hpp"

namespace deephash {

// Sorted storage: from kSortedMinBytes of codes on, every rebuild of the tables reorders the stored
// codes (with their ids and tombstones) by the last table's substring and the bits below it, so
// that near-identical codes lie together: the candidates of one bucket then share cache lines,
// where in insertion order each was a random read of the whole code array. The last table is
// contiguous (a bucket is a run of positions; it keeps no position list), and the 4 bytes per item
// that saves hold the ids the reordering makes explicit. Items added later form the tail, in
// insertion order, until the next rebuild.
struct MIHIndex::State {
  State(int m, int nbits) : m_(m), store_(nbits) {}
  int m_;  // tables in use (retuned on rebuilds when automatic)
  mutable SharedMutex mu_;
  CodeStore store_;
  std::vector<SubstringTable> tables_;
  std::size_t indexed_ = 0;             // positions [0, indexed_) are in the tables
  std::vector<std::uint8_t> removed_;   // tombstones by position (empty when none)
  std::size_t n_removed_ = 0;
  mutable std::atomic<std::int64_t> st_queries_{0}, st_candidates_{0}, st_buckets_{0}, st_scans_{0}, st_radius_{0};
  mutable std::atomic<std::int64_t> st_unprobed_{0};  // queries the plan sent to the scan unprobed
  mutable ProbePlan plan_;  // what recent probes were worth (mih_plan.hpp); reset by each rebuild
};

}  // namespace deephash
