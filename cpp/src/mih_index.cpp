// MIHIndex: construction, updates, accessors and persistence. Searching (probing, the cost model
// that chooses between probing and scanning, k-NN and range drivers) is in mih_search.cpp.
#include "deephash/mih_index.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "deephash/threads.hpp"
#include "index_io.hpp"
#include "mih_state.hpp"

namespace deephash {

int MIHIndex::auto_m_for(int nbits, std::size_t n) noexcept {
  const double lg = std::log2(static_cast<double>(std::max<std::size_t>(n, 16)));
  int m = static_cast<int>(std::lround(nbits / lg));
  m = std::max(m, (nbits + 31) / 32);      // substrings of at most 32 bits
  m = std::min(m, std::max(1, nbits / 4));  // and at least 4 bits
  return std::max(m, 1);
}

MIHIndex::MIHIndex(int nbits, int m)
    : nbits_((check_nbits(nbits), nbits)), auto_m_(m == 0),
      s_(std::make_unique<State>(m, nbits)) {
  if (m < 0 || m > nbits)
    throw InvalidArgument("m must be in [1, nbits=" + std::to_string(nbits) + "] (or 0 for automatic), got " +
                          std::to_string(m));
  if (m > 0 && (nbits + m - 1) / m > 32)
    throw InvalidArgument("m=" + std::to_string(m) + " gives substrings of more than 32 bits for nbits=" +
                          std::to_string(nbits) + "; use m >= " + std::to_string((nbits + 31) / 32));
  if (auto_m_) s_->m_ = auto_m_for(nbits_, 0);
}

MIHIndex::~MIHIndex() = default;

std::size_t MIHIndex::ntotal() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.size() - s_->n_removed_;
}
idx_t MIHIndex::next_id() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.next_id();
}
bool MIHIndex::is_mmapped() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.is_mmapped();
}
int MIHIndex::m() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->m_;
}
std::vector<int> MIHIndex::substring_bits() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  std::vector<int> out;
  for (int j = 0; j < s_->m_; ++j) out.push_back(nbits_ / s_->m_ + (j < nbits_ % s_->m_ ? 1 : 0));
  return out;
}
std::size_t MIHIndex::memory_usage() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  std::size_t total = s_->store_.memory_usage() + s_->removed_.capacity();
  for (const auto& t : s_->tables_) total += t.memory_usage();
  return total;
}
std::size_t MIHIndex::tail_size() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.size() - s_->indexed_;
}
std::size_t MIHIndex::tombstones() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->n_removed_;
}
MIHStats MIHIndex::stats() const {
  return {s_->st_queries_.load(), s_->st_candidates_.load(), s_->st_buckets_.load(), s_->st_scans_.load(), s_->st_radius_.load()};
}
void MIHIndex::reset_stats() {
  s_->st_queries_ = s_->st_candidates_ = s_->st_buckets_ = s_->st_scans_ = s_->st_radius_ = 0;
}

// ---- building -----------------------------------------------------------------------------------

void MIHIndex::rebuild_locked() {
  const std::size_t n = s_->store_.size();
  if (n > 0xFFFFFFFFull) throw InvalidArgument("MIHIndex holds at most 2^32 - 1 items, got " + std::to_string(n));
  if (auto_m_) s_->m_ = auto_m_for(nbits_, n);
  std::vector<SubstringTable> tables;
  int begin = 0;
  for (int j = 0; j < s_->m_; ++j) {
    const int bits = nbits_ / s_->m_ + (j < nbits_ % s_->m_ ? 1 : 0);
    tables.emplace_back(begin, bits);
    begin += bits;
  }
  const std::uint8_t* codes = s_->store_.codes();
  const std::size_t cs = s_->store_.code_size();
  parallel_for(tables.size(), [&](std::size_t j0, std::size_t j1) {
    for (std::size_t j = j0; j < j1; ++j) tables[j].build(codes, n, cs);
  }, tables.size());
  s_->tables_.swap(tables);
  s_->indexed_ = n;
}

void MIHIndex::maybe_merge_tail_locked() {
  const std::size_t tail = s_->store_.size() - s_->indexed_;
  if (tail > std::max<std::size_t>(4096, s_->indexed_ / 8)) rebuild_locked();
}

void MIHIndex::compact_locked() {
  if (s_->n_removed_ > 0) {
    std::vector<idx_t> dead;
    dead.reserve(s_->n_removed_);
    for (std::size_t i = 0; i < s_->removed_.size(); ++i)
      if (s_->removed_[i]) dead.push_back(s_->store_.id_at(i));
    s_->store_.remove_ids(dead.data(), dead.size());
    s_->removed_.clear();
    s_->removed_.shrink_to_fit();
    s_->n_removed_ = 0;
  }
  rebuild_locked();
}

void MIHIndex::compact() {
  std::unique_lock<SharedMutex> lock(s_->mu_);
  compact_locked();
}

