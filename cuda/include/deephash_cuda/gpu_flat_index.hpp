// GpuFlatIndex: exact Hamming k-NN and range search on one CUDA device, with FlatIndex's contracts
// bit for bit: (distance, id) order with ties to the smaller id, (2147483647, -1) padding, an
// inclusive radius, stable int64 ids, the same errors, and a call that throws changes nothing.
// Any k from 1 up (no cap), range search with exact output memory, one query spread over the
// whole device. Plain C++: no CUDA header is needed to include it.
//
// Storage: the codes live on the device as rows of whole 32-bit words in increasing id order
// (so (distance, position) order is (distance, id) order), next to a host FlatIndex of the same
// items, which answers reconstruct, ids, save and to_cpu and keeps the file format that of
// FlatIndex (a saved GpuFlatIndex loads anywhere, with or without a GPU).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "deephash/common.hpp"
#include "deephash/flat_index.hpp"
#include "deephash/index.hpp"

namespace deephash::cuda {

// A CUDA call failed (no device, a bad device number, a launch or copy that failed).
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The device could not hold a search's or an add's working memory; the index is unchanged.
class GpuOutOfMemory : public CudaError {
 public:
  using CudaError::CudaError;
};

// The widest codes GpuFlatIndex takes (its per-distance histograms live in shared memory).
inline constexpr int kMaxGpuBits = 4096;

class GpuFlatIndex {
 public:
  // nbits: any number of bits from 1 up to kMaxGpuBits (codes of ceil(nbits / 8) bytes, padding
  // bits zero: codes and queries with a padding bit set are refused). Throws CudaError when `device` cannot be
  // used (naming the cause: no driver, no device, a number out of range).
  GpuFlatIndex(int nbits, int device = 0);
  ~GpuFlatIndex();
  GpuFlatIndex(const GpuFlatIndex&) = delete;
  GpuFlatIndex& operator=(const GpuFlatIndex&) = delete;

  // A GpuFlatIndex holding the items of `index` (FlatIndex, MIHIndex, ...), same ids and next_id.
  static std::unique_ptr<GpuFlatIndex> from_index(const BinaryIndex& index, int device = 0);
  // A FlatIndex holding the same items, ids and next_id.
  std::unique_ptr<FlatIndex> to_cpu() const;

  int nbits() const noexcept { return nbits_; }
  std::size_t code_size() const noexcept { return code_size_for(nbits_); }
  int device() const noexcept { return device_; }
  std::size_t ntotal() const;
  idx_t next_id() const;

  void add(const std::uint8_t* codes, std::size_t n);
  void add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids);
  // queries: nq x code_size bytes; distances and ids: (nq, k). With on_device, all three are
  // pointers into this device's memory (CuPy arrays, PyTorch CUDA tensors), else host memory.
  void search(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances, idx_t* ids,
              bool on_device = false) const;
  // Results on the host; queries on the host, or on this device with queries_on_device.
  RangeResult range_search(const std::uint8_t* queries, std::size_t nq, int radius,
                           bool queries_on_device = false) const;
  std::size_t remove_ids(const idx_t* ids, std::size_t n);
  void reset();
  void reconstruct(idx_t id, std::uint8_t* out) const;
  void reconstruct_batch(const idx_t* ids, std::size_t n, std::uint8_t* out) const;
  std::vector<idx_t> ids() const;
  // Writes a FlatIndex file (docs/format.md).
  void save(const std::string& path) const;

  // How k-NN selects (for tests and benchmarks; the default picks per call): Auto takes one pass
  // with candidates for k <= 4096 and the counting selection otherwise; Counting always counts.
  enum class Selection { Auto, Counting };
  void set_selection(Selection selection) noexcept;

  struct MemoryUsage {
    std::size_t device_bytes = 0;  // code rows and ids held on the device (capacity included)
    std::size_t host_bytes = 0;    // the host copy and the id order
  };
  MemoryUsage memory_usage() const;

  struct State;  // the device arrays and the host copy (gpu_flat_index.cu)

 private:
  // The writer lock held; `assigned`: ids are next_id, next_id + 1, ... (add).
  void add_locked(const std::uint8_t* codes, std::size_t n, const idx_t* ids, bool assigned);
  int nbits_;
  int device_;
  Selection selection_ = Selection::Auto;
  std::unique_ptr<State> s_;
};

}  // namespace deephash::cuda
