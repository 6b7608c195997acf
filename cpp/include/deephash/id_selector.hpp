// IdSelector: the ids a filtered search may return (an allow-list), built once and reusable with
// any index and any number of searches. Ids are kept sorted and unique; ids the index does not hold
// are simply never returned.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "deephash/common.hpp"

namespace deephash {

class IdSelector {
 public:
  // Any order, repeats allowed; throws InvalidArgument on a negative id.
  IdSelector(const idx_t* ids, std::size_t n);

  std::size_t size() const noexcept { return ids_.size(); }
  bool contains(idx_t id) const noexcept;
  const std::vector<idx_t>& ids() const noexcept { return ids_; }  // sorted, unique

  // The selector remembers its last resolution against an index (which positions are allowed:
  // a compact copy of their codes, or a mask over all positions) until that index changes, so a
  // selector reused for many searches pays for it once. The cache holds that memory meanwhile: a
  // mask is one byte per stored item; once a masked selector serves a second search it is
  // replaced by the compact copy (code_size + 8 bytes per allowed item) when at most three
  // quarters of the items are allowed, since scanning fewer codes then wins on every search.
  struct Cache {
    std::uint64_t store = 0, version = 0;
    std::uint64_t uses = 0;  // searches served by `resolved`
    std::shared_ptr<const void> resolved;
  };
  Cache cached() const;
  void remember(Cache c) const;

 private:
  std::vector<idx_t> ids_;
  mutable std::mutex mu_;
  mutable Cache cache_;
};

// How a filtered search ran (reported by search_with_stats and the Python bindings).
enum class FilterStrategy {
  None,    // no filter
  Gather,  // few allowed items: their codes were gathered and only those scanned
  Mask,    // many allowed items: every code scanned, candidates tested for membership
  Probe,   // multi-index probing with the membership test (a query that gives up scans, as Mask)
};
const char* filter_strategy_name(FilterStrategy s) noexcept;

}  // namespace deephash
