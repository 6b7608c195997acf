// CountingTopK: exact k-smallest (distance, id) selection for one query over a stream of
// candidates, built for Hamming distances (small integers).
//
// It keeps a running bound: candidates above `max_accepted()` are rejected by the caller with one
// integer compare (the SIMD filter kernels take that bound). Accepted candidates go to a buffer of
// at most about 2k entries; when it fills, the k best (distance, id) pairs are selected and the
// bound drops to the k-th distance. When ids arrive in increasing order (a scan in storage order of
// an index whose ids grew with storage) a later candidate at the k-th distance always loses the tie,
// so the bound becomes strict (k-th distance - 1); otherwise ties at the bound are kept and
// resolved by id at the next selection. Memory is O(k) per query, independent of nbits.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include "deephash/common.hpp"

namespace deephash {

class CountingTopK {
 public:
  using Entry = std::pair<dist_t, idx_t>;  // ordered lexicographically: (distance, id)

  CountingTopK() = default;
  CountingTopK(std::size_t k, dist_t max_distance, bool ids_increasing) { reset(k, max_distance, ids_increasing); }

  void reset(std::size_t k, dist_t max_distance, bool ids_increasing) {
    k_ = k;
    ids_increasing_ = ids_increasing;
    bound_ = max_distance;
    kth_ = max_distance;
    capacity_ = 2 * k + 64;
    buf_.clear();
    buf_.reserve(std::min<std::size_t>(capacity_, 1024));
  }

  // Candidates with a distance above this are certain to lose; -1 once nothing can enter.
  dist_t max_accepted() const noexcept { return bound_; }
  std::size_t k() const noexcept { return k_; }
  // The k-th smallest distance accepted so far once k have been (an inclusive bound that holds for
  // the query over any part of the data: other collectors of the same query may use it), else the
  // initial bound.
  dist_t kth_distance() const noexcept { return kth_; }
  // Nothing accepted yet.
  bool empty() const noexcept { return buf_.empty(); }

  void push(dist_t d, idx_t id) {
    if (d > bound_) return;
    buf_.emplace_back(d, id);
    if (buf_.size() >= capacity_) shrink();
  }

  // Whether at least k accepted candidates have a distance <= d.
  bool has_k_within(dist_t d) const noexcept {
    std::size_t c = 0;
    for (const Entry& e : buf_) c += e.first <= d;
    return c >= k_;
  }

  // Adds every entry of `other` (a collector for the same query over another part of the data).
  void merge(const CountingTopK& other) {
    for (const Entry& e : other.buf_) {
      if (e.first > bound_) continue;
      buf_.push_back(e);
      if (buf_.size() >= capacity_) shrink_general();
    }
  }

  // Writes the k best in (distance, id) order into out_k >= k slots, padding with
  // (kMissingDistance, kMissingId).
  void finish(dist_t* distances, idx_t* ids, std::size_t out_k) {
    const std::size_t m = std::min(k_, buf_.size());
    if (buf_.size() > m) std::nth_element(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(m), buf_.end());
    std::sort(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(m));
    for (std::size_t j = 0; j < m; ++j) {
      distances[j] = buf_[j].first;
      ids[j] = buf_[j].second;
    }
    for (std::size_t j = m; j < out_k; ++j) {
      distances[j] = kMissingDistance;
      ids[j] = kMissingId;
    }
  }

 private:
  void select_k() {
    std::nth_element(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(k_ - 1), buf_.end());
    buf_.resize(k_);
  }
  void shrink() {
    select_k();
    kth_ = buf_.back().first;  // nth_element put the k-th smallest last
    bound_ = ids_increasing_ ? kth_ - 1 : kth_;
  }
  void shrink_general() {  // merged entries do not arrive in id order
    select_k();
    kth_ = bound_ = buf_.back().first;
  }

  std::size_t k_ = 0, capacity_ = 0;
  bool ids_increasing_ = false;
  dist_t bound_ = 0, kth_ = 0;
  std::vector<Entry> buf_;
};

}  // namespace deephash
