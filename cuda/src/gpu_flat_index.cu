// GpuFlatIndex (deephash_cuda/gpu_flat_index.hpp): storage on the device, the search passes of
// cuda/src/kernels/, and the host copy that keeps ids, files and errors those of FlatIndex.
#include "deephash_cuda/gpu_flat_index.hpp"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "deephash/codes.hpp"
#include "deephash_cuda/device.hpp"
#include "kernels/launch.hpp"
#include "select_plan.hpp"
#include "shared_mutex.hpp"

namespace deephash::cuda {

namespace kernels {

void check(cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  cudaGetLastError();  // clear a non-sticky error so the index stays usable
  const std::string msg = std::string(what) + ": " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
  if (err == cudaErrorMemoryAllocation) throw GpuOutOfMemory("out of GPU memory in " + msg);
  throw CudaError(msg);
}

}  // namespace kernels

namespace {

using kernels::check;

std::string mib(std::uint64_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

// Makes `device` current for the calling thread (CUDA's current device is per thread).
void use_device(int device) { check(cudaSetDevice(device), "cudaSetDevice"); }

}  // namespace

// Types the index state holds (a named namespace: State is not internal to this file's linkage).
namespace storage {

// Idle streams kept per device for the next call: creating and destroying a stream costs more
// than a small search's kernels (it made a single query's fixed cost grow by tens of microseconds).
class StreamPool {
 public:
  cudaStream_t take(int device) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (std::size_t i = idle_.size(); i-- > 0;) {
        if (idle_[i].first != device) continue;
        const cudaStream_t s = idle_[i].second;
        idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
        return s;
      }
    }
    cudaStream_t s = nullptr;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    return s;
  }
  void give_back(int device, cudaStream_t s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdle) {
      idle_.emplace_back(device, s);
      return;
    }
    cudaStreamDestroy(s);
  }

 private:
  static constexpr std::size_t kMaxIdle = 64;
  std::mutex mu_;
  std::vector<std::pair<int, cudaStream_t>> idle_;
};

StreamPool& stream_pool() {
  static StreamPool* pool = new StreamPool;  // never destroyed: its streams end with the CUDA context
  return *pool;
}

// A stream of its own per call (taken from the pool), so searches from several threads run side by
// side; it goes back to the pool once its work is done.
class Stream {
 public:
  Stream() {
    check(cudaGetDevice(&device_), "cudaGetDevice");
    s_ = stream_pool().take(device_);
  }
  ~Stream() {
    if (cudaStreamSynchronize(s_) == cudaSuccess) {
      stream_pool().give_back(device_, s_);
    } else {
      cudaGetLastError();
      cudaStreamDestroy(s_);
    }
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const noexcept { return s_; }
  void sync(const char* what) const { check(cudaStreamSynchronize(s_), what); }

 private:
  int device_ = 0;
  cudaStream_t s_ = nullptr;
};

// Device memory owned by one object: stream-ordered scratch (freed on its stream) or plain storage.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(std::size_t bytes, cudaStream_t stream, const char* what) : stream_(stream), bytes_(bytes) {
    if (bytes == 0) return;
    const cudaError_t err = stream ? cudaMallocAsync(&p_, bytes, stream) : cudaMalloc(&p_, bytes);
    if (err != cudaSuccess) {
      cudaGetLastError();
      p_ = nullptr;
      std::size_t free_bytes = 0, total = 0;
      cudaMemGetInfo(&free_bytes, &total);
      cudaGetLastError();
      throw GpuOutOfMemory(std::string("out of GPU memory: ") + what + " needs " + mib(bytes) + ", " +
                           mib(free_bytes) + " free of " + mib(total));
    }
  }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { swap(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      release();
      swap(o);
    }
    return *this;
  }
  template <class T>
  T* as() const noexcept {
    return static_cast<T*>(p_);
  }
  std::size_t bytes() const noexcept { return bytes_; }

 private:
  void swap(DeviceBuffer& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(stream_, o.stream_);
    std::swap(bytes_, o.bytes_);
  }
  void release() noexcept {
    if (!p_) return;
    if (stream_)
      cudaFreeAsync(p_, stream_);
    else
      cudaFree(p_);
    p_ = nullptr;
  }
  void* p_ = nullptr;
  cudaStream_t stream_ = nullptr;
  std::size_t bytes_ = 0;
};

// Several scratch arrays carved out of one stream-ordered allocation: a small search costs one
// cudaMallocAsync and one free instead of one of each per array.
class Scratch {
 public:
  // Reserves `bytes` (256-byte aligned) and returns its offset; call before allocate().
  std::size_t reserve(std::size_t bytes) {
    const std::size_t at = total_;
    total_ += (bytes + 255) / 256 * 256;
    return at;
  }
  void allocate(cudaStream_t stream, const char* what) { buf_ = DeviceBuffer(total_, stream, what); }
  template <class T>
  T* at(std::size_t offset) const noexcept {
    return reinterpret_cast<T*>(buf_.as<std::uint8_t>() + offset);
  }

 private:
  std::size_t total_ = 0;
  DeviceBuffer buf_;
};

}  // namespace storage

