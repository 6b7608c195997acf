#include "code_store.hpp"

#include "deephash/codes.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

namespace deephash {

std::uint64_t CodeStore::next_uid() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return ++counter;
}

void CodeStore::materialize() {
  if (!mapped_) return;
  check_mapping();
  std::vector<std::uint8_t, HugePageAllocator<std::uint8_t>> copy(mapped_, mapped_ + n_ * cs_);
  codes_.swap(copy);
  mapped_ = nullptr;
  map_.reset();
}

void CodeStore::materialize_ids() {
  if (!implicit_) return;
  std::vector<idx_t> ids(n_);
  for (std::size_t i = 0; i < n_; ++i) ids[i] = static_cast<idx_t>(i);
  ids_.swap(ids);
  implicit_ = false;
}

void CodeStore::add(const std::uint8_t* codes, std::size_t n) {
  if (n == 0) return;
  check_padding_bits(codes, n, nbits_, "codes");
  if (static_cast<std::uint64_t>(next_id_) + n > static_cast<std::uint64_t>(INT64_MAX))
    throw InvalidArgument("add: ids would overflow int64 (next id " + std::to_string(next_id_) + ")");
  materialize();
  // Ids stay implicit while every item so far has id == position.
  const bool stays_implicit = implicit_ && next_id_ == static_cast<idx_t>(n_);
  if (!stays_implicit) materialize_ids();
  codes_.reserve((n_ + n) * cs_);  // may throw; nothing has changed yet
  if (!implicit_) ids_.reserve(n_ + n);
  codes_.insert(codes_.end(), codes, codes + n * cs_);
  if (!implicit_)
    for (std::size_t i = 0; i < n; ++i) ids_.push_back(next_id_ + static_cast<idx_t>(i));
  next_id_ += static_cast<idx_t>(n);
  n_ += n;
  invalidate_lookup();
}

void CodeStore::check_new_ids(const idx_t* ids, std::size_t n, const char* what,
                              const std::uint8_t* reusable) const {
  std::vector<idx_t> sorted(ids, ids + n);
  for (std::size_t i = 0; i < n; ++i) {
    if (ids[i] < 0)
      throw InvalidArgument(std::string(what) + " must be >= 0, got " + std::to_string(ids[i]) + " at position " +
                            std::to_string(i));
  }
  std::sort(sorted.begin(), sorted.end());
  const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
  if (dup != sorted.end())
    throw InvalidArgument(std::string(what) + " must be unique, got " + std::to_string(*dup) + " more than once");
  for (idx_t id : sorted) {
    const auto pos = find(id);
    if (pos && !(reusable && reusable[*pos]))
      throw InvalidArgument(std::string(what) + ": id " + std::to_string(id) + " is already in the index");
  }
}

void CodeStore::add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids) {
  if (n == 0) return;
  check_padding_bits(codes, n, nbits_, "codes");
  check_new_ids(ids, n);
  bool batch_increasing = true;
  for (std::size_t i = 1; i < n && batch_increasing; ++i) batch_increasing = ids[i] > ids[i - 1];
  const bool still_increasing = increasing_ && batch_increasing && (n_ == 0 || ids[0] > id_at(n_ - 1));
  const idx_t max_id = *std::max_element(ids, ids + n);
  materialize();
  materialize_ids();
  codes_.reserve((n_ + n) * cs_);
  ids_.reserve(n_ + n);
  codes_.insert(codes_.end(), codes, codes + n * cs_);
  ids_.insert(ids_.end(), ids, ids + n);
  n_ += n;
  increasing_ = still_increasing;
  next_id_ = std::max(next_id_, max_id == INT64_MAX ? INT64_MAX : max_id + 1);
  invalidate_lookup();
}

void CodeStore::build_lookup_locked() const {
  if (lookup_valid_) return;
  lookup_.resize(n_);
  for (std::size_t i = 0; i < n_; ++i) lookup_[i] = {ids_[i], i};
  std::sort(lookup_.begin(), lookup_.end());
  lookup_valid_ = true;
}

