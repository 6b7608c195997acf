#include "index_io.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

namespace deephash::io {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the file format is little-endian");

namespace {

constexpr std::uint64_t kP1 = 0x9E3779B185EBCA87ULL;
constexpr std::uint64_t kP2 = 0xC2B2AE3D27D4EB4FULL;
constexpr std::uint64_t kP3 = 0x165667B19E3779F9ULL;

inline std::uint64_t rotl(std::uint64_t x, int r) noexcept { return (x << r) | (x >> (64 - r)); }
inline std::uint64_t read64(const std::uint8_t* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline std::uint64_t mix(std::uint64_t lane, std::uint64_t word) noexcept {
  return rotl(lane + word * kP2, 31) * kP1;
}

std::string errno_text() { return std::strerror(errno); }

template <class T>
void put(std::uint8_t* out, std::size_t offset, T v) {
  std::memcpy(out + offset, &v, sizeof(T));
}
template <class T>
T get(const std::uint8_t* in, std::size_t offset) {
  T v;
  std::memcpy(&v, in + offset, sizeof(T));
  return v;
}

}  // namespace

Checksum::Checksum() noexcept : lanes_{kP1 + kP2, kP2, 0, 0 - kP1} {}

void Checksum::block(const std::uint8_t* p) noexcept {
  for (int i = 0; i < 4; ++i) lanes_[i] = mix(lanes_[i], read64(p + 8 * i));
}

void Checksum::update(const void* data, std::size_t n) noexcept {
  if (n == 0) return;  // data may be null (an empty vector's buffer)
  const auto* p = static_cast<const std::uint8_t*>(data);
  total_ += n;
  if (npending_) {
    const std::size_t take = std::min(n, 32 - npending_);
    std::memcpy(pending_ + npending_, p, take);
    npending_ += take;
    p += take;
    n -= take;
    if (npending_ < 32) return;
    block(pending_);
    npending_ = 0;
  }
  for (; n >= 32; p += 32, n -= 32) block(p);
  std::memcpy(pending_, p, n);
  npending_ = n;
}

std::uint64_t Checksum::digest() const noexcept {
  std::uint64_t h = rotl(lanes_[0], 1) + rotl(lanes_[1], 7) + rotl(lanes_[2], 12) + rotl(lanes_[3], 18);
  h ^= total_ * kP3;
  std::uint8_t tail[32] = {0};
  std::memcpy(tail, pending_, npending_);
  for (std::size_t i = 0; i < 4; ++i) h = mix(h, read64(tail + 8 * i));
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

std::uint64_t checksum(const void* data, std::size_t n) noexcept {
  Checksum c;
  c.update(data, n);
  return c.digest();
}

// ---- atomic writer ------------------------------------------------------------------------------

void check_path(const std::string& path) {
  if (path.find('\0') != std::string::npos)
    throw InvalidArgument("path contains a NUL byte: '" + path.substr(0, path.find('\0')) + "\\0...'");
  if (path.empty()) throw InvalidArgument("path is empty");
}

namespace {

// The file that save(path) replaces: a symlink is followed to its target (the link stays a link
// and the target is replaced atomically); a dangling link, a folder, a device node or a FIFO is
// refused rather than replaced by a regular file.
std::string save_target(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return path;  // a new file (or a missing folder: open reports it)
  std::string target = path;
  if (S_ISLNK(st.st_mode)) {
    char* resolved = ::realpath(path.c_str(), nullptr);
    if (!resolved)
      throw FileError("cannot save to '" + path + "': it is a symlink whose target cannot be resolved (" +
                      errno_text() + ")");
    target = resolved;
    std::free(resolved);
    if (::stat(target.c_str(), &st) != 0) return target;
  }
  if (!S_ISREG(st.st_mode)) throw FileError("cannot save to '" + path + "': it exists and is not a regular file");
  return target;
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path) {
  check_path(path);
  path_ = save_target(path);
  static std::atomic<unsigned> counter{0};
  tmp_path_ = path_ + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw FileError("cannot create '" + tmp_path_ + "': " + errno_text());
  buffer_.reserve(1 << 20);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink(tmp_path_.c_str());
  }
}

void AtomicFileWriter::flush() {
  std::size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t w = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw FileError("cannot write '" + tmp_path_ + "': " + errno_text());
    }
    done += static_cast<std::size_t>(w);
  }
  buffer_.clear();
}

void AtomicFileWriter::write(const void* data, std::size_t n) {
  if (n == 0) return;
  sum_.update(data, n);
  offset_ += n;
  const auto* p = static_cast<const std::uint8_t*>(data);
  if (buffer_.size() + n > buffer_.capacity()) flush();
  if (n >= buffer_.capacity()) {  // large blocks go straight to the file
    buffer_.assign(p, p + n);
    flush();
    buffer_.reserve(1 << 20);
    return;
  }
  buffer_.insert(buffer_.end(), p, p + n);
}

void AtomicFileWriter::pad_to(std::uint64_t offset) {
  static const std::uint8_t zeros[64] = {0};
  while (offset_ < offset) write(zeros, static_cast<std::size_t>(std::min<std::uint64_t>(64, offset - offset_)));
}

void AtomicFileWriter::commit() {
  const std::uint64_t digest = sum_.digest();
  buffer_.insert(buffer_.end(), reinterpret_cast<const std::uint8_t*>(&digest),
                 reinterpret_cast<const std::uint8_t*>(&digest) + 8);
  flush();
  if (::fsync(fd_) != 0) throw FileError("cannot fsync '" + tmp_path_ + "': " + errno_text());
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(tmp_path_.c_str());
    throw FileError("cannot close '" + tmp_path_ + "': " + errno_text());
  }
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    const std::string err = errno_text();
    ::unlink(tmp_path_.c_str());
    throw FileError("cannot rename '" + tmp_path_ + "' to '" + path_ + "': " + err);
  }
  const std::size_t slash = path_.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash));
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // make the rename durable; best effort where directories cannot be opened
    ::fsync(dfd);
    ::close(dfd);
  }
}