namespace {

using storage::DeviceBuffer;
using storage::Scratch;
using storage::Stream;

int sm_count(int device) {
  int n = 0;
  check(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  return n;
}

// Searches allocate their scratch from the device's stream-ordered pool; by default the pool
// returns every freed byte to the driver at each synchronisation, so each search would pay for
// fresh allocations. Keep up to 256 MiB cached between searches (other libraries still get the
// rest), once per device.
void keep_scratch_cached(int device) {
  static std::mutex mu;
  static std::vector<int> done;
  std::lock_guard<std::mutex> lock(mu);
  if (std::find(done.begin(), done.end(), device) != done.end()) return;
  cudaMemPool_t pool;
  if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) {
    std::uint64_t threshold = std::uint64_t{256} << 20;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold);
  }
  cudaGetLastError();  // a device without pools still works, only slower
  done.push_back(device);
}

// Bytes a search may take for its scratch: most of what is free now.
std::uint64_t search_budget() {
  std::size_t free_bytes = 0, total = 0;
  check(cudaMemGetInfo(&free_bytes, &total), "cudaMemGetInfo");
  return static_cast<std::uint64_t>(free_bytes) / 10 * 8;
}

}  // namespace

struct GpuFlatIndex::State {
  mutable SharedMutex mu;
  std::unique_ptr<FlatIndex> host;   // the same items, in insertion order
  std::vector<idx_t> dev_ids;        // ids of the device rows, increasing (a host copy of `ids`)
  DeviceBuffer rows;                 // capacity rows of `words` 32-bit words
  DeviceBuffer ids;                  // capacity int64 ids
  std::size_t capacity = 0;
  int words = 0;                     // 32-bit words per row
  int sms = 1;

  // Evenly spaced rows of the codes whose histogram estimates a query's radius (plan::kSampleRows
  // of them; the codes themselves while there are no more than that).
  DeviceBuffer sample, sample_src;
  std::uint64_t sample_n = 0;

  std::size_t n() const noexcept { return dev_ids.size(); }
  kernels::CodesView view() const { return {rows.as<std::uint32_t>(), n(), words}; }
  kernels::CodesView sample_view() const {
    if (sample_n == n()) return view();
    return {sample.as<std::uint32_t>(), sample_n, words};
  }
  // Allocates the sample's buffers before a write that makes the index larger than the sample (so
  // that refreshing it afterwards cannot run out of memory).
  void reserve_sample(std::size_t new_n) {
    if (new_n <= plan::kSampleRows || sample.bytes()) return;
    sample = DeviceBuffer(plan::kSampleRows * words * 4, nullptr, "the search sample");
    sample_src = DeviceBuffer(plan::kSampleRows * 8, nullptr, "the search sample");
  }
  // Re-draws the sample after a write (a gather of kSampleRows rows).
  void refresh_sample(cudaStream_t stream) {
    const std::uint64_t total = n();
    if (total <= plan::kSampleRows) {
      sample_n = total;
      return;
    }
    std::vector<std::int64_t> src(plan::kSampleRows);
    for (std::uint64_t i = 0; i < src.size(); ++i)
      src[i] = static_cast<std::int64_t>(plan::sample_position(i, plan::kSampleRows, total));
    check(cudaMemcpyAsync(sample_src.as<void>(), src.data(), src.size() * 8, cudaMemcpyHostToDevice, stream),
          "copying sample positions");
    kernels::gather_rows(rows.as<std::uint32_t>(), total, nullptr, sample_src.as<std::int64_t>(), src.size(), words,
                         sample.as<std::uint32_t>(), stream);
    check(cudaStreamSynchronize(stream), "drawing the search sample");
    sample_n = plan::kSampleRows;
  }
};

namespace {

// Copies nq codes of code_size bytes into padded rows of `words` words (padding zero).
void upload_rows(std::uint32_t* dst, const std::uint8_t* src, std::size_t n, std::size_t code_size, int words,
                 cudaStream_t stream) {
  if (n == 0) return;
  const std::size_t pitch = static_cast<std::size_t>(words) * 4;
  if (pitch != code_size) check(cudaMemsetAsync(dst, 0, n * pitch, stream), "clearing row padding");
  check(cudaMemcpy2DAsync(dst, pitch, src, code_size, code_size, n, cudaMemcpyDefault, stream), "copying codes");
}

// Refuses queries with a padding bit set (nbits % 8 != 0). Queries on the device: only the last
// byte of each row comes to the host.
void check_query_padding(const std::uint8_t* queries, std::size_t nq, int nbits, bool on_device) {
  const std::size_t bits = static_cast<std::size_t>(nbits);
  if (padding_mask(bits) == 0 || nq == 0) return;
  if (!on_device) return check_padding_bits(queries, nq, bits, "queries");
  const std::size_t cs = code_size_for(nbits);
  std::vector<std::uint8_t> last(nq);
  Stream stream;
  check(cudaMemcpy2DAsync(last.data(), 1, queries + cs - 1, cs, 1, nq, cudaMemcpyDefault, stream.get()),
        "reading the queries' last bytes");
  stream.sync("reading the queries' last bytes");
  const std::size_t row = find_padding_bits(last.data(), nq, bits % 8);  // one-byte rows, same mask
  if (row < nq) throw InvalidArgument("queries: " + describe_padding_bits(last[row], row, bits));
}

}  // namespace

