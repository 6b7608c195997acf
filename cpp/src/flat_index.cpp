#include "deephash/flat_index.hpp"

#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <vector>

#include "deephash/codes.hpp"
#include "allow_list.hpp"
#include "code_store.hpp"
#include "flat_scan.hpp"
#include "index_io.hpp"
#include "shared_mutex.hpp"

namespace deephash {

struct FlatIndex::State {
  explicit State(int nbits) : store_(nbits) {}
  mutable SharedMutex mu_;  // searches share it; writers take it exclusively
  CodeStore store_;
};

FlatIndex::FlatIndex(int nbits)
    : nbits_((check_nbits(nbits), nbits)), s_(std::make_unique<State>(nbits)) {}

FlatIndex::~FlatIndex() = default;

std::size_t FlatIndex::ntotal() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.size();
}

idx_t FlatIndex::next_id() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.next_id();
}

bool FlatIndex::is_mmapped() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.is_mmapped();
}

void FlatIndex::add(const std::uint8_t* codes, std::size_t n) {
  std::unique_lock<SharedMutex> lock(s_->mu_);
  s_->store_.add(codes, n);
}

void FlatIndex::add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids) {
  std::unique_lock<SharedMutex> lock(s_->mu_);
  s_->store_.add_with_ids(codes, n, ids);
}

void FlatIndex::search(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                       idx_t* ids) const {
  knn(queries, nq, k, distances, ids, nullptr, nullptr);
}

RangeResult FlatIndex::range_search(const std::uint8_t* queries, std::size_t nq, int radius) const {
  return range(queries, nq, radius, nullptr, nullptr);
}

void FlatIndex::search_filtered(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                                idx_t* ids, const IdSelector& allow, FilterStrategy* strategy) const {
  knn(queries, nq, k, distances, ids, &allow, strategy);
}

RangeResult FlatIndex::range_search_filtered(const std::uint8_t* queries, std::size_t nq, int radius,
                                             const IdSelector& allow, FilterStrategy* strategy) const {
  return range(queries, nq, radius, &allow, strategy);
}

// The scan of a search under the read lock: every stored code, or the filter's view of them.
template <class Scan>
auto FlatIndex::scan_locked(const IdSelector* allow, FilterStrategy* strategy, Scan&& scan) const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  const CodeStore& store = s_->store_;
  store.check_mapping();
  const ScanView all{store.codes(), store.ids(), store.size(), store.code_size(), nbits_, store.ids_increasing(),
                     nullptr, store.ids32()};
  const FilterView f = filter_view(store, all, nullptr, store.size(), allow);
  if (strategy) *strategy = f.strategy;
  return scan(f.view);
}

void FlatIndex::knn(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances, idx_t* ids,
                    const IdSelector* allow, FilterStrategy* strategy) const {
  if (k == 0) throw InvalidArgument("k must be > 0, got 0");
  check_padding_bits(queries, nq, static_cast<std::size_t>(nbits_), "queries");
  scan_locked(allow, strategy, [&](const ScanView& view) { knn_scan(view, queries, nq, k, distances, ids); });
}

RangeResult FlatIndex::range(const std::uint8_t* queries, std::size_t nq, int radius, const IdSelector* allow,
                             FilterStrategy* strategy) const {
  if (radius < 0) throw InvalidArgument("radius must be >= 0, got " + std::to_string(radius));
  check_padding_bits(queries, nq, static_cast<std::size_t>(nbits_), "queries");
  return scan_locked(allow, strategy, [&](const ScanView& view) { return range_scan(view, queries, nq, radius); });
}

std::size_t FlatIndex::remove_ids(const idx_t* ids, std::size_t n) {
  std::unique_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.remove_ids(ids, n).size();
}

void FlatIndex::reset() {
  std::unique_lock<SharedMutex> lock(s_->mu_);
  s_->store_.reset();
}

void FlatIndex::reconstruct(idx_t id, std::uint8_t* out) const { reconstruct_batch(&id, 1, out); }

std::vector<idx_t> FlatIndex::ids() const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  return s_->store_.live_ids();
}

void FlatIndex::reconstruct_batch(const idx_t* ids, std::size_t n, std::uint8_t* out) const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  s_->store_.copy_codes(ids, n, out);
}

void FlatIndex::save(const std::string& path) const {
  std::shared_lock<SharedMutex> lock(s_->mu_);
  s_->store_.check_mapping();
  io::Header h;
  h.index_type = IndexType::Flat;
  h.nbits = static_cast<std::uint32_t>(nbits_);
  h.flags = s_->store_.ids_increasing() ? io::kFlagIdsIncreasing : 0;
  h.ntotal = s_->store_.size();
  h.next_id = static_cast<std::uint64_t>(s_->store_.next_id());
  h.params_size = 0;
  h.payload_offset = io::kPayloadAlign;  // header (64 bytes) + no parameters, aligned
  h.payload_size = s_->store_.payload_size();
  io::write_index_file(path, h, nullptr, [&](io::AtomicFileWriter& out) { s_->store_.write_payload(out); });
}

std::unique_ptr<FlatIndex> FlatIndex::copy_of(const BinaryIndex& index) {
  const std::vector<idx_t> ids = index.ids();
  std::vector<std::uint8_t> codes(ids.size() * index.code_size());
  index.reconstruct_batch(ids.data(), ids.size(), codes.data());
  const idx_t next_id = index.next_id();
  auto out = std::make_unique<FlatIndex>(index.nbits());
  if (!ids.empty()) out->s_->store_.add_with_ids(codes.data(), ids.size(), ids.data());
  out->s_->store_.raise_next_id(next_id);
  return out;
}

std::unique_ptr<FlatIndex> FlatIndex::from_file(const io::Header& header,
                                                const std::shared_ptr<const io::MappedFile>& file,
                                                const std::string& path, bool mmap) {
  if (header.params_size != 0)
    throw FileError("'" + path + "': a FlatIndex file has no parameters, this one announces " +
                    std::to_string(header.params_size) + " bytes");
  auto index = std::make_unique<FlatIndex>(static_cast<int>(header.nbits));
  index->s_->store_.read_payload(file, file->data() + header.payload_offset, header.ntotal,
                             static_cast<idx_t>(header.next_id), (header.flags & io::kFlagIdsIncreasing) != 0,
                             mmap, path);
  return index;
}

}  // namespace deephash