// ---- mapping --------------------------------------------------------------------------------------

MappedFile::MappedFile(const std::string& path) : path_(path) {
  check_path(path);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw FileError("cannot open '" + path + "': " + errno_text());
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    const std::string err = errno_text();
    ::close(fd_);
    throw FileError("cannot stat '" + path + "': " + err);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw FileError("'" + path + "' is not a regular file");
  }
  size_ = static_cast<std::size_t>(st.st_size);
  mtime_ns_ = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
    if (p == MAP_FAILED) {
      const std::string err = errno_text();
      ::close(fd_);
      throw FileError("cannot map '" + path + "': " + err);
    }
    data_ = static_cast<const std::uint8_t*>(p);
  }
}

MappedFile::MappedFile(const void* data, std::size_t size, std::string name)
    : path_(std::move(name)), size_(size), owned_(static_cast<const std::uint8_t*>(data),
                                                  static_cast<const std::uint8_t*>(data) + size) {
  data_ = owned_.data();
}

MappedFile::~MappedFile() {
  if (data_ && owned_.empty()) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  if (fd_ >= 0) ::close(fd_);
}

void MappedFile::check_unchanged() const {
  if (fd_ < 0) return;  // in memory: nothing can change it
  struct stat st;
  if (::fstat(fd_, &st) != 0) throw FileError("cannot stat '" + path_ + "': " + errno_text());
  if (static_cast<std::size_t>(st.st_size) < size_)
    throw FileError("'" + path_ + "' was truncated after it was memory-mapped (" + std::to_string(st.st_size) +
                    " bytes, " + std::to_string(size_) + " when loaded); load it again");
  const std::int64_t mtime = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (static_cast<std::size_t>(st.st_size) != size_ || mtime != mtime_ns_)
    throw FileError("'" + path_ + "' was modified in place after it was memory-mapped; load it again "
                    "(save() replaces files by rename and never does this)");
}

// ---- header ---------------------------------------------------------------------------------------

void encode_header(const Header& h, std::uint8_t out[kHeaderSize]) {
  std::memset(out, 0, kHeaderSize);
  std::memcpy(out, kMagic, 8);
  put<std::uint32_t>(out, 8, h.format_version);
  put<std::uint32_t>(out, 12, static_cast<std::uint32_t>(h.index_type));
  put<std::uint32_t>(out, 16, h.nbits);
  put<std::uint32_t>(out, 20, h.flags);
  put<std::uint64_t>(out, 24, h.ntotal);
  put<std::uint64_t>(out, 32, h.next_id);
  put<std::uint64_t>(out, 40, h.params_size);
  put<std::uint64_t>(out, 48, h.payload_offset);
  put<std::uint64_t>(out, 56, h.payload_size);
}

