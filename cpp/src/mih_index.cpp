// MIHIndex: construction, updates, accessors and persistence. Searching (probing, the cost model
// that chooses between probing and scanning, k-NN and range drivers) is in mih_search.cpp.
#include "deephash/mih_index.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <shared_mutex>

#include "deephash/threads.hpp"
#include "index_io.hpp"
#include "mih_state.hpp"
#include "radix_sort.hpp"

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
  return {s_->st_queries_.load(), s_->st_candidates_.load(), s_->st_buckets_.load(), s_->st_scans_.load(),
          s_->st_radius_.load(), s_->st_unprobed_.load()};
}
void MIHIndex::reset_stats() {
  s_->st_queries_ = s_->st_candidates_ = s_->st_buckets_ = s_->st_scans_ = s_->st_radius_ = s_->st_unprobed_ = 0;
}
std::vector<MIHPlanEntry> MIHIndex::plan() const {
  const ProbePlan& p = s_->plan_;
  std::vector<MIHPlanEntry> out;
  for (std::size_t c = 0; c < ProbePlan::kClasses; ++c) {
    if (p.queries(c) == 0) continue;
    MIHPlanEntry e;
    e.range = c >= ProbePlan::kKnnClasses;
    if (e.range) {
      e.from = static_cast<int>(c - ProbePlan::kKnnClasses);
      e.to = c + 1 == ProbePlan::kClasses ? -1 : e.from;
    } else {
      e.from = c >= 31 ? std::numeric_limits<int>::max() : 1 << c;
      e.to = c >= 30 ? std::numeric_limits<int>::max() : (2 << c) - 1;
    }
    e.queries = p.queries(c);
    e.worth = p.worth(c);
    e.probe_ns = p.probe_ns(c);
    e.scan_ns = p.scan_ns(c);
    e.probing = p.prefers_probe(c);
    out.push_back(e);
  }
  return out;
}

// ---- building -----------------------------------------------------------------------------------