GpuFlatIndex::GpuFlatIndex(int nbits, int device)
    : nbits_((check_nbits(nbits), nbits)), device_(device), s_(std::make_unique<State>()) {
  if (nbits > kMaxGpuBits)
    throw InvalidArgument("GpuFlatIndex takes codes of at most " + std::to_string(kMaxGpuBits) + " bits, got " +
                          std::to_string(nbits) + " (use FlatIndex)");
  const std::string why = unavailable_reason();
  if (!why.empty()) throw CudaError("GpuFlatIndex needs a CUDA device: " + why);
  const int count = device_count();
  if (device < 0 || device >= count)
    throw CudaError("GpuFlatIndex: device " + std::to_string(device) + " does not exist (" + std::to_string(count) +
                    " CUDA device" + (count == 1 ? "" : "s") + ")");
  use_device(device);
  keep_scratch_cached(device);
  s_->host = std::make_unique<FlatIndex>(nbits);
  s_->words = static_cast<int>(plan::device_stride_words(code_size()));
  s_->sms = sm_count(device);
}

GpuFlatIndex::~GpuFlatIndex() {
  if (s_) {
    cudaSetDevice(device_);
    cudaGetLastError();
  }
}

std::unique_ptr<GpuFlatIndex> GpuFlatIndex::from_index(const BinaryIndex& index, int device) {
  auto out = std::make_unique<GpuFlatIndex>(index.nbits(), device);
  std::unique_ptr<FlatIndex> host = FlatIndex::copy_of(index);
  std::vector<idx_t> ids = host->ids();
  std::sort(ids.begin(), ids.end());
  std::vector<std::uint8_t> codes(ids.size() * out->code_size());
  host->reconstruct_batch(ids.data(), ids.size(), codes.data());
  State& s = *out->s_;
  const std::size_t n = ids.size();
  s.rows = DeviceBuffer(n * s.words * 4, nullptr, "the codes");
  s.ids = DeviceBuffer(n * 8, nullptr, "the ids");
  Stream stream;
  upload_rows(s.rows.as<std::uint32_t>(), codes.data(), n, out->code_size(), s.words, stream.get());
  if (n) check(cudaMemcpyAsync(s.ids.as<idx_t>(), ids.data(), n * 8, cudaMemcpyHostToDevice, stream.get()), "copying ids");
  s.reserve_sample(n);
  stream.sync("uploading an index");
  s.capacity = n;
  s.dev_ids = std::move(ids);
  s.host = std::move(host);
  s.refresh_sample(stream.get());
  return out;
}

std::unique_ptr<FlatIndex> GpuFlatIndex::to_cpu() const {
  std::shared_lock<SharedMutex> lock(s_->mu);
  return FlatIndex::copy_of(*s_->host);
}

std::size_t GpuFlatIndex::ntotal() const {
  std::shared_lock<SharedMutex> lock(s_->mu);
  return s_->n();
}

idx_t GpuFlatIndex::next_id() const {
  std::shared_lock<SharedMutex> lock(s_->mu);
  return s_->host->next_id();
}

// ---- writes -------------------------------------------------------------------------------------
// Each write allocates what it needs on the device first (running out throws, nothing changed),
// then lets the host copy validate and take the items (a refusal throws, nothing changed), then
// commits on the device with copies and gathers into memory already held.

void GpuFlatIndex::add(const std::uint8_t* codes, std::size_t n) {
  std::unique_lock<SharedMutex> lock(s_->mu);
  if (n == 0) return;
  const idx_t first = s_->host->next_id();
  if (static_cast<std::uint64_t>(first) + n > static_cast<std::uint64_t>(INT64_MAX))
    throw InvalidArgument("add: ids would overflow int64 (next id " + std::to_string(first) + ")");
  std::vector<idx_t> ids(n);
  for (std::size_t i = 0; i < n; ++i) ids[i] = first + static_cast<idx_t>(i);
  // next_id exceeds every id held, so these ids append in order.
  add_locked(codes, n, ids.data(), true);
}

void GpuFlatIndex::add_with_ids(const std::uint8_t* codes, std::size_t m, const idx_t* new_ids) {
  std::unique_lock<SharedMutex> lock(s_->mu);
  add_locked(codes, m, new_ids, false);
}

