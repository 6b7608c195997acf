// Resolving an IdSelector against an index's stored items: which positions may be returned, and
// the scan that answers a filtered search over them. Two forms, chosen by how many items are
// allowed:
// - Gather (at most a quarter of the items): the allowed codes and ids are copied, in storage
//   order, into a compact block, and the search scans only that block. Copying an item costs a few
//   scans of it, so below a quarter the copy plus the short scan beat scanning everything.
// - Mask (more): one byte per position marks the items that may not be returned (not allowed, or
//   removed), and the search scans every code, testing membership only for codes that pass the
//   distance bound (a byte lookup for a few candidates per block).
// Either way storage order is kept, so ties still go to the smaller id exactly as unfiltered.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "code_store.hpp"
#include "deephash/id_selector.hpp"
#include "flat_scan.hpp"

namespace deephash {

struct AllowList {
  FilterStrategy strategy = FilterStrategy::Mask;
  std::size_t live = 0;  // allowed items present in the index (and not removed)
  // Gather: the allowed items' codes and ids.
  std::vector<std::uint8_t> codes;
  std::vector<idx_t> ids;
  // Mask: skip[i] != 0 for positions that may not be returned.
  std::vector<std::uint8_t> skip;

  // The view a scan runs over: the compact block (Gather) or every code with the mask (Mask).
  ScanView view(const ScanView& all) const noexcept;
};

// What a search scans once its filter (if any) is applied: the index's own view, or the allowed
// items' compact block, or the index's view with the membership mask. `skip` is what probing must
// not return (tombstones, or the mask); `live` how many items can be returned.
struct FilterView {
  ScanView view;
  const std::uint8_t* skip;
  std::size_t live;
  FilterStrategy strategy;               // None without a filter
  std::shared_ptr<const AllowList> list;  // keeps the block or mask alive
};
FilterView filter_view(const CodeStore& store, const ScanView& all, const std::uint8_t* removed, std::size_t live,
                       const IdSelector* allow);

// `removed`: optional tombstones by position (multi-index hashing), never returned. The selector's
// cached resolution is used while the store has not changed (CodeStore::version); otherwise it is
// built and remembered.
std::shared_ptr<const AllowList> resolve_allow_list(const CodeStore& store, const std::uint8_t* removed,
                                                    const IdSelector& allow);

}  // namespace deephash
