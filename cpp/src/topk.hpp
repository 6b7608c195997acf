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
//
// Keys mapped to ids: the caller may push keys that stand for the ids (the storage positions of an
// index whose ids do not grow with position, where looking an id up is a memory access per
// candidate) and give the key -> id map. Every candidate tied at the k-th distance is then kept,
// whatever its key, and finish looks up the ids of the k and of those ties only. Should the ties
// pass kMaxTies (clustered codes: thousands of exact duplicates), the buffer's keys are mapped at
// once and from then on each selection first maps the keys pushed since the last one, in one
// batch: memory stays O(k), and no candidate costs a call of its own.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "deephash/common.hpp"

namespace deephash {

// Maps the keys (second members) of n (distance, key) entries to ids, in place.
struct TopKKeyToId {
  void (*fn)(const void* context, std::pair<dist_t, idx_t>* entries, std::size_t n) = nullptr;
  const void* context = nullptr;
};

class CountingTopK {
 public:
  using Entry = std::pair<dist_t, idx_t>;  // ordered lexicographically: (distance, id)
  using KeyToId = TopKKeyToId;

  CountingTopK() = default;
  CountingTopK(std::size_t k, dist_t max_distance, bool ids_increasing) { reset(k, max_distance, ids_increasing); }

  // With to_id, the values pushed are keys to be mapped to ids (ids_increasing is then false).
  void reset(std::size_t k, dist_t max_distance, bool ids_increasing, KeyToId to_id = {}) {
    k_ = k;
    ids_increasing_ = ids_increasing;
    in_id_order_ = ids_increasing && to_id.fn == nullptr;
    max_distance_ = max_distance;
    to_id_ = to_id;
    keeping_ties_ = to_id.fn != nullptr;
    mapped_ = 0;
    zeros_ = 0;
    bound_ = max_distance;
    kth_ = max_distance;
    capacity_ = 2 * k + 64;
    buf_.clear();
    buf_.reserve(std::min<std::size_t>(capacity_, 1024));
  }

  // Candidates with a distance above this are certain to lose; -1 once nothing can enter.
  dist_t max_accepted() const noexcept { return bound_; }
  std::size_t k() const noexcept { return k_; }
  // Whether the values pushed are keys mapped to ids at the end (reset with a KeyToId).
  bool maps_keys() const noexcept { return to_id_.fn != nullptr; }
  // The k-th smallest distance accepted so far once k have been (an inclusive bound that holds for
  // the query over any part of the data: other collectors of the same query may use it), else the
  // initial bound.
  dist_t kth_distance() const noexcept { return kth_; }
  // Nothing accepted yet.
  bool empty() const noexcept { return buf_.empty(); }

  // `id` is the candidate's key where the collector maps keys to ids.
  void push(dist_t d, idx_t id) {
    if (d > bound_) return;
    buf_.emplace_back(d, id);
    zeros_ += d == 0;
    if (buf_.size() >= capacity_) shrink();
  }

  // Whether at least k accepted candidates have a distance <= d.
  bool has_k_within(dist_t d) const noexcept {
    std::size_t c = 0;
    for (const Entry& e : buf_) c += e.first <= d;
    return c >= k_;
  }

  // With ids arriving in increasing order, once k accepted candidates are at distance 0 nothing
  // later can enter (it would lose the tie): the bound becomes -1 at once instead of when the
  // buffer next fills (exact copies of a query among millions of short codes). Returns whether
  // the collector closed now. O(1): the scan asks after every piece.
  bool close_at_zero() noexcept {
    if (!ids_increasing_ || bound_ != 0 || zeros_ < k_) return false;
    kth_ = 0;
    bound_ = -1;
    return true;
  }

  // Adds every entry of `other` (a collector for the same query over another part of the data,
  // with the same key -> id map if any).
  void merge(CountingTopK& other) {
    if (keeping_ties_ && other.keeping_ties_ && mapped_ == 0 && other.mapped_ == 0) {
      // Both still hold keys (storage positions, distinct across parts) and every tie: merged as
      // keys, finish() looks up only the k and the ties at the merged k-th distance, not each
      // part's own k and ties (a single query over 1M uniform 128-bit codes in two parts, k = 100:
      // 129 lookups instead of 260 on average over 20 queries, each a likely cache miss).
      for (const Entry& e : other.buf_) {
        if (e.first > bound_) continue;
        buf_.push_back(e);
        zeros_ += e.first == 0;
        if (buf_.size() >= capacity_) shrink();
      }
      return;
    }
    map_all();
    other.map_all();
    if (!other.buf_.empty()) in_id_order_ = false;  // the other part's ids interleave with ours
    for (const Entry& e : other.buf_) {
      if (e.first > bound_) continue;
      buf_.push_back(e);
      zeros_ += e.first == 0;
      mapped_ = buf_.size();
      if (buf_.size() >= capacity_) shrink_general();
    }
  }

