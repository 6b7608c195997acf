// The versioned binary file format shared by every index type (specified in docs/format.md):
// a fixed 64-byte header, type-specific parameters, a 64-byte aligned payload, and a trailing
// 64-bit checksum over everything before it. Files are written atomically (temporary file in the
// same folder, fsync, rename, fsync of the folder) and read with full validation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "deephash/common.hpp"
#include "deephash/index.hpp"

namespace deephash::io {

inline constexpr char kMagic[8] = {'D', 'H', 'A', 'S', 'H', 'I', 'D', 'X'};
inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::size_t kHeaderSize = 64;
inline constexpr std::size_t kPayloadAlign = 64;

// Flags in the header.
inline constexpr std::uint32_t kFlagIdsIncreasing = 1u << 0;
inline constexpr std::uint32_t kKnownFlags = kFlagIdsIncreasing;  // every other bit must be 0

// Paths are C strings for the OS: one with a NUL byte would be cut silently, so it is refused
// (InvalidArgument, as Python's open() raises ValueError), as is an empty path.
void check_path(const std::string& path);

struct Header {
  std::uint32_t format_version = kFormatVersion;
  IndexType index_type = IndexType::Flat;
  std::uint32_t nbits = 0;
  std::uint32_t flags = 0;
  std::uint64_t ntotal = 0;
  std::uint64_t next_id = 0;
  std::uint64_t params_size = 0;
  std::uint64_t payload_offset = 0;
  std::uint64_t payload_size = 0;
};

// Streaming 64-bit checksum (four independent multiply-rotate lanes over 8-byte words, then a
// final mix with the length). Defined in docs/format.md so other readers can check files.
class Checksum {
 public:
  Checksum() noexcept;
  void update(const void* data, std::size_t n) noexcept;
  std::uint64_t digest() const noexcept;

 private:
  void block(const std::uint8_t* p) noexcept;
  std::uint64_t lanes_[4];
  std::uint8_t pending_[32];
  std::size_t npending_ = 0;
  std::uint64_t total_ = 0;
};

std::uint64_t checksum(const void* data, std::size_t n) noexcept;

// Writes a file atomically: bytes go to a temporary file beside `path`; commit() fsyncs and renames
// it over `path`. Destroying an uncommitted writer removes the temporary file.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, std::size_t n);  // also feeds the checksum
  void pad_to(std::uint64_t offset);            // zero bytes up to this file offset
  std::uint64_t offset() const noexcept { return offset_; }
  // Appends the checksum of everything written, then fsync + rename.
  void commit();

 private:
  std::string path_, tmp_path_;
  int fd_ = -1;
  std::uint64_t offset_ = 0;
  Checksum sum_;
  std::vector<std::uint8_t> buffer_;
  void flush();
};

// A read-only memory map of a whole file. The file stays open so that check_unchanged() can ask
// the OS whether another process truncated it (reading the lost pages would raise SIGBUS) or
// wrote into it in place (the mapping would show the new bytes) since it was mapped.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  // A copy of `size` bytes held in memory and named `name` in messages (no file behind it).
  MappedFile(const void* data, std::size_t size, std::string name);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const std::uint8_t* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  // Throws FileError when the file's size or modification time differ from when it was mapped.
  void check_unchanged() const;

 private:
  std::string path_;
  int fd_ = -1;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  std::int64_t mtime_ns_ = 0;
  std::vector<std::uint8_t> owned_;  // the bytes of an in-memory file
};

// Encodes a header into its 64 bytes.
void encode_header(const Header& h, std::uint8_t out[kHeaderSize]);

// The one writer of index files: header, `params` (h.params_size bytes), zero padding up to
// h.payload_offset, then whatever `write_payload` writes, then the checksum; atomic (see
// AtomicFileWriter). Every index type's save() goes through it.
template <class WritePayload>
void write_index_file(const std::string& path, const Header& h, const void* params, WritePayload&& write_payload) {
  std::uint8_t header[kHeaderSize];
  encode_header(h, header);
  AtomicFileWriter out(path);
  out.write(header, sizeof(header));
  if (h.params_size) out.write(params, static_cast<std::size_t>(h.params_size));
  out.pad_to(h.payload_offset);
  write_payload(out);
  out.commit();
}

// Validates the whole file (size, magic, version, type, nbits, layout, checksum) and returns its
// header. `path` is only used in messages.
Header validate_file(const MappedFile& file, const std::string& path);

// Payload layout of a code array followed by ids (flat storage, also used by MIH).
std::uint64_t codes_bytes_padded(std::uint64_t ntotal, std::size_t code_size);

}  // namespace deephash::io