std::optional<std::size_t> CodeStore::find(idx_t id) const {
  if (implicit_) {
    if (id < 0 || static_cast<std::uint64_t>(id) >= n_) return std::nullopt;
    return static_cast<std::size_t>(id);
  }
  if (increasing_) {
    const auto it = std::lower_bound(ids_.begin(), ids_.end(), id);
    if (it == ids_.end() || *it != id) return std::nullopt;
    return static_cast<std::size_t>(it - ids_.begin());
  }
  std::lock_guard<std::mutex> lock(lookup_mu_);
  build_lookup_locked();
  const auto it = std::lower_bound(lookup_.begin(), lookup_.end(), std::make_pair(id, std::size_t{0}));
  if (it == lookup_.end() || it->first != id) return std::nullopt;
  return it->second;
}

void CodeStore::copy_codes(const idx_t* ids, std::size_t n, std::uint8_t* out, const std::uint8_t* removed) const {
  check_mapping();
  for (std::size_t i = 0; i < n; ++i) {
    const auto pos = find(ids[i]);
    if (!pos || (removed && removed[*pos])) throw UnknownId("id " + std::to_string(ids[i]) + " is not in the index");
    std::memcpy(out + i * cs_, codes() + *pos * cs_, cs_);
  }
}

std::vector<idx_t> CodeStore::live_ids(const std::uint8_t* removed) const {
  std::vector<idx_t> out;
  out.reserve(n_);
  for (std::size_t i = 0; i < n_; ++i)
    if (!(removed && removed[i])) out.push_back(id_at(i));
  return out;
}