  // Writes the k best in (distance, id) order into out_k >= k slots, padding with
  // (kMissingDistance, kMissingId).
  void finish(dist_t* distances, idx_t* ids, std::size_t out_k) {
    if (keeping_ties_ && buf_.size() > k_) keep_k_and_ties();  // look up only these ids
    map_all();
    const std::size_t m = std::min(k_, buf_.size());
    if (buf_.size() > m) select_k();
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
  // Ties kept unmapped at most (then the keys are mapped; see the top of the file). Enough that
  // the k-th distance of a query over clustered codes usually settles first: on 10M structured
  // 64-bit codes at k = 10, mapping past 4k + 64 ties made the multi-index search 15% slower.
  static constexpr std::size_t kMaxTies = 2048;

  // Entries [mapped_, size) still hold keys: map them.
  void map_all() {
    if (to_id_.fn && mapped_ < buf_.size()) to_id_.fn(to_id_.context, buf_.data() + mapped_, buf_.size() - mapped_);
    mapped_ = buf_.size();
    keeping_ties_ = false;
  }
  // Keeps the k smallest entries by (distance, id); returns the k-th distance. By counting, not
  // comparing: a histogram of the buffer's distances gives the k-th distance t, then one pass keeps
  // every entry below t and, of those at t, the smallest ids. In a buffer in id order (a collector
  // fed in storage order, ids growing with position) those are the first ones met, and the buffer
  // stays in id order; otherwise the ties at t are ranked by id apart (nth_element on them alone).
  // On a single query over 10k 256-bit codes, nth_element on the whole buffer took about 13% of
  // the search.
  dist_t select_k() {
    std::size_t below = 0;
    std::uint32_t* hist = nullptr;
    const dist_t t = kth_by_count(below, hist);
    std::size_t take = k_ - below, w = 0;
    // Each pass below reads every entry once, clears its bin of the histogram and keeps it by
    // moving the write position, without a branch: whether an entry is kept is as good as random
    // to a branch predictor. With a branch, this pass took 5% of a batch's k = 100 search over 1M
    // 128-bit codes (perf); without, the search ran 1.04x as fast (1 thread, the Intel Xeon).
    if (in_id_order_) {
      for (std::size_t i = 0, n = buf_.size(); i < n; ++i) {
        const Entry e = buf_[i];
        hist[e.first] = 0;
        const bool at = e.first == t;
        const bool keep = (e.first < t) | (at & (take > 0));
        buf_[w] = e;
        w += keep;
        take -= static_cast<std::size_t>(at & keep);
      }
    } else {
      std::vector<Entry>& ties = tie_scratch();
      ties.clear();
      for (std::size_t i = 0, n = buf_.size(); i < n; ++i) {
        const Entry e = buf_[i];
        hist[e.first] = 0;
        buf_[w] = e;
        w += e.first < t;
        if (e.first == t) ties.push_back(e);
      }
      if (ties.size() > take) std::nth_element(ties.begin(), ties.begin() + static_cast<std::ptrdiff_t>(take), ties.end());
      std::copy(ties.begin(), ties.begin() + static_cast<std::ptrdiff_t>(take), buf_.begin() + static_cast<std::ptrdiff_t>(w));
    }
    buf_.resize(k_);
    zeros_ = std::min(zeros_, k_);  // every zero is kept, up to k of them
    return t;
  }
  // The k-th smallest distance in the buffer (size >= k), and in `below` the entries under it.
  // Leaves the bins of the buffer's distances set in `hist` (the thread's histogram): the caller's
  // next pass over the buffer zeroes them.
  dist_t kth_by_count(std::size_t& below, std::uint32_t*& hist) const {
    hist = histogram(static_cast<std::size_t>(max_distance_) + 1);
    for (const Entry& e : buf_) ++hist[e.first];
    dist_t t = 0;
    below = 0;
    while (below + hist[t] < k_) below += hist[t++];
    return t;
  }
  // A per-distance count array of at least `bins` entries, one per thread (a collector selects on
  // one thread at a time), all zero between uses: no allocation per collector or per selection.
  static std::uint32_t* histogram(std::size_t bins) {
    thread_local std::vector<std::uint32_t> counts;
    if (counts.size() < bins) counts.resize(bins, 0);
    return counts.data();
  }
  // The entries tied at the k-th distance while they are ranked by id (one per thread).
  static std::vector<Entry>& tie_scratch() {
    thread_local std::vector<Entry> ties;
    return ties;
  }
  // The k best by distance and every entry tied with the k-th.
  void keep_k_and_ties() {
    std::size_t below = 0, w = 0;
    std::uint32_t* hist = nullptr;
    kth_ = kth_by_count(below, hist);
    for (std::size_t i = 0, n = buf_.size(); i < n; ++i) {  // without a branch, as in select_k
      const Entry e = buf_[i];
      hist[e.first] = 0;
      buf_[w] = e;
      w += e.first <= kth_;
    }
    buf_.resize(w);  // keeps every entry at distance 0, so zeros_ holds
  }
  void shrink() {
    if (keeping_ties_) {
      keep_k_and_ties();
      bound_ = kth_;
      if (buf_.size() <= kMaxTies + k_) {
        capacity_ = std::max(2 * k_ + 64, 2 * buf_.size());  // room to grow past the ties
        return;
      }
      capacity_ = 2 * k_ + 64;  // many ties: rank by id from now on
    }
    map_all();
    kth_ = select_k();
    mapped_ = k_;
    bound_ = ids_increasing_ ? kth_ - 1 : kth_;
  }
  void shrink_general() {  // merged entries do not arrive in id order
    kth_ = bound_ = select_k();
    mapped_ = k_;
  }

  std::size_t k_ = 0, capacity_ = 0;
  bool ids_increasing_ = false;
  bool in_id_order_ = false;  // the buffer holds ids (not keys) in increasing order
  KeyToId to_id_;
  bool keeping_ties_ = false;  // keys mapped to ids, none mapped yet: ties at the k-th distance kept
  std::size_t mapped_ = 0;     // entries [0, mapped_) hold ids, the rest keys
  std::size_t zeros_ = 0;      // entries at distance 0
  dist_t bound_ = 0, kth_ = 0;
  std::vector<Entry> buf_;
  dist_t max_distance_ = 0;  // no entry is farther (the bound at reset)
};

}  // namespace deephash
