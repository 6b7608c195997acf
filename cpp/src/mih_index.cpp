// MIHIndex: construction, updates, accessors and persistence. Searching (probing, the cost model
// that chooses between probing and scanning, k-NN and range drivers) is in mih_search.cpp.
#include "deephash/mih_index.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>

#include "deephash/threads.hpp"

namespace deephash {

int MIHIndex::auto_m_for(int nbits, std::size_t n) noexcept {
  const double lg = std::log2(static_cast<double>(std::max<std::size_t>(n, 16)));
  int m = static_cast<int>(std::lround(nbits / lg));
  m = std::max(m, (nbits + 31) / 32);      // substrings of at most 32 bits
  m = std::min(m, std::max(1, nbits / 4));  // and at least 4 bits
  return std::max(m, 1);
}

MIHIndex::MIHIndex(int nbits, int m)
    : nbits_((check_nbits(nbits), nbits)), auto_m_(m == 0), m_(m), store_(static_cast<std::size_t>(nbits) / 8) {
  if (m < 0 || m > nbits)
    throw InvalidArgument("m must be in [1, nbits=" + std::to_string(nbits) + "] (or 0 for automatic), got " +
                          std::to_string(m));
  if (m > 0 && (nbits + m - 1) / m > 32)
    throw InvalidArgument("m=" + std::to_string(m) + " gives substrings of more than 32 bits for nbits=" +
                          std::to_string(nbits) + "; use m >= " + std::to_string((nbits + 31) / 32));
  if (auto_m_) m_ = auto_m_for(nbits_, 0);
}

std::size_t MIHIndex::ntotal() const {
  std::shared_lock<SharedMutex> lock(mu_);
  return store_.size() - n_removed_;
}
idx_t MIHIndex::next_id() const {
  std::shared_lock<SharedMutex> lock(mu_);
  return store_.next_id();
}
bool MIHIndex::is_mmapped() const {
  std::shared_lock<SharedMutex> lock(mu_);
  return store_.is_mmapped();
}
int MIHIndex::m() const {
  std::shared_lock<SharedMutex> lock(mu_);
  return m_;
}
std::vector<int> MIHIndex::substring_bits() const {
  std::shared_lock<SharedMutex> lock(mu_);
  std::vector<int> out;
  for (int j = 0; j < m_; ++j) out.push_back(nbits_ / m_ + (j < nbits_ % m_ ? 1 : 0));
  return out;
}
std::size_t MIHIndex::memory_usage() const {
  std::shared_lock<SharedMutex> lock(mu_);
  std::size_t total = store_.memory_usage() + removed_.capacity();
  for (const auto& t : tables_) total += t.memory_usage();
  return total;
}
std::size_t MIHIndex::tail_size() const {
  std::shared_lock<SharedMutex> lock(mu_);
  return store_.size() - indexed_;
}
std::size_t MIHIndex::tombstones() const {
  std::shared_lock<SharedMutex> lock(mu_);
  return n_removed_;
}
MIHStats MIHIndex::stats() const {
  return {st_queries_.load(), st_candidates_.load(), st_buckets_.load(), st_scans_.load(), st_radius_.load()};
}
void MIHIndex::reset_stats() {
  st_queries_ = st_candidates_ = st_buckets_ = st_scans_ = st_radius_ = 0;
}

// ---- building -----------------------------------------------------------------------------------

void MIHIndex::rebuild_locked() {
  const std::size_t n = store_.size();
  if (n > 0xFFFFFFFFull) throw InvalidArgument("MIHIndex holds at most 2^32 - 1 items, got " + std::to_string(n));
  if (auto_m_) m_ = auto_m_for(nbits_, n);
  std::vector<SubstringTable> tables;
  int begin = 0;
  for (int j = 0; j < m_; ++j) {
    const int bits = nbits_ / m_ + (j < nbits_ % m_ ? 1 : 0);
    tables.emplace_back(begin, bits);
    begin += bits;
  }
  const std::uint8_t* codes = store_.codes();
  const std::size_t cs = store_.code_size();
  parallel_for(tables.size(), [&](std::size_t j0, std::size_t j1) {
    for (std::size_t j = j0; j < j1; ++j) tables[j].build(codes, n, cs);
  }, tables.size());
  tables_.swap(tables);
  indexed_ = n;
}

void MIHIndex::maybe_merge_tail_locked() {
  const std::size_t tail = store_.size() - indexed_;
  if (tail > std::max<std::size_t>(4096, indexed_ / 8)) rebuild_locked();
}

void MIHIndex::compact_locked() {
  if (n_removed_ > 0) {
    std::vector<idx_t> dead;
    dead.reserve(n_removed_);
    for (std::size_t i = 0; i < removed_.size(); ++i)
      if (removed_[i]) dead.push_back(store_.id_at(i));
    store_.remove_ids(dead.data(), dead.size());
    removed_.clear();
    removed_.shrink_to_fit();
    n_removed_ = 0;
  }
  rebuild_locked();
}

void MIHIndex::compact() {
  std::unique_lock<SharedMutex> lock(mu_);
  compact_locked();
}

void MIHIndex::add(const std::uint8_t* codes, std::size_t n) {
  std::unique_lock<SharedMutex> lock(mu_);
  store_.add(codes, n);
  if (!removed_.empty()) removed_.resize(store_.size(), 0);
  maybe_merge_tail_locked();
}

void MIHIndex::add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids) {
  std::unique_lock<SharedMutex> lock(mu_);
  if (n == 0) return;
  // Validate first (a removed id may be given again), so that a refused call changes nothing.
  store_.check_new_ids(ids, n, "ids", removed_.empty() ? nullptr : removed_.data());
  if (n_removed_ > 0) compact_locked();  // drop tombstones, so a reused id is not held twice
  store_.add_with_ids(codes, n, ids);
  maybe_merge_tail_locked();
}

