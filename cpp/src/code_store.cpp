#include "code_store.hpp"

#include "deephash/codes.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

namespace deephash {

void IdArray::fit(idx_t max_id) {
  if (wide_ || max_id <= static_cast<idx_t>(UINT32_MAX)) return;
  std::vector<idx_t> wide(narrow_ids_.begin(), narrow_ids_.end());
  wide.reserve(narrow_ids_.capacity());
  wide_ids_.swap(wide);
  std::vector<std::uint32_t>().swap(narrow_ids_);
  wide_ = true;
}

void IdArray::reserve(std::size_t n) {
  if (wide_) wide_ids_.reserve(n); else narrow_ids_.reserve(n);
}

void IdArray::release() {
  std::vector<std::uint32_t>().swap(narrow_ids_);
  std::vector<idx_t>().swap(wide_ids_);
  wide_ = false;
}

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
  IdArray ids;
  ids.fit(n_ == 0 ? 0 : static_cast<idx_t>(n_ - 1));
  ids.reserve(n_);
  for (std::size_t i = 0; i < n_; ++i) ids.push_back(static_cast<idx_t>(i));
  ids_ = std::move(ids);
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
  if (!stays_implicit) {
    materialize_ids();
    ids_.fit(next_id_ + static_cast<idx_t>(n - 1));
  }
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
  ids_.fit(max_id);
  codes_.reserve((n_ + n) * cs_);
  ids_.reserve(n_ + n);
  codes_.insert(codes_.end(), codes, codes + n * cs_);
  for (std::size_t i = 0; i < n; ++i) ids_.push_back(ids[i]);
  n_ += n;
  increasing_ = still_increasing;
  next_id_ = std::max(next_id_, max_id == INT64_MAX ? INT64_MAX : max_id + 1);
  invalidate_lookup();
}

void CodeStore::build_lookup_locked() const {
  if (lookup_valid_) return;
  lookup_.resize(n_);
  for (std::size_t i = 0; i < n_; ++i) lookup_[i] = i;
  std::sort(lookup_.begin(), lookup_.end(), [&](std::size_t a, std::size_t b) { return ids_[a] < ids_[b]; });
  lookup_valid_ = true;
}

std::optional<std::size_t> CodeStore::find(idx_t id) const {
  if (implicit_) {
    if (id < 0 || static_cast<std::uint64_t>(id) >= n_) return std::nullopt;
    return static_cast<std::size_t>(id);
  }
  // The first of [0, count) whose id (by position pos_of(i)) is not below `id`.
  const auto first_not_below = [&](std::size_t count, auto pos_of) {
    std::size_t lo = 0, hi = count;
    while (lo < hi) {
      const std::size_t mid = lo + (hi - lo) / 2;
      if (ids_[pos_of(mid)] < id) lo = mid + 1; else hi = mid;
    }
    return lo;
  };
  if (increasing_) {
    const std::size_t i = first_not_below(n_, [](std::size_t i) { return i; });
    if (i == n_ || ids_[i] != id) return std::nullopt;
    return i;
  }
  std::lock_guard<std::mutex> lock(lookup_mu_);
  build_lookup_locked();
  const std::size_t i = first_not_below(n_, [&](std::size_t i) { return lookup_[i]; });
  if (i == n_ || ids_[lookup_[i]] != id) return std::nullopt;
  return lookup_[i];
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
  // Positions in increasing id order, pos_of(0..n_): the storage order itself when ids increase,
  // else the lookup.
  const auto walk = [&](auto pos_of) {
    std::size_t i = 0;
    const bool merge = ids.size() * 16 >= n_;  // dense: walk both
    for (idx_t id : ids) {
      if (merge) {
        while (i < n_ && ids_[pos_of(i)] < id) ++i;
      } else {
        std::size_t hi = n_;
        while (i < hi) {
          const std::size_t mid = i + (hi - i) / 2;
          if (ids_[pos_of(mid)] < id) i = mid + 1; else hi = mid;
        }
      }
      if (i == n_) break;
      if (ids_[pos_of(i)] == id) out.push_back(pos_of(i));
    }
  };
  if (increasing_) {
    walk([](std::size_t i) { return i; });
    return out;
  }
  std::lock_guard<std::mutex> lock(lookup_mu_);
  build_lookup_locked();
  walk([&](std::size_t i) { return lookup_[i]; });
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
      ids_.set(out, ids_[i]);
    }
    ++out;
  }
  n_ = out;
  codes_.resize(n_ * cs_);
  ids_.resize(n_);
  invalidate_lookup();  // removal keeps the relative order, so increasing_ still holds
  return positions;
}

namespace {

// out row i = row order[i] of `from`, rows of `cs` bytes. The rows are read at random: each is
// fetched some rows ahead, and the common sizes are copied with fixed-size moves (a memcpy call
// per 8-byte row cost more than the copy).
template <std::size_t CS>
void gather_fixed(const std::uint8_t* from, const std::uint32_t* order, std::size_t n, std::uint8_t* out) noexcept {
  constexpr std::size_t kAhead = 16;
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(from + static_cast<std::size_t>(order[i + kAhead]) * CS);
    std::memcpy(out + i * CS, from + static_cast<std::size_t>(order[i]) * CS, CS);
  }
}

void gather_rows(const std::uint8_t* from, const std::uint32_t* order, std::size_t n, std::size_t cs,
                 std::uint8_t* out) noexcept {
  switch (cs) {
    case 4: return gather_fixed<4>(from, order, n, out);
    case 8: return gather_fixed<8>(from, order, n, out);
    case 16: return gather_fixed<16>(from, order, n, out);
    case 32: return gather_fixed<32>(from, order, n, out);
    default:
      for (std::size_t i = 0; i < n; ++i) {
        if (i + 16 < n) __builtin_prefetch(from + static_cast<std::size_t>(order[i + 16]) * cs);
        std::memcpy(out + i * cs, from + static_cast<std::size_t>(order[i]) * cs, cs);
      }
  }
}

}  // namespace

void CodeStore::permute(const std::uint32_t* order) {
  bool identity = true;
  for (std::size_t i = 0; i < n_ && identity; ++i) identity = order[i] == i;
  if (identity) return;
  check_mapping();
  IdArray ids;
  idx_t max_id = -1, prev = -1;
  bool increasing = true;
  for (std::size_t i = 0; i < n_; ++i) {
    const idx_t id = id_at(order[i]);
    max_id = std::max(max_id, id);
    increasing &= i == 0 || id > prev;
    prev = id;
  }
  ids.fit(max_id);
  ids.reserve(n_);  // may throw, as may the copy below; nothing has changed yet
  std::vector<std::uint8_t, HugePageAllocator<std::uint8_t>> moved(n_ * cs_);
  gather_rows(codes(), order, n_, cs_, moved.data());
  for (std::size_t i = 0; i < n_; ++i) ids.push_back(id_at(order[i]));
  codes_.swap(moved);
  map_.reset();
  mapped_ = nullptr;
  ids_ = std::move(ids);
  implicit_ = false;
  increasing_ = increasing;
  invalidate_lookup();
}

void CodeStore::reset() {
  codes_.clear();
  codes_.shrink_to_fit();
  ids_.release();
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
  if (!implicit_ && !skip && ids_.wide()) {
    out.write(ids_.wide(), n_ * sizeof(idx_t));
    return;
  }
  std::vector<idx_t> chunk;  // ids generated (implicit), widened or filtered (skip) in chunks
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
  if (!implicit_) {
    ids_.fit(max_id);
    ids_.reserve(ids.size());
    for (const idx_t id : ids) ids_.push_back(id);
  }
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
