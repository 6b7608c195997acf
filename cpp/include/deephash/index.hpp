// BinaryIndex: the interface every index over packed binary codes implements (FlatIndex, MIHIndex).
//
// Contracts (docs/format.md and the design handbook):
// - codes are (n, code_size) bytes, code_size = ceil(nbits / 8), any nbits >= 1; the padding bits
//   (nbits .. 8 * code_size - 1, the high bits of the last byte) are zero, and a code or query with
//   a padding bit set is refused (InvalidArgument); ids are int64 >= 0 and stable;
// - search returns the k smallest (distance, id) pairs in lexicographic order, padded with
//   (kMissingDistance, kMissingId);
// - range_search returns every item with distance <= radius, each query's slice sorted by
//   (distance, id);
// - a call that throws leaves the index unchanged; searches may run concurrently with each other,
//   writers (add, add_with_ids, remove_ids, reset) exclude them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "deephash/common.hpp"
#include "deephash/id_selector.hpp"

namespace deephash {

struct RangeResult {
  std::vector<std::int64_t> lims;  // nq + 1 offsets into distances / ids
  std::vector<dist_t> distances;
  std::vector<idx_t> ids;
};

enum class IndexType : std::uint32_t { Flat = 1, MIH = 2 };

namespace io {  // the file format's internals (cpp/src/index_io.hpp), used by the loaders
struct Header;
class MappedFile;
}  // namespace io

class BinaryIndex {
 public:
  virtual ~BinaryIndex() = default;

  virtual IndexType type() const noexcept = 0;
  virtual int nbits() const noexcept = 0;
  std::size_t code_size() const noexcept { return code_size_for(nbits()); }
  virtual std::size_t ntotal() const = 0;

  // Appends n codes with ids next_id(), next_id() + 1, ... (consecutive after the largest id the
  // index has held since construction or the last reset).
  virtual void add(const std::uint8_t* codes, std::size_t n) = 0;
  // Appends n codes with caller ids: unique, >= 0, none already present.
  virtual void add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids) = 0;
  // distances and ids are (nq, k) row-major outputs.
  virtual void search(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                      idx_t* ids) const = 0;
  virtual RangeResult range_search(const std::uint8_t* queries, std::size_t nq, int radius) const = 0;
  // Filtered search: as search / range_search, but only ids in `allow` may be returned (same
  // order, ties and padding, as if the index held only those items). `strategy`, when given,
  // receives how the search ran.
  virtual void search_filtered(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                               idx_t* ids, const IdSelector& allow, FilterStrategy* strategy = nullptr) const = 0;
  virtual RangeResult range_search_filtered(const std::uint8_t* queries, std::size_t nq, int radius,
                                            const IdSelector& allow, FilterStrategy* strategy = nullptr) const = 0;
  // Removes the items with these ids (ids not present are ignored); returns how many were removed.
  // The remaining items keep their ids.
  virtual std::size_t remove_ids(const idx_t* ids, std::size_t n) = 0;
  virtual void reset() = 0;
  // Copies the code of `id` into out (code_size bytes); throws UnknownId.
  virtual void reconstruct(idx_t id, std::uint8_t* out) const = 0;
  // The codes of n ids into out (n x code_size bytes), read under one lock; throws UnknownId for
  // the first id not held (out is then partly written, the index unchanged).
  virtual void reconstruct_batch(const idx_t* ids, std::size_t n, std::uint8_t* out) const = 0;
  // The ids held, in storage order (with reconstruct_batch: export an index's contents).
  virtual std::vector<idx_t> ids() const = 0;
  virtual idx_t next_id() const = 0;
  // True while the codes are read in place from a file loaded with mmap (until the first write).
  virtual bool is_mmapped() const = 0;

  // Writes the index to `path` atomically (docs/format.md).
  virtual void save(const std::string& path) const = 0;
};

// Reads any index written by save(); with mmap, flat code arrays stay in the mapped file
// (read-only; the first write copies them into memory). Throws FileError on any invalid file.
std::unique_ptr<BinaryIndex> load_index(const std::string& path, bool mmap = false);

// Reads an index from the bytes of a file held in memory (validated exactly as load_index does);
// `name` only appears in error messages. The index keeps no reference to `data`.
std::unique_ptr<BinaryIndex> load_index_from_memory(const void* data, std::size_t size,
                                                    const std::string& name = "<memory>");

}  // namespace deephash
