// CodeStore: the codes and ids of an index, in insertion order, with the id contract
// (consecutive ids for add, validated caller ids for add_with_ids, stable ids across removals),
// an id -> position lookup, and the flat payload of the file format (optionally memory-mapped).
// Not synchronised: the owning index holds its reader-writer lock around every call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "deephash/common.hpp"
#include "huge_pages.hpp"
#include "index_io.hpp"

namespace deephash {

// The ids of a store's items by position: 4 bytes each while every id fits in 32 bits (the common
// case, and what keeps a multi-index hash, whose sorted storage makes ids explicit, as small as
// before), 8 bytes once a larger id arrives.
class IdArray {
 public:
  std::size_t size() const noexcept { return wide_ ? wide_ids_.size() : narrow_ids_.size(); }
  idx_t operator[](std::size_t i) const noexcept {
    return wide_ ? wide_ids_[i] : static_cast<idx_t>(narrow_ids_[i]);
  }
  // Makes room for ids up to max_id (widening once it does not fit in 32 bits); call before
  // storing such an id.
  void fit(idx_t max_id);
  void reserve(std::size_t n);  // may throw; nothing changes then
  void push_back(idx_t id) {
    if (wide_) wide_ids_.push_back(id); else narrow_ids_.push_back(static_cast<std::uint32_t>(id));
  }
  void set(std::size_t i, idx_t id) noexcept {
    if (wide_) wide_ids_[i] = id; else narrow_ids_[i] = static_cast<std::uint32_t>(id);
  }
  void resize(std::size_t n) {
    if (wide_) wide_ids_.resize(n); else narrow_ids_.resize(n);
  }
  void release();  // empty, memory freed, narrow again
  const idx_t* wide() const noexcept { return wide_ ? wide_ids_.data() : nullptr; }
  const std::uint32_t* narrow() const noexcept { return wide_ ? nullptr : narrow_ids_.data(); }
  std::size_t memory_usage() const noexcept {
    return wide_ids_.capacity() * sizeof(idx_t) + narrow_ids_.capacity() * sizeof(std::uint32_t);
  }

 private:
  bool wide_ = false;
  std::vector<std::uint32_t> narrow_ids_;
  std::vector<idx_t> wide_ids_;
};

class CodeStore {
 public:
  // Codes of nbits bits (code_size_for(nbits) bytes each, padding bits zero).
  explicit CodeStore(int nbits) : cs_(code_size_for(nbits)), nbits_(static_cast<std::size_t>(nbits)) {}

  std::size_t size() const noexcept { return n_; }
  std::size_t code_size() const noexcept { return cs_; }
  const std::uint8_t* codes() const noexcept { return mapped_ ? mapped_ : codes_.data(); }
  // The id array, 8-byte (ids()) or 4-byte (ids32()) ids by position, the other nullptr; both
  // nullptr while ids are implicit (item i has id i: plain adds into a fresh index, nothing
  // removed or reordered), which saves their memory.
  const idx_t* ids() const noexcept { return implicit_ ? nullptr : ids_.wide(); }
  const std::uint32_t* ids32() const noexcept { return implicit_ ? nullptr : ids_.narrow(); }
  idx_t id_at(std::size_t pos) const noexcept { return implicit_ ? static_cast<idx_t>(pos) : ids_[pos]; }
  std::size_t memory_usage() const noexcept {
    return (mapped_ ? 0 : codes_.capacity()) + ids_.memory_usage() + lookup_.capacity() * sizeof(lookup_[0]);
  }
  idx_t next_id() const noexcept { return next_id_; }
  // next_id becomes at least `id` (a copy of another index keeps that index's next_id).
  void raise_next_id(idx_t id) noexcept {
    if (id > next_id_) next_id_ = id;
  }
  // True while ids strictly increase with storage position (always so with plain add).
  bool ids_increasing() const noexcept { return increasing_; }
  bool is_mmapped() const noexcept { return mapped_ != nullptr; }
  // While the codes are read from a mapped file: throws FileError when another process truncated
  // or rewrote that file since it was loaded (reading on would crash or return changed codes).
  void check_mapping() const {
    if (map_) map_->check_unchanged();
  }