std::uint64_t codes_bytes_padded(std::uint64_t ntotal, std::size_t code_size) {
  const std::uint64_t bytes = ntotal * code_size;
  return (bytes + 7) / 8 * 8;
}

Header validate_file(const MappedFile& file, const std::string& path) {
  const std::uint8_t* p = file.data();
  const std::size_t size = file.size();
  const std::string where = "'" + path + "'";
  if (size < 8 || std::memcmp(p, kMagic, 8) != 0) {
    if (size < 8 && size > 0 && std::memcmp(p, kMagic, size) == 0)
      throw FileError(where + " is truncated (" + std::to_string(size) + " bytes)");
    throw FileError(where + " is not a deephash index file (wrong magic bytes)");
  }
  if (size < kHeaderSize + 8) throw FileError(where + " is truncated (" + std::to_string(size) + " bytes)");
  Header h;
  h.format_version = get<std::uint32_t>(p, 8);
  h.index_type = static_cast<IndexType>(get<std::uint32_t>(p, 12));
  h.nbits = get<std::uint32_t>(p, 16);
  h.flags = get<std::uint32_t>(p, 20);
  h.ntotal = get<std::uint64_t>(p, 24);
  h.next_id = get<std::uint64_t>(p, 32);
  h.params_size = get<std::uint64_t>(p, 40);
  h.payload_offset = get<std::uint64_t>(p, 48);
  h.payload_size = get<std::uint64_t>(p, 56);
  if (h.format_version == 0 || h.format_version > kFormatVersion) {
    throw FileError(where + " has format version " + std::to_string(h.format_version) +
                    "; this build reads versions 1.." + std::to_string(kFormatVersion) +
                    (h.format_version > kFormatVersion ? " (written by a newer deephash_engine)" : ""));
  }
  const std::uint64_t limit = size - 8;
  if (h.payload_offset <= limit && h.payload_size <= UINT64_MAX - h.payload_offset - 8) {
    const std::uint64_t expected = h.payload_offset + h.payload_size + 8;
    if (expected > size)
      throw FileError(where + " is truncated (" + std::to_string(size) + " bytes, the header announces " +
                      std::to_string(expected) + ")");
  }
  const std::uint64_t stored = get<std::uint64_t>(p, size - 8);
  if (checksum(p, size - 8) != stored) throw FileError(where + " is corrupted (checksum mismatch)");
  if (h.index_type != IndexType::Flat && h.index_type != IndexType::MIH)
    throw FileError(where + " holds an unknown index type " + std::to_string(static_cast<std::uint32_t>(h.index_type)));
  if (h.nbits == 0 || h.nbits > kMaxNbits)
    throw FileError(where + " has an invalid nbits " + std::to_string(h.nbits));
  if ((h.flags & ~kKnownFlags) != 0)
    throw FileError(where + " sets unknown flag bits (flags " + std::to_string(h.flags) + ")");
  if (h.params_size > limit - kHeaderSize || h.payload_offset % kPayloadAlign != 0 ||
      h.payload_offset < kHeaderSize + h.params_size || h.payload_offset > limit ||
      h.payload_size != limit - h.payload_offset) {
    throw FileError(where + " has an inconsistent layout");
  }
  if (h.next_id > static_cast<std::uint64_t>(INT64_MAX))
    throw FileError(where + " has inconsistent counts (next id above the int64 range)");
  // The payload is ntotal codes padded to 8 bytes, then ntotal int64 ids: nothing more, nothing less.
  const std::size_t cs = code_size_for(h.nbits);
  if (h.ntotal > h.payload_size / (cs + sizeof(std::int64_t)) ||
      codes_bytes_padded(h.ntotal, cs) + h.ntotal * sizeof(std::int64_t) != h.payload_size)
    throw FileError(where + " has inconsistent counts (a payload of " + std::to_string(h.payload_size) +
                    " bytes does not hold exactly " + std::to_string(h.ntotal) + " codes of " + std::to_string(cs) +
                    " bytes and their ids)");
  // Padding bytes are zero: after the parameters, and after the codes.
  const auto nonzero = [p](std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t i = from; i < to; ++i)
      if (p[i] != 0) return true;
    return false;
  };
  const std::uint64_t codes_end = h.payload_offset + h.ntotal * cs;
  if (nonzero(kHeaderSize + h.params_size, h.payload_offset) ||
      nonzero(codes_end, h.payload_offset + codes_bytes_padded(h.ntotal, cs)))
    throw FileError(where + " has non-zero padding bytes");
  return h;
}

}  // namespace deephash::io