void GpuFlatIndex::add_locked(const std::uint8_t* codes, std::size_t m, const idx_t* new_ids, bool assigned) {
  State& s = *s_;
  if (m == 0) return;
  use_device(device_);
  const std::size_t n = s.n(), cs = code_size();
  const std::size_t row_bytes = static_cast<std::size_t>(s.words) * 4;
  bool appends = n == 0 || new_ids[0] > s.dev_ids.back();
  for (std::size_t i = 1; i < m && appends; ++i) appends = new_ids[i] > new_ids[i - 1];
  Stream stream;
  s.reserve_sample(n + m);
  if (appends) {
    DeviceBuffer rows, ids;
    const bool grow = n + m > s.capacity;
    if (grow) {  // amortised doubling: appends of small batches stay cheap
      const std::size_t cap = std::max(n + m, s.capacity + s.capacity / 2);
      rows = DeviceBuffer(cap * row_bytes, nullptr, "the codes");
      ids = DeviceBuffer(cap * 8, nullptr, "the ids");
    }
    if (assigned)
      s.host->add(codes, m);  // the ids next_id, next_id + 1, ... (the host keeps them implicit)
    else
      s.host->add_with_ids(codes, m, new_ids);  // validates; throws before any change
    if (grow) {
      if (n) {
        check(cudaMemcpyAsync(rows.as<std::uint8_t>(), s.rows.as<std::uint8_t>(), n * row_bytes,
                              cudaMemcpyDeviceToDevice, stream.get()), "moving codes");
        check(cudaMemcpyAsync(ids.as<idx_t>(), s.ids.as<idx_t>(), n * 8, cudaMemcpyDeviceToDevice, stream.get()),
              "moving ids");
      }
      stream.sync("moving codes");
      s.rows = std::move(rows);
      s.ids = std::move(ids);
      s.capacity = s.rows.bytes() / row_bytes;
    }
    upload_rows(s.rows.as<std::uint32_t>() + n * s.words, codes, m, cs, s.words, stream.get());
    check(cudaMemcpyAsync(s.ids.as<idx_t>() + n, new_ids, m * 8, cudaMemcpyHostToDevice, stream.get()), "copying ids");
    stream.sync("adding codes");
    s.dev_ids.insert(s.dev_ids.end(), new_ids, new_ids + m);
    s.refresh_sample(stream.get());
    return;
  }
  // Interleaved ids: merge into new id-ordered arrays. src[i] < n: old row, else staged new row.
  std::vector<std::size_t> order(m);
  for (std::size_t i = 0; i < m; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return new_ids[a] < new_ids[b]; });
  std::vector<std::int64_t> src;
  std::vector<idx_t> merged;
  src.reserve(n + m);
  merged.reserve(n + m);
  std::size_t i = 0, j = 0;
  while (i < n || j < m) {
    if (j == m || (i < n && s.dev_ids[i] < new_ids[order[j]])) {
      src.push_back(static_cast<std::int64_t>(i));
      merged.push_back(s.dev_ids[i++]);
    } else {
      src.push_back(static_cast<std::int64_t>(n + order[j]));
      merged.push_back(new_ids[order[j++]]);
    }
  }
  DeviceBuffer rows(merged.size() * row_bytes, nullptr, "the codes");
  DeviceBuffer ids(merged.size() * 8, nullptr, "the ids");
  DeviceBuffer staged_rows(m * row_bytes, stream.get(), "the new codes");
  DeviceBuffer staged_ids(m * 8, stream.get(), "the new ids");
  DeviceBuffer src_dev(src.size() * 8, stream.get(), "the merge order");
  s.host->add_with_ids(codes, m, new_ids);  // validates (negative, repeated or present ids)
  upload_rows(staged_rows.as<std::uint32_t>(), codes, m, cs, s.words, stream.get());
  check(cudaMemcpyAsync(staged_ids.as<idx_t>(), new_ids, m * 8, cudaMemcpyHostToDevice, stream.get()), "copying ids");
  check(cudaMemcpyAsync(src_dev.as<std::int64_t>(), src.data(), src.size() * 8, cudaMemcpyHostToDevice, stream.get()),
        "copying the merge order");
  kernels::gather_rows(s.rows.as<std::uint32_t>(), n, staged_rows.as<std::uint32_t>(), src_dev.as<std::int64_t>(),
                       src.size(), s.words, rows.as<std::uint32_t>(), stream.get());
  kernels::gather_ids(s.ids.as<idx_t>(), n, staged_ids.as<idx_t>(), src_dev.as<std::int64_t>(), src.size(),
                      ids.as<idx_t>(), stream.get());
  stream.sync("merging codes");
  s.rows = std::move(rows);
  s.ids = std::move(ids);
  s.capacity = merged.size();
  s.dev_ids = std::move(merged);
  s.refresh_sample(stream.get());
}

std::size_t GpuFlatIndex::remove_ids(const idx_t* ids, std::size_t count) {
  std::unique_lock<SharedMutex> lock(s_->mu);
  State& s = *s_;
  std::vector<idx_t> gone(ids, ids + count);
  std::sort(gone.begin(), gone.end());
  gone.erase(std::unique(gone.begin(), gone.end()), gone.end());
  std::vector<std::int64_t> keep;
  keep.reserve(s.n());
  std::vector<idx_t> kept_ids;
  kept_ids.reserve(s.n());
  for (std::size_t i = 0; i < s.n(); ++i) {
    if (!std::binary_search(gone.begin(), gone.end(), s.dev_ids[i])) {
      keep.push_back(static_cast<std::int64_t>(i));
      kept_ids.push_back(s.dev_ids[i]);
    }
  }
  if (keep.size() == s.n()) return s.host->remove_ids(ids, count);  // nothing held: nothing moves
  use_device(device_);
  const std::size_t row_bytes = static_cast<std::size_t>(s.words) * 4;
  Stream stream;
  DeviceBuffer rows(keep.size() * row_bytes, nullptr, "the codes");
  DeviceBuffer dev_ids(keep.size() * 8, nullptr, "the ids");
  DeviceBuffer src(keep.size() * 8, stream.get(), "the kept rows");
  if (!keep.empty()) {
    check(cudaMemcpyAsync(src.as<std::int64_t>(), keep.data(), keep.size() * 8, cudaMemcpyHostToDevice, stream.get()),
          "copying the kept rows");
    kernels::gather_rows(s.rows.as<std::uint32_t>(), s.n(), nullptr, src.as<std::int64_t>(), keep.size(), s.words,
                         rows.as<std::uint32_t>(), stream.get());
    kernels::gather_ids(s.ids.as<idx_t>(), s.n(), nullptr, src.as<std::int64_t>(), keep.size(), dev_ids.as<idx_t>(),
                        stream.get());
  }
  stream.sync("removing codes");
  const std::size_t removed = s.host->remove_ids(ids, count);
  s.rows = std::move(rows);
  s.ids = std::move(dev_ids);
  s.capacity = keep.size();
  s.dev_ids = std::move(kept_ids);
  s.refresh_sample(stream.get());
  return removed;
}

