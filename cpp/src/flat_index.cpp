#include "deephash/flat_index.hpp"

#include <cstring>
#include <mutex>

#include "deephash/flat_scan.hpp"

namespace deephash {

FlatIndex::FlatIndex(int nbits) : nbits_((check_nbits(nbits), nbits)), store_(static_cast<std::size_t>(nbits) / 8) {}

std::size_t FlatIndex::ntotal() const {
  std::shared_lock<SharedMutex> lock(mu_);
  return store_.size();
}

idx_t FlatIndex::next_id() const {
  std::shared_lock<SharedMutex> lock(mu_);
  return store_.next_id();
}

bool FlatIndex::is_mmapped() const {
  std::shared_lock<SharedMutex> lock(mu_);
  return store_.is_mmapped();
}

void FlatIndex::add(const std::uint8_t* codes, std::size_t n) {
  std::unique_lock<SharedMutex> lock(mu_);
  store_.add(codes, n);
}

void FlatIndex::add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids) {
  std::unique_lock<SharedMutex> lock(mu_);
  store_.add_with_ids(codes, n, ids);
}

void FlatIndex::search(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                       idx_t* ids) const {
  if (k == 0) throw InvalidArgument("k must be > 0, got 0");
  std::shared_lock<SharedMutex> lock(mu_);
  store_.check_mapping();
  const ScanView view{store_.codes(), store_.ids(), store_.size(), store_.code_size(), nbits_,
                      store_.ids_increasing()};
  knn_scan(view, queries, nq, k, distances, ids);
}

RangeResult FlatIndex::range_search(const std::uint8_t* queries, std::size_t nq, int radius) const {
  if (radius < 0) throw InvalidArgument("radius must be >= 0, got " + std::to_string(radius));
  std::shared_lock<SharedMutex> lock(mu_);
  store_.check_mapping();
  const ScanView view{store_.codes(), store_.ids(), store_.size(), store_.code_size(), nbits_,
                      store_.ids_increasing()};
  return range_scan(view, queries, nq, radius);
}

std::size_t FlatIndex::remove_ids(const idx_t* ids, std::size_t n) {
  std::unique_lock<SharedMutex> lock(mu_);
  return store_.remove_ids(ids, n).size();
}

void FlatIndex::reset() {
  std::unique_lock<SharedMutex> lock(mu_);
  store_.reset();
}

void FlatIndex::reconstruct(idx_t id, std::uint8_t* out) const {
  std::shared_lock<SharedMutex> lock(mu_);
  store_.check_mapping();
  const auto pos = store_.find(id);
  if (!pos) throw UnknownId("id " + std::to_string(id) + " is not in the index");
  std::memcpy(out, store_.codes() + *pos * store_.code_size(), store_.code_size());
}

void FlatIndex::save(const std::string& path) const {
  std::shared_lock<SharedMutex> lock(mu_);
  store_.check_mapping();
  io::Header h;
  h.index_type = IndexType::Flat;
  h.nbits = static_cast<std::uint32_t>(nbits_);
  h.flags = store_.ids_increasing() ? io::kFlagIdsIncreasing : 0;
  h.ntotal = store_.size();
  h.next_id = static_cast<std::uint64_t>(store_.next_id());
  h.params_size = 0;
  h.payload_offset = io::kPayloadAlign;  // header (64 bytes) + no parameters, aligned
  h.payload_size = store_.payload_size();
  std::uint8_t header[io::kHeaderSize];
  io::encode_header(h, header);
  io::AtomicFileWriter out(path);
  out.write(header, sizeof(header));
  out.pad_to(h.payload_offset);
  store_.write_payload(out);
  out.commit();
}

std::unique_ptr<FlatIndex> FlatIndex::from_file(const io::Header& header,
                                                const std::shared_ptr<const io::MappedFile>& file,
                                                const std::string& path, bool mmap) {
  if (header.params_size != 0)
    throw FileError("'" + path + "': a FlatIndex file has no parameters, this one announces " +
                    std::to_string(header.params_size) + " bytes");
  auto index = std::make_unique<FlatIndex>(static_cast<int>(header.nbits));
  index->store_.read_payload(file, file->data() + header.payload_offset, header.ntotal,
                             static_cast<idx_t>(header.next_id), (header.flags & io::kFlagIdsIncreasing) != 0,
                             mmap, path);
  return index;
}

}  // namespace deephash
