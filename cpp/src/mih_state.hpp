// The private state of a MIHIndex, shared by mih_index.cpp (building, updates, persistence) and
// mih_search.cpp (probing and scanning).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "code_store.hpp"
#include "deephash/mih_index.hpp"
#include "mih_table.hpp"
#include "shared_mutex.hpp"

namespace deephash {

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
};

}  // namespace deephash