void GpuFlatIndex::reset() {
  std::unique_lock<SharedMutex> lock(s_->mu);
  use_device(device_);
  s_->host->reset();
  s_->rows = DeviceBuffer();
  s_->ids = DeviceBuffer();
  s_->capacity = 0;
  s_->dev_ids.clear();
  s_->sample_n = 0;
}

// ---- reads answered by the host copy --------------------------------------------------------------

void GpuFlatIndex::reconstruct(idx_t id, std::uint8_t* out) const { reconstruct_batch(&id, 1, out); }

void GpuFlatIndex::reconstruct_batch(const idx_t* ids, std::size_t n, std::uint8_t* out) const {
  std::shared_lock<SharedMutex> lock(s_->mu);
  s_->host->reconstruct_batch(ids, n, out);
}

std::vector<idx_t> GpuFlatIndex::ids() const {
  std::shared_lock<SharedMutex> lock(s_->mu);
  return s_->host->ids();
}

void GpuFlatIndex::save(const std::string& path) const {
  std::shared_lock<SharedMutex> lock(s_->mu);
  s_->host->save(path);
}

GpuFlatIndex::MemoryUsage GpuFlatIndex::memory_usage() const {
  std::shared_lock<SharedMutex> lock(s_->mu);
  MemoryUsage m;
  m.device_bytes = s_->rows.bytes() + s_->ids.bytes() + s_->sample.bytes() + s_->sample_src.bytes();
  m.host_bytes = s_->host->ntotal() * (code_size() + sizeof(idx_t)) + s_->dev_ids.capacity() * sizeof(idx_t);
  return m;
}

// ---- search ----------------------------------------------------------------------------------------

namespace {

// The counting selection (any k) for nt query rows already on the device: writes result row
// out_rows[q] (or q, when out_rows is null) of D and I (rows of k). Tiles the queries to fit.
void counting_search(const GpuFlatIndex::State& s, int nbits, const std::uint32_t* q_rows, std::uint64_t nt,
                     std::uint64_t k, const std::int64_t* out_rows, dist_t* D, idx_t* I, cudaStream_t stream) {
  const std::size_t n = s.n();
  const std::uint64_t k_eff = std::min<std::uint64_t>(k, n);
  const int nbins = nbits + 1;
  const std::size_t row_bytes = static_cast<std::size_t>(s.words) * 4;
  const plan::KnnPlan p = plan::plan_knn(n, nt, k, nbits, row_bytes, plan::DeviceShape{s.sms, search_budget()});
  if (p.query_tile == 0)
    throw GpuOutOfMemory("out of GPU memory: a search with k=" + std::to_string(k) + " over " + std::to_string(n) +
                         " codes needs " + mib(p.bytes_per_tile) + " for one query, " + mib(search_budget()) +
                         " available");
  const std::uint64_t tile = p.query_tile;
  DeviceBuffer hist(tile * p.nchunks * static_cast<std::uint64_t>(nbins) * 4, stream, "histograms");
  DeviceBuffer quota(tile * p.nchunks * 4, stream, "quotas");
  DeviceBuffer sel(tile * sizeof(plan::QuerySelection), stream, "thresholds");
  DeviceBuffer keys(tile * k_eff * 8, stream, "keys");
  DeviceBuffer sorted(tile * k_eff * 8, stream, "sorted keys");
  DeviceBuffer offsets((tile + 1) * 8, stream, "sort segments");
  kernels::uniform_offsets(offsets.as<std::int64_t>(), static_cast<std::uint32_t>(tile), k_eff, stream);
  const std::size_t sort_bytes = kernels::segmented_sort_bytes(
      tile * k_eff, static_cast<std::uint32_t>(tile), offsets.as<std::int64_t>(), offsets.as<std::int64_t>() + 1);
  DeviceBuffer sort_tmp(sort_bytes, stream, "the sort workspace");
  for (std::uint64_t q0 = 0; q0 < nt; q0 += tile) {
    const std::uint32_t m = static_cast<std::uint32_t>(std::min<std::uint64_t>(tile, nt - q0));
    const kernels::QueriesView qv{q_rows + q0 * s.words, m, std::min<std::uint32_t>(p.queries_per_block, m)};
    kernels::knn_histogram(s.view(), qv, nbins, p.nchunks, hist.as<std::uint32_t>(), stream);
    kernels::knn_threshold(hist.as<std::uint32_t>(), quota.as<std::uint32_t>(), sel.as<plan::QuerySelection>(), m,
                           p.nchunks, nbins, k_eff, stream);
    kernels::knn_collect(s.view(), qv, nbins, p.nchunks, hist.as<std::uint32_t>(), quota.as<std::uint32_t>(),
                         sel.as<plan::QuerySelection>(), k_eff, keys.as<std::uint64_t>(), stream);
    kernels::segmented_sort(sort_tmp.as<void>(), sort_bytes, keys.as<std::uint64_t>(), sorted.as<std::uint64_t>(),
                            m * k_eff, m, offsets.as<std::int64_t>(), offsets.as<std::int64_t>() + 1, stream);
    if (out_rows)
      kernels::knn_finish(sorted.as<std::uint64_t>(), m, k_eff, k, k_eff, nullptr, out_rows + q0, nullptr, 0,
                          s.ids.as<idx_t>(), D, I, stream);
    else
      kernels::knn_finish(sorted.as<std::uint64_t>(), m, k_eff, k, k_eff, nullptr, nullptr, nullptr, 0,
                          s.ids.as<idx_t>(), D + q0 * k, I + q0 * k, stream);
  }
  check(cudaStreamSynchronize(stream), "search");  // scratch is freed on return
}

}  // namespace