namespace {

// Below this many bytes of codes they stay in insertion order: they then sit in the caches, where
// their order saves little, while sorted storage ranks ties by looking their ids up and scans
// without the strict bound that ids growing with position give. Measured (bench_mih.py, 2 threads,
// Intel Xeon): sorting made 10M x 64-bit codes (80 MB) 1.5-2.1x faster on structured codes and
// 1M x 128 and 256 bits (16 and 32 MB) mostly 1.05-1.35x, but 1M x 32 and 48 bits (4 and 6 MB)
// 0.8-0.9x on uniform codes, where the search falls back to the scan. With one table (codes of at
// most 32 bits) the codes stay so too: a bucket then holds copies of one code, all tied (1M
// structured 16-bit codes: k = 1 at 0.4x the speed when sorted).
constexpr std::size_t kSortedMinBytes = std::size_t{8} << 20;

// The storage order of sorted MIH storage: increasing (substring of `last`, then the up to 56 bits
// just below it in the code), ties by position. Sorting on the bits below the last substring too
// keeps near-identical codes together, so that the candidates of the other tables' buckets,
// which are mostly such codes, share cache lines: on structured 10M x 64-bit codes (m = 3),
// k = 10 ran at 57,600 q/s sorted by the last substring alone and 64,900 sorted by the whole code,
// against 35,000 in insertion order.
std::vector<std::uint32_t> sorted_order(const std::uint8_t* codes, std::size_t n, std::size_t cs,
                                        const SubstringTable& last) {
  const int below = std::min({64 - last.bits(), 56, last.bit_begin()});
  const SubstringTable rest(last.bit_begin() - below, below);  // only for key_of
  const auto rest_of = [&](std::size_t i) { return below == 0 ? 0 : rest.key_of(codes + i * cs, cs); };
  std::vector<std::uint32_t> order(n);
  if (!SubstringTable::dense_for(last.bits(), n)) {  // long, sparse substrings: one comparison sort
    std::vector<std::pair<std::uint64_t, std::uint32_t>> keyed(n);
    for (std::size_t i = 0; i < n; ++i)
      keyed[i] = {last.key_of(codes + i * cs, cs) << (64 - last.bits()) | rest_of(i) << (64 - last.bits() - below),
                  static_cast<std::uint32_t>(i)};
    std::sort(keyed.begin(), keyed.end());
    for (std::size_t i = 0; i < n; ++i) order[i] = keyed[i].second;
    return order;
  }
  // A counting sort by the last substring, then each group by the bits below it.
  std::vector<std::uint32_t> start((std::size_t{1} << last.bits()) + 1);
  order_by_key(n, last.bits(), [&](std::size_t i) { return last.key_of(codes + i * cs, cs); }, order.data(),
               start.data());
  if (below == 0) return order;
  parallel_for(start.size() - 1, [&](std::size_t k0, std::size_t k1) {
    std::vector<std::pair<std::uint64_t, std::uint32_t>> group;
    // The codes are read at random: each group's codes are fetched while earlier groups sort.
    constexpr std::size_t kAhead = 64;
    const std::size_t first_byte = static_cast<std::size_t>(rest.bit_begin()) / 8;
    for (std::size_t i = start[k0]; i < std::min<std::size_t>(start[k0] + kAhead, n); ++i)
      __builtin_prefetch(codes + order[i] * cs + first_byte);
    for (std::size_t k = k0; k < k1; ++k) {
      const std::size_t b = start[k], e = start[k + 1];
      for (std::size_t i = b + kAhead; i < std::min<std::size_t>(e + kAhead, n); ++i)
        __builtin_prefetch(codes + order[i] * cs + first_byte);
      if (e - b < 2) continue;
      group.clear();
      for (std::size_t i = b; i < e; ++i) group.emplace_back(rest_of(order[i]), order[i]);
      std::sort(group.begin(), group.end());
      for (std::size_t i = b; i < e; ++i) order[i] = group[i - b].second;
    }
  });
  return order;
}

}  // namespace

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
  const std::size_t cs = s_->store_.code_size();
  // Sorted storage (see mih_state.hpp): the codes in order of the last table's substring, which
  // that table then needs no position list for. Memory-mapped codes are left where they are
  // (sorting would copy them into memory) unless they were saved sorted already.
  bool sorted = false;
  if (n * cs >= kSortedMinBytes && s_->m_ >= 2) {
    const SubstringTable& last = tables.back();
    if (s_->store_.is_mmapped()) {
      const std::uint8_t* codes = s_->store_.codes();
      sorted = true;
      for (std::size_t i = 1; i < n && sorted; ++i)
        sorted = last.key_of(codes + (i - 1) * cs, cs) <= last.key_of(codes + i * cs, cs);
    } else {
      const std::vector<std::uint32_t> order = sorted_order(s_->store_.codes(), n, cs, last);
      std::vector<std::uint8_t> removed;
      if (!s_->removed_.empty()) {  // tombstones move with their items
        removed.resize(n);
        for (std::size_t i = 0; i < n; ++i) removed[i] = s_->removed_[order[i]];
      }
      s_->store_.permute(order.data());
      if (!removed.empty()) s_->removed_.swap(removed);
      sorted = true;
    }
  }
  const std::uint8_t* codes = s_->store_.codes();
  parallel_for(tables.size(), [&](std::size_t j0, std::size_t j1) {
    for (std::size_t j = j0; j < j1; ++j) tables[j].build(codes, n, cs, sorted && j + 1 == tables.size());
  }, tables.size());
  s_->tables_.swap(tables);
  s_->indexed_ = n;
  s_->plan_.reset();  // other data: what probes were worth is to be learned again
}

void MIHIndex::maybe_merge_tail_locked() {
  const std::size_t tail = s_->store_.size() - s_->indexed_;
  if (tail > std::max<std::size_t>(4096, s_->indexed_ / 8)) rebuild_locked();
}

void MIHIndex::compact_locked() {
  // Nothing to merge or drop: the tables are current (a rebuild would sort and index it all again).
  if (s_->n_removed_ == 0 && s_->indexed_ == s_->store_.size() && !s_->tables_.empty()) return;
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