std::vector<std::size_t> CodeStore::positions_of(const std::vector<idx_t>& ids) const {
  std::vector<std::size_t> out;
  out.reserve(std::min(ids.size(), n_));
  if (implicit_) {  // id == position
    for (idx_t id : ids) {
      if (static_cast<std::uint64_t>(id) >= n_) break;
      out.push_back(static_cast<std::size_t>(id));
    }
    return out;
  }
  // Sorted (id, position) pairs: the stored ids themselves when they increase, else the lookup.
  const auto walk = [&](auto first, auto last, auto id_of, auto pos_of) {
    auto it = first;
    const bool merge = ids.size() * 16 >= static_cast<std::size_t>(last - first);  // dense: walk both
    for (idx_t id : ids) {
      if (merge) {
        while (it != last && id_of(*it) < id) ++it;
      } else {
        it = std::lower_bound(it, last, id, [&](const auto& e, idx_t v) { return id_of(e) < v; });
      }
      if (it == last) break;
      if (id_of(*it) == id) out.push_back(pos_of(it));
    }
  };
  if (increasing_) {
    walk(ids_.begin(), ids_.end(), [](idx_t v) { return v; },
         [&](std::vector<idx_t>::const_iterator it) { return static_cast<std::size_t>(it - ids_.begin()); });
    return out;
  }
  std::lock_guard<std::mutex> lock(lookup_mu_);
  build_lookup_locked();
  walk(lookup_.cbegin(), lookup_.cend(), [](const std::pair<idx_t, std::size_t>& e) { return e.first; },
       [](decltype(lookup_.cbegin()) it) { return it->second; });
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::size_t> CodeStore::remove_ids(const idx_t* ids, std::size_t n) {
  std::vector<std::size_t> positions;
  for (std::size_t i = 0; i < n; ++i) {
    if (auto pos = find(ids[i])) positions.push_back(*pos);
  }
  std::sort(positions.begin(), positions.end());
  positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
  if (positions.empty()) return positions;
  materialize();
  materialize_ids();
  std::size_t out = 0, next_removed = 0;
  for (std::size_t i = 0; i < n_; ++i) {
    if (next_removed < positions.size() && positions[next_removed] == i) {
      ++next_removed;
      continue;
    }
    if (out != i) {
      std::memmove(codes_.data() + out * cs_, codes_.data() + i * cs_, cs_);
      ids_[out] = ids_[i];
    }
    ++out;
  }
  n_ = out;
  codes_.resize(n_ * cs_);
  ids_.resize(n_);
  invalidate_lookup();  // removal keeps the relative order, so increasing_ still holds
  return positions;
}

void CodeStore::reset() {
  codes_.clear();
  codes_.shrink_to_fit();
  ids_.clear();
  ids_.shrink_to_fit();
  map_.reset();
  mapped_ = nullptr;
  n_ = 0;
  next_id_ = 0;
  increasing_ = true;
  implicit_ = true;
  invalidate_lookup();
}

std::uint64_t CodeStore::payload_size(std::size_t nskip) const noexcept {
  const std::uint64_t live = n_ - nskip;
  return io::codes_bytes_padded(live, cs_) + live * sizeof(idx_t);
}

void CodeStore::write_payload(io::AtomicFileWriter& out, const std::uint8_t* skip) const {
  const std::uint64_t start = out.offset();
  std::size_t live = n_;
  if (!skip) {
    out.write(codes(), n_ * cs_);
  } else {
    live = 0;
    for (std::size_t i = 0; i < n_; ++i) {
      if (skip[i]) continue;
      out.write(codes() + i * cs_, cs_);
      ++live;
    }
  }
  out.pad_to(start + io::codes_bytes_padded(live, cs_));
  if (!implicit_ && !skip) {
    out.write(ids_.data(), n_ * sizeof(idx_t));
    return;
  }
  std::vector<idx_t> chunk;  // ids generated (implicit) or filtered (skip) in chunks
  chunk.reserve(65536);
  for (std::size_t i = 0; i < n_; ++i) {
    if (skip && skip[i]) continue;
    chunk.push_back(id_at(i));
    if (chunk.size() == 65536) {
      out.write(chunk.data(), chunk.size() * sizeof(idx_t));
      chunk.clear();
    }
  }
  out.write(chunk.data(), chunk.size() * sizeof(idx_t));
}

void CodeStore::read_payload(const std::shared_ptr<const io::MappedFile>& file, const std::uint8_t* payload,
                             std::uint64_t ntotal, idx_t next_id, bool ids_increasing, bool mmap,
                             const std::string& path) {
  const std::string where = "'" + path + "'";
  const std::uint64_t codes_bytes = io::codes_bytes_padded(ntotal, cs_);
  const std::uint8_t* end = file->data() + file->size() - 8;
  if (ntotal > (static_cast<std::uint64_t>(end - payload)) / (cs_ + sizeof(idx_t)) ||
      payload + codes_bytes + ntotal * sizeof(idx_t) > end)
    throw FileError(where + ": payload is smaller than its " + std::to_string(ntotal) + " items need");
  const std::size_t bad = find_padding_bits(payload, static_cast<std::size_t>(ntotal), nbits_);
  if (bad < ntotal)
    throw FileError(where + ": stored code " + describe_padding_bits(payload[bad * cs_ + cs_ - 1], bad, nbits_));
  std::vector<idx_t> ids(ntotal);
  if (ntotal > 0) std::memcpy(ids.data(), payload + codes_bytes, ntotal * sizeof(idx_t));  // no null memcpy
  idx_t max_id = -1;
  bool identity = true;
  for (std::uint64_t i = 0; i < ntotal; ++i) {
    identity &= ids[i] == static_cast<idx_t>(i);
    if (ids[i] < 0) throw FileError(where + ": negative id " + std::to_string(ids[i]));
    if (ids_increasing && i > 0 && ids[i] <= ids[i - 1])
      throw FileError(where + ": ids are flagged increasing but are not");
    max_id = std::max(max_id, ids[i]);
  }
  if (!ids_increasing) {
    std::vector<idx_t> sorted(ids);
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
      throw FileError(where + ": repeated ids");
  }
  // next_id is above every id; an index holding INT64_MAX saturates it there (add() then refuses).
  if (ntotal > 0 && next_id <= max_id && !(max_id == INT64_MAX && next_id == INT64_MAX))
    throw FileError(where + ": next id " + std::to_string(next_id) + " is not above the largest id " +
                    std::to_string(max_id));
  // All checks passed: take the data.
  reset();
  n_ = static_cast<std::size_t>(ntotal);
  implicit_ = identity && next_id == static_cast<idx_t>(ntotal);
  if (!implicit_) ids_ = std::move(ids);
  next_id_ = next_id;
  increasing_ = ids_increasing;
  if (mmap && ntotal > 0) {
    map_ = file;
    mapped_ = payload;
  } else {
    codes_.assign(payload, payload + ntotal * cs_);
  }
}

}  // namespace deephash