std::size_t MIHIndex::remove_ids(const idx_t* ids, std::size_t n) {
  std::unique_lock<SharedMutex> lock(mu_);
  std::size_t removed = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const auto pos = store_.find(ids[i]);
    if (!pos) continue;
    if (removed_.empty()) removed_.assign(store_.size(), 0);
    if (removed_[*pos]) continue;
    removed_[*pos] = 1;
    ++n_removed_;
    ++removed;
  }
  if (n_removed_ > 0 && n_removed_ * 8 > store_.size()) compact_locked();
  return removed;
}

void MIHIndex::reset() {
  std::unique_lock<SharedMutex> lock(mu_);
  store_.reset();
  tables_.clear();
  indexed_ = 0;
  removed_.clear();
  n_removed_ = 0;
  if (auto_m_) m_ = auto_m_for(nbits_, 0);
}

void MIHIndex::reconstruct(idx_t id, std::uint8_t* out) const {
  std::shared_lock<SharedMutex> lock(mu_);
  store_.check_mapping();
  const auto pos = store_.find(id);
  if (!pos || (!removed_.empty() && removed_[*pos])) throw UnknownId("id " + std::to_string(id) + " is not in the index");
  std::memcpy(out, store_.codes() + *pos * store_.code_size(), store_.code_size());
}

// ---- persistence --------------------------------------------------------------------------------

void MIHIndex::save(const std::string& path) const {
  std::shared_lock<SharedMutex> lock(mu_);
  store_.check_mapping();
  io::Header h;
  h.index_type = IndexType::MIH;
  h.nbits = static_cast<std::uint32_t>(nbits_);
  h.flags = store_.ids_increasing() ? io::kFlagIdsIncreasing : 0;
  h.ntotal = store_.size() - n_removed_;
  h.next_id = static_cast<std::uint64_t>(store_.next_id());
  h.params_size = 8;  // uint32 m, uint32 automatic-m flag
  h.payload_offset = 2 * io::kPayloadAlign;
  h.payload_size = store_.payload_size(n_removed_);
  std::uint8_t header[io::kHeaderSize];
  io::encode_header(h, header);
  const std::uint32_t params[2] = {static_cast<std::uint32_t>(m_), auto_m_ ? 1u : 0u};
  io::AtomicFileWriter out(path);
  out.write(header, sizeof(header));
  out.write(params, sizeof(params));
  out.pad_to(h.payload_offset);
  store_.write_payload(out, removed_.empty() ? nullptr : removed_.data());
  out.commit();
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
  index->store_.read_payload(file, file->data() + header.payload_offset, header.ntotal,
                             static_cast<idx_t>(header.next_id), (header.flags & io::kFlagIdsIncreasing) != 0,
                             mmap, path);
  index->m_ = m;
  const bool auto_m = index->auto_m_;
  index->auto_m_ = false;  // rebuild with the saved m
  index->rebuild_locked();
  index->auto_m_ = auto_m;
  return index;
}

}  // namespace deephash