void GpuFlatIndex::set_selection(Selection selection) noexcept { selection_ = selection; }

void GpuFlatIndex::search(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
                          idx_t* out_ids, bool on_device) const {
  if (k == 0) throw InvalidArgument("k must be > 0, got 0");
  std::shared_lock<SharedMutex> lock(s_->mu);
  const State& s = *s_;
  if (nq == 0) return;
  use_device(device_);
  // Device inputs may come from another library's streams: let its queued work finish first.
  if (on_device) check(cudaDeviceSynchronize(), "waiting for the inputs");
  check_query_padding(queries, nq, nbits_, on_device);
  Stream stream;
  const std::size_t n = s.n();
  const std::uint64_t k_eff = std::min<std::uint64_t>(k, n);
  const std::size_t row_bytes = static_cast<std::size_t>(s.words) * 4, cs = code_size();
  const int nbins = nbits_ + 1;
  const plan::DeviceShape shape{s.sms, search_budget()};
  // One pass with candidates for small k (unless told otherwise), else the counting selection.
  plan::CandidatePlan cp;
  if (k_eff > 0 && k_eff <= plan::kCandidateMaxK && selection_ != Selection::Counting)
    cp = plan::plan_candidates(n, nq, k, k_eff, nbits_, row_bytes, shape);
  const bool one_pass = cp.query_tile > 0;
  std::uint64_t tile = cp.query_tile;
  if (!one_pass) {  // tiles of the counting selection (which plans its own scratch within them)
    const plan::KnnPlan kp = plan::plan_knn(std::max<std::size_t>(n, 1), nq, k, nbits_, row_bytes, shape);
    if (kp.query_tile == 0)
      throw GpuOutOfMemory("out of GPU memory: a search with k=" + std::to_string(k) + " over " + std::to_string(n) +
                           " codes needs " + mib(kp.bytes_per_tile) + " for one query, " + mib(shape.memory_budget) +
                           " available");
    tile = kp.query_tile;
  }
  // Results go to the caller's device arrays, or through device buffers of one tile to the host.
  // The one-pass path's arrays share one allocation; the sort's are taken only when needed.
  const bool rank_finish = one_pass && k_eff <= plan::kRankMaxK;
  Scratch scratch;
  const std::size_t o_q = scratch.reserve(tile * row_bytes);
  const std::size_t o_d = scratch.reserve(on_device ? 0 : tile * k * 4);
  const std::size_t o_i = scratch.reserve(on_device ? 0 : tile * k * 8);
  std::size_t o_shist = 0, o_radius = 0, o_counts = 0, o_keys = 0;
  if (one_pass) {
    o_shist = scratch.reserve(tile * cp.sample_chunks * static_cast<std::uint64_t>(nbins) * 4);
    o_radius = scratch.reserve(tile * 4);
    o_counts = scratch.reserve(tile * 8);
    o_keys = scratch.reserve(tile * cp.capacity * 8);
  }
  scratch.allocate(stream.get(), "the search's scratch");
  std::uint32_t* q_rows = scratch.at<std::uint32_t>(o_q);
  std::uint32_t* shist = scratch.at<std::uint32_t>(o_shist);
  std::uint32_t* radius = scratch.at<std::uint32_t>(o_radius);
  unsigned long long* counts = scratch.at<unsigned long long>(o_counts);
  std::uint64_t* ckeys = scratch.at<std::uint64_t>(o_keys);
  DeviceBuffer csorted, bounds, failed_rows, failed_q, sort_tmp;
  std::size_t sort_bytes = 0;
  auto take_sort_buffers = [&] {
    if (csorted.bytes() != 0) return;
    bounds = DeviceBuffer(2 * tile * 8, stream.get(), "candidate segments");
    sort_bytes = kernels::segmented_sort_bytes(tile * cp.capacity, static_cast<std::uint32_t>(tile),
                                               bounds.as<std::int64_t>(), bounds.as<std::int64_t>() + tile);
    sort_tmp = DeviceBuffer(sort_bytes, stream.get(), "the sort workspace");
    csorted = DeviceBuffer(tile * cp.capacity * 8, stream.get(), "sorted candidates");
  };
  if (one_pass && !rank_finish) take_sort_buffers();
  std::vector<unsigned long long> host_counts(one_pass ? tile : 0);
  std::vector<std::int64_t> failed;
  for (std::size_t q0 = 0; q0 < nq; q0 += tile) {
    const std::uint32_t nt = static_cast<std::uint32_t>(std::min<std::uint64_t>(tile, nq - q0));
    dist_t* D = on_device ? distances + q0 * k : scratch.at<dist_t>(o_d);
    idx_t* I = on_device ? out_ids + q0 * k : scratch.at<idx_t>(o_i);
    bool copy_out = true;
    if (k_eff == 0) {  // an empty index: padding only
      kernels::knn_finish(nullptr, nt, 0, k, 0, nullptr, nullptr, nullptr, 0, nullptr, D, I, stream.get());
    } else {
      upload_rows(q_rows, queries + q0 * cs, nt, cs, s.words, stream.get());
      if (!one_pass) {
        counting_search(s, nbits_, q_rows, nt, k, nullptr, D, I, stream.get());
      } else {
        const std::uint64_t cap = cp.capacity;
        const kernels::QueriesView qv{q_rows, nt, std::min<std::uint32_t>(cp.queries_per_block, nt)};
        kernels::knn_histogram(s.sample_view(), qv, nbins, cp.sample_chunks, shist, stream.get());
        kernels::knn_estimate(shist, nt, cp.sample_chunks, nbins, s.sample_view().n, n, k_eff, radius, stream.get());
        check(cudaMemsetAsync(counts, 0, nt * 8, stream.get()), "clearing candidate counts");
        kernels::knn_candidates(s.view(), qv, cp.nchunks, radius, cap, counts, ckeys, stream.get());
        // Segments, sort and results for the queries whose candidates suffice (the others are
        // skipped, and redone below by counting).
        auto sort_and_finish = [&] {
          kernels::candidate_segments(counts, nt, cap, k_eff, bounds.as<std::int64_t>(), stream.get());
          kernels::segmented_sort(sort_tmp.as<void>(), sort_bytes, ckeys, csorted.as<std::uint64_t>(), nt * cap, nt,
                                  bounds.as<std::int64_t>(), bounds.as<std::int64_t>() + nt, stream.get());
          kernels::knn_finish(csorted.as<std::uint64_t>(), nt, k_eff, k, cap, nullptr, nullptr, counts, cap,
                              s.ids.as<idx_t>(), D, I, stream.get());
        };
        copy_out = false;
        // No round trip to the host before the results: a query whose radius held fewer than k
        // codes, or more than the buffer, is skipped on the device and redone below.
        if (rank_finish)
          kernels::knn_rank_finish(ckeys, counts, nt, cap, k_eff, k, s.ids.as<idx_t>(), D, I, stream.get());
        else
          sort_and_finish();
        check(cudaMemcpyAsync(host_counts.data(), counts, nt * 8, cudaMemcpyDeviceToHost, stream.get()),
              "reading candidate counts");
        if (!on_device) {
          check(cudaMemcpyAsync(distances + q0 * k, D, nt * k * 4, cudaMemcpyDeviceToHost, stream.get()),
                "copying results");
          check(cudaMemcpyAsync(out_ids + q0 * k, I, nt * k * 8, cudaMemcpyDeviceToHost, stream.get()),
                "copying results");
        }
        stream.sync("search");
        failed.clear();
        bool unranked = false;  // a query with more candidates than the rank kernel takes
        for (std::uint32_t q = 0; q < nt; ++q) {
          if (!plan::candidates_suffice(host_counts[q], k_eff, cap))
            failed.push_back(q);
          else if (rank_finish && host_counts[q] > plan::kRankMaxCandidates)
            unranked = true;
        }
        if (unranked) {  // sorted instead (the ranked queries' rows are written again, unchanged)
          take_sort_buffers();
          sort_and_finish();
          copy_out = true;
        }
        if (!failed.empty()) {  // those queries again, by counting, into their own rows
          const std::size_t nf = failed.size();
          failed_q = DeviceBuffer(nf * 8, stream.get(), "fallback queries");
          failed_rows = DeviceBuffer(nf * row_bytes, stream.get(), "fallback query rows");
          check(cudaMemcpyAsync(failed_q.as<void>(), failed.data(), nf * 8, cudaMemcpyHostToDevice, stream.get()),
                "copying fallback queries");
          kernels::gather_rows(q_rows, nt, nullptr, failed_q.as<std::int64_t>(), nf, s.words,
                               failed_rows.as<std::uint32_t>(), stream.get());
          counting_search(s, nbits_, failed_rows.as<std::uint32_t>(), nf, k, failed_q.as<std::int64_t>(), D, I,
                          stream.get());
          copy_out = true;
        }
        if (!copy_out) continue;  // the results are already where they go
      }
    }
    if (!on_device) {
      check(cudaMemcpyAsync(distances + q0 * k, D, nt * k * 4, cudaMemcpyDeviceToHost, stream.get()), "copying results");
      check(cudaMemcpyAsync(out_ids + q0 * k, I, nt * k * 8, cudaMemcpyDeviceToHost, stream.get()), "copying results");
    }
    stream.sync("search");  // the next tile reuses the buffers
  }
}

