// load_index: reads the header of any index file and hands the payload to that index type.
#include <memory>
#include <string>

#include "deephash/flat_index.hpp"
#include "index_io.hpp"
#include "deephash/mih_index.hpp"

namespace deephash {

namespace {

std::unique_ptr<BinaryIndex> load(const std::shared_ptr<const io::MappedFile>& file, const std::string& path,
                                  bool mmap) {
  const io::Header header = io::validate_file(*file, path);
  switch (header.index_type) {
    case IndexType::Flat:
      return FlatIndex::from_file(header, file, path, mmap);
    case IndexType::MIH:
      return MIHIndex::from_file(header, file, path, mmap);
    default:
      throw FileError("'" + path + "' holds an index type this build cannot read (" +
                      std::to_string(static_cast<std::uint32_t>(header.index_type)) + ")");
  }
}

}  // namespace

std::unique_ptr<BinaryIndex> load_index(const std::string& path, bool mmap) {
  return load(std::make_shared<const io::MappedFile>(path), path, mmap);
}

std::unique_ptr<BinaryIndex> load_index_from_memory(const void* data, std::size_t size, const std::string& name) {
  return load(std::make_shared<const io::MappedFile>(data, size, name), name, false);
}

}  // namespace deephash