  // Each throws before changing anything when the input is invalid (a padding bit set, ...) or
  // memory runs out.
  void add(const std::uint8_t* codes, std::size_t n);
  void add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids);
  // Throws InvalidArgument naming `what` if an id is negative, repeated, or already present.
  // `reusable`, when given, marks positions whose id may be given again (removed, not yet dropped).
  void check_new_ids(const idx_t* ids, std::size_t n, const char* what = "ids",
                     const std::uint8_t* reusable = nullptr) const;
  // Removes the listed ids that are present (others are ignored); returns the removed positions
  // in increasing order (positions before the removal).
  std::vector<std::size_t> remove_ids(const idx_t* ids, std::size_t n);
  // Reorders the items: storage position i takes the item at position order[i] (a permutation of
  // [0, size())). Ids go with their codes. Mapped codes are copied into memory first.
  void permute(const std::uint32_t* order);
  void reset();

  std::optional<std::size_t> find(idx_t id) const;
  // Identifies this store's contents: uid() is unique per store in the process, version() changes
  // with every change of the items (and with bump_version(), for owners that hide items, such as
  // MIH tombstones). Derived data cached elsewhere (an IdSelector's resolution) is keyed by both.
  std::uint64_t uid() const noexcept { return uid_; }
  std::uint64_t version() const noexcept { return version_; }
  void bump_version() noexcept { ++version_; }
  // The positions of those of `ids` (sorted, unique) that the store holds, in increasing order.
  // One pass over whichever is shorter to walk: the ids with a moving binary search, or the
  // store's ids (implicit ones need neither).
  std::vector<std::size_t> positions_of(const std::vector<idx_t>& ids) const;
  // The codes of n ids into out (n x code_size bytes); throws UnknownId for an id not held, or
  // hidden by `removed` (tombstones by position, optional).
  void copy_codes(const idx_t* ids, std::size_t n, std::uint8_t* out, const std::uint8_t* removed = nullptr) const;
  // The ids in storage order, leaving out the positions `removed` marks.
  std::vector<idx_t> live_ids(const std::uint8_t* removed = nullptr) const;

  // File payload: codes (padded to 8 bytes), then ids. With `skip` (one byte per position,
  // `nskip` of them non-zero) the skipped items are left out.
  std::uint64_t payload_size(std::size_t nskip = 0) const noexcept;
  void write_payload(io::AtomicFileWriter& out, const std::uint8_t* skip = nullptr) const;
  // Loads a payload of `ntotal` items at `payload` inside `file`; with mmap the codes stay in the
  // file. Validates the codes' padding bits (zero) and the ids (>= 0, unique, consistent with the
  // increasing flag and next_id).
  void read_payload(const std::shared_ptr<const io::MappedFile>& file, const std::uint8_t* payload,
                    std::uint64_t ntotal, idx_t next_id, bool ids_increasing, bool mmap,
                    const std::string& path);

 private:
  void materialize();  // copy mapped codes into memory before a write
  void invalidate_lookup() noexcept {  // called by every change of the stored items
    lookup_valid_ = false;
    ++version_;
  }
  void materialize_ids();  // leave the implicit-id representation
  void build_lookup_locked() const;  // the sorted (id, position) pairs; lookup_mu_ held

  std::size_t cs_;
  std::size_t nbits_;
  std::size_t n_ = 0;
  std::vector<std::uint8_t, HugePageAllocator<std::uint8_t>> codes_;
  std::shared_ptr<const io::MappedFile> map_;
  const std::uint8_t* mapped_ = nullptr;
  IdArray ids_;
  idx_t next_id_ = 0;
  bool increasing_ = true;
  bool implicit_ = true;  // ids_ empty and id(i) == i

  // Positions in increasing order of their ids, built on demand when ids are not increasing.
  mutable std::mutex lookup_mu_;
  mutable std::vector<std::size_t> lookup_;
  mutable bool lookup_valid_ = false;
  std::uint64_t version_ = 0;
  const std::uint64_t uid_ = next_uid();
  static std::uint64_t next_uid() noexcept;
};

}  // namespace deephash