RangeResult GpuFlatIndex::range_search(const std::uint8_t* queries, std::size_t nq, int radius,
                                       bool queries_on_device) const {
  if (radius < 0) throw InvalidArgument("radius must be >= 0, got " + std::to_string(radius));
  std::shared_lock<SharedMutex> lock(s_->mu);
  const State& s = *s_;
  RangeResult res;
  res.lims.assign(nq + 1, 0);
  const std::size_t n = s.n();
  if (nq == 0) return res;
  use_device(device_);
  if (queries_on_device) check(cudaDeviceSynchronize(), "waiting for the inputs");
  check_query_padding(queries, nq, nbits_, queries_on_device);  // refused on an empty index too
  if (n == 0) return res;
  Stream stream;
  const std::size_t row_bytes = static_cast<std::size_t>(s.words) * 4, cs = code_size();
  const std::uint32_t r = static_cast<std::uint32_t>(std::min(radius, nbits_));
  const plan::RangePlan p = plan::plan_range(n, nq, row_bytes, plan::DeviceShape{s.sms, search_budget()});
  if (p.query_tile == 0) throw GpuOutOfMemory("out of GPU memory: a range search needs more than " + mib(search_budget()));
  std::uint64_t tile = p.query_tile;
  const std::uint64_t nchunks = p.nchunks;
  DeviceBuffer q_rows(tile * row_bytes, stream.get(), "the queries");
  DeviceBuffer counts(tile * nchunks * 8, stream.get(), "hit counts");
  DeviceBuffer offs(tile * nchunks * 8, stream.get(), "hit offsets");
  DeviceBuffer scan_tmp(kernels::exclusive_sum_bytes(tile * nchunks), stream.get(), "the prefix sum workspace");
  DeviceBuffer lims_dev((tile + 1) * 8, stream.get(), "query limits");
  std::size_t q0 = 0;
  while (q0 < nq) {
    const std::uint32_t nt = static_cast<std::uint32_t>(std::min<std::uint64_t>(tile, nq - q0));
    const std::uint32_t qpb = std::min<std::uint32_t>(p.queries_per_block, nt);
    upload_rows(q_rows.as<std::uint32_t>(), queries + q0 * cs, nt, cs, s.words, stream.get());
    const kernels::QueriesView qv{q_rows.as<std::uint32_t>(), nt, qpb};
    const std::uint32_t nc = static_cast<std::uint32_t>(nchunks);
    kernels::range_count(s.view(), qv, r, nc, counts.as<unsigned long long>(), stream.get());
    kernels::exclusive_sum(scan_tmp.as<void>(), scan_tmp.bytes(), counts.as<unsigned long long>(),
                           offs.as<unsigned long long>(), nt * nchunks, stream.get());
    unsigned long long last[2] = {0, 0};
    check(cudaMemcpyAsync(&last[0], offs.as<unsigned long long>() + nt * nchunks - 1, 8, cudaMemcpyDeviceToHost,
                          stream.get()), "reading hit counts");
    check(cudaMemcpyAsync(&last[1], counts.as<unsigned long long>() + nt * nchunks - 1, 8, cudaMemcpyDeviceToHost,
                          stream.get()), "reading hit counts");
    stream.sync("range search count");
    const std::uint64_t total = last[0] + last[1];
    // the hits of this pass: keys twice, distances, ids (and about as much again for the sort)
    const std::uint64_t hit_bytes = total * (8 + 8 + 4 + 8 + 8);
    if (total > plan::kMaxSortItems || hit_bytes > search_budget()) {
      if (nt == 1)
        throw GpuOutOfMemory("range search: one query has " + std::to_string(total) + " hits, more than one GPU " +
                             "pass holds (" + mib(hit_bytes) + " needed, " + mib(search_budget()) + " available)");
      tile = std::max<std::uint64_t>(1, nt / 2);  // fewer queries per pass; recount
      continue;
    }
    DeviceBuffer keys(total * 8, stream.get(), "range hits");
    DeviceBuffer sorted(total * 8, stream.get(), "sorted range hits");
    DeviceBuffer d_out(total * 4, stream.get(), "range distances");
    DeviceBuffer i_out(total * 8, stream.get(), "range ids");
    // the offsets become the fill cursors; the query limits are taken first
    kernels::range_limits(offs.as<unsigned long long>(), nt, nc, total, lims_dev.as<std::int64_t>(), stream.get());
    kernels::range_fill(s.view(), qv, r, nc, offs.as<unsigned long long>(), keys.as<std::uint64_t>(), stream.get());
    const std::size_t sort_bytes = kernels::segmented_sort_bytes(total, nt, lims_dev.as<std::int64_t>(),
                                                                 lims_dev.as<std::int64_t>() + 1);
    DeviceBuffer sort_tmp(sort_bytes, stream.get(), "the sort workspace");
    kernels::segmented_sort(sort_tmp.as<void>(), sort_bytes, keys.as<std::uint64_t>(), sorted.as<std::uint64_t>(), total,
                            nt, lims_dev.as<std::int64_t>(), lims_dev.as<std::int64_t>() + 1, stream.get());
    kernels::keys_to_results(sorted.as<std::uint64_t>(), total, s.ids.as<idx_t>(), d_out.as<dist_t>(),
                             i_out.as<idx_t>(), stream.get());
    const std::size_t before = res.distances.size();
    res.distances.resize(before + total);
    res.ids.resize(before + total);
    std::vector<std::int64_t> lims(nt + 1);
    if (total) {
      check(cudaMemcpyAsync(res.distances.data() + before, d_out.as<dist_t>(), total * 4, cudaMemcpyDeviceToHost,
                            stream.get()), "copying range results");
      check(cudaMemcpyAsync(res.ids.data() + before, i_out.as<idx_t>(), total * 8, cudaMemcpyDeviceToHost,
                            stream.get()), "copying range results");
    }
    check(cudaMemcpyAsync(lims.data(), lims_dev.as<std::int64_t>(), (nt + 1) * 8, cudaMemcpyDeviceToHost, stream.get()),
          "copying range limits");
    stream.sync("range search");
    for (std::uint32_t i = 0; i <= nt; ++i) res.lims[q0 + i] = static_cast<std::int64_t>(before) + lims[i];
    q0 += nt;
  }
  return res;
}

}  // namespace deephash::cuda
