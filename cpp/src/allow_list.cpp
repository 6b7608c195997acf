#include "allow_list.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace deephash {

AllowList build_allow_list(const CodeStore& store, const std::uint8_t* removed, const IdSelector& allow,
                           bool compact);

IdSelector::IdSelector(const idx_t* ids, std::size_t n) : ids_(ids, ids + n) {
  for (std::size_t i = 0; i < n; ++i)
    if (ids[i] < 0)
      throw InvalidArgument("allowed ids must be >= 0, got " + std::to_string(ids[i]) + " at position " +
                            std::to_string(i));
  if (!std::is_sorted(ids_.begin(), ids_.end())) std::sort(ids_.begin(), ids_.end());
  ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
}

IdSelector::Cache IdSelector::cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cache_;
}

void IdSelector::remember(Cache c) const {
  std::lock_guard<std::mutex> lock(mu_);
  cache_ = std::move(c);
}

bool IdSelector::contains(idx_t id) const noexcept { return std::binary_search(ids_.begin(), ids_.end(), id); }

const char* filter_strategy_name(FilterStrategy s) noexcept {
  switch (s) {
    case FilterStrategy::None: return "none";
    case FilterStrategy::Gather: return "gather";
    case FilterStrategy::Mask: return "mask";
    case FilterStrategy::Probe: return "probe";
  }
  return "unknown";
}

ScanView AllowList::view(const ScanView& all) const noexcept {
  if (strategy == FilterStrategy::Gather)
    return ScanView{codes.data(), ids.data(), ids.size(), all.code_size, all.nbits, all.ids_increasing, nullptr};
  ScanView v = all;
  v.skip = skip.data();
  return v;
}

std::shared_ptr<const AllowList> resolve_allow_list(const CodeStore& store, const std::uint8_t* removed,
                                                    const IdSelector& allow) {
  IdSelector::Cache c = allow.cached();
  if (c.resolved && c.store == store.uid() && c.version == store.version()) {
    auto list = std::static_pointer_cast<const AllowList>(c.resolved);
    ++c.uses;
    if (list->strategy == FilterStrategy::Mask && list->live * 4 <= store.size() * 3) {  // reused: compact it
      list = std::make_shared<const AllowList>(build_allow_list(store, removed, allow, true));
    }
    allow.remember({c.store, c.version, c.uses, list});
    return list;
  }
  auto list = std::make_shared<const AllowList>(build_allow_list(store, removed, allow, false));
  allow.remember({store.uid(), store.version(), 0, list});
  return list;
}

FilterView filter_view(const CodeStore& store, const ScanView& all, const std::uint8_t* removed, std::size_t live,
                       const IdSelector* allow) {
  if (!allow) return FilterView{all, removed, live, FilterStrategy::None, nullptr};
  auto list = resolve_allow_list(store, removed, *allow);
  const std::uint8_t* skip = list->strategy == FilterStrategy::Mask ? list->skip.data() : nullptr;
  return FilterView{list->view(all), skip, list->live, list->strategy, list};
}

// `compact`: gather the allowed codes whatever their share (a reused selector, see id_selector.hpp).
AllowList build_allow_list(const CodeStore& store, const std::uint8_t* removed, const IdSelector& allow,
                           bool compact) {
  const std::size_t n = store.size(), cs = store.code_size();
  // Positions of the allowed ids the index holds (and has not removed), in storage order.
  std::vector<std::size_t> positions = store.positions_of(allow.ids());
  if (removed) {
    std::size_t live = 0;
    for (std::size_t p : positions) {
      positions[live] = p;
      live += !removed[p];
    }
    positions.resize(live);
  }
  AllowList out;
  out.live = positions.size();
  if (compact || positions.size() * 4 <= n) {
    out.strategy = FilterStrategy::Gather;
    out.codes.resize(positions.size() * cs);
    out.ids.resize(positions.size());
    const std::uint8_t* codes = store.codes();
    for (std::size_t i = 0; i < positions.size(); ++i) {
      if (i + 16 < positions.size()) __builtin_prefetch(codes + positions[i + 16] * cs);
      std::memcpy(out.codes.data() + i * cs, codes + positions[i] * cs, cs);
      out.ids[i] = store.id_at(positions[i]);
    }
  } else {
    out.strategy = FilterStrategy::Mask;
    out.skip.assign(n, 1);
    for (std::size_t p : positions) out.skip[p] = 0;
  }
  return out;
}

}  // namespace deephash