void MIHIndex::add(const std::uint8_t* codes, std::size_t n) {
  std::unique_lock<SharedMutex> lock(s_->mu_);
  s_->store_.add(codes, n);
  if (!s_->removed_.empty()) s_->removed_.resize(s_->store_.size(), 0);
  maybe_merge_tail_locked();
}

void MIHIndex::add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids) {
  std::unique_lock<SharedMutex> lock(s_->mu_);
  if (n == 0) return;
  // Validate first (a removed id may be given again), so that a refused call changes nothing.
  s_->store_.check_new_ids(ids, n, "ids", s_->removed_.empty() ? nullptr : s_->removed_.data());
  if (s_->n_removed_ > 0) compact_locked();  // drop tombstones, so a reused id is not held twice
  s_->store_.add_with_ids(codes, n, ids);
  maybe_merge_tail_locked();
}

std::size_t MIHIndex::remove_ids(const idx_t* ids, std::size_t n) {
  std::unique_lock<SharedMutex> lock(s_->mu_);
  std::size_t removed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto pos = s_->store_.find(ids[i]);
    if (!pos) continue;
    if (s_->removed_.empty()) s_->removed_.assign(s_->store_.size(), 0);
    if (s_->removed_[*pos]) continue;
    s_->removed_[*pos] = 1;
    ++s_->n_removed_;
    ++removed;
  }
  if (removed > 0) s_->store_.bump_version();  // tombstones hide items from cached filters
  if (s_->n_removed_ > 0 && s_->n_removed_ * 8 > s_->store_.size()) compact_locked();
  return removed;
}

void MIHIndex::reset() {
  std::unique_lock<SharedMutex> lock(s_->mu_);
  s_->store_.reset();
  s_->tables_.clear();
  s_->indexed_ = 0;
  s_->removed_.clear();
  s_->n_removed_ = 0;
  if (auto_m_) s_->m_ = auto_m_for(nbits_, 0);
}

void MIHIndex::reconstruct(idx_t id, std::uint8_t* out) const { reconstruct_batch(&id, 1, out); }

std::vector<idx_t> MIHIndex::ids() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.live_ids(s_->removed_.empty() ? nullptr : s_->removed_.data());
}

void MIHIndex::reconstruct_batch(const idx_t* ids, std::size_t n, std::uint8_t* out) const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  s_->store_.copy_codes(ids, n, out, s_->removed_.empty() ? nullptr : s_->removed_.data());
}

// ---- persistence --------------------------------------------------------------------------------

void MIHIndex::save(const std::string& path) const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  s_->store_.check_mapping();
  io::Header h;
  h.index_type = IndexType::MIH;
  h.nbits = static_cast<std::uint32_t>(nbits_);
  h.flags = s_->store_.ids_increasing() ? io::kFlagIdsIncreasing : 0;
  h.ntotal = s_->store_.size() - s_->n_removed_;
  h.next_id = static_cast<std::uint64_t>(s_->store_.next_id());
  h.params_size = 8;  // uint32 m, uint32 automatic-m flag
  h.payload_offset = 2 * io::kPayloadAlign;
  h.payload_size = s_->store_.payload_size(s_->n_removed_);
  const std::uint32_t params[2] = {static_cast<std::uint32_t>(s_->m_), auto_m_ ? 1u : 0u};
  io::write_index_file(path, h, params, [&](io::AtomicFileWriter& out) {
    s_->store_.write_payload(out, s_->removed_.empty() ? nullptr : s_->removed_.data());
  });
}

std::unique_ptr<MIHIndex> MIHIndex::from_file(const io::Header& header,
                                              const std::shared_ptr<const io::MappedFile>& file,
                                              const std::string& path, bool mmap) {
  if (header.params_size != 8) throw FileError("'" + path + "': MIH parameters must be 8 bytes");
  std::uint32_t params[2];
  std::memcpy(params, file->data() + io::kHeaderSize, sizeof(params));
  const int nbits = static_cast<int>(header.nbits);
  const int m = static_cast<int>(params[0]);
  if (params[1] > 1 || m < 1 || m > nbits || (nbits + m - 1) / m > 32)
    throw FileError("'" + path + "': invalid MIH parameters (m=" + std::to_string(m) + ")");
  auto index = std::make_unique<MIHIndex>(nbits, params[1] ? 0 : m);
  index->s_->store_.read_payload(file, file->data() + header.payload_offset, header.ntotal,
                             static_cast<idx_t>(header.next_id), (header.flags & io::kFlagIdsIncreasing) != 0,
                             mmap, path);
  index->s_->m_ = m;
  const bool auto_m = index->auto_m_;
  index->auto_m_ = false;  // rebuild with the saved m
  index->rebuild_locked();
  index->auto_m_ = auto_m;
  return index;
}

}  // namespace deephash
