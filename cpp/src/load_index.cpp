// load_index: reads the header of any index file and hands the payload to the loader registered
// for its index type (a table, not a switch: a new index type adds one row).
#include <memory>
#include <string>

#include "deephash/flat_index.hpp"
#include "deephash/mih_index.hpp"
#include "index_io.hpp"

namespace deephash {

namespace {

using Loader = std::unique_ptr<BinaryIndex> (*)(const io::Header&, const std::shared_ptr<const io::MappedFile>&,
                                                const std::string&, bool);

struct IndexKind {
  IndexType type;
  const char* name;
  Loader load;
};

template <class Index>
std::unique_ptr<BinaryIndex> load_as(const io::Header& h, const std::shared_ptr<const io::MappedFile>& file,
                                     const std::string& path, bool mmap) {
  return Index::from_file(h, file, path, mmap);
}

// Every index type a file can hold. A GpuFlatIndex saves as Flat (its file loads anywhere).
constexpr IndexKind kIndexKinds[] = {
    {IndexType::Flat, "flat", &load_as<FlatIndex>},
    {IndexType::MIH, "mih", &load_as<MIHIndex>},
};

std::unique_ptr<BinaryIndex> load(const std::shared_ptr<const io::MappedFile>& file, const std::string& path,
                                  bool mmap) {
  const io::Header header = io::validate_file(*file, path);
  for (const IndexKind& kind : kIndexKinds)
    if (kind.type == header.index_type) return kind.load(header, file, path, mmap);
  throw FileError("'" + path + "' holds an index type this build cannot read (" +
                  std::to_string(static_cast<std::uint32_t>(header.index_type)) + ")");
}

}  // namespace

std::unique_ptr<BinaryIndex> load_index(const std::string& path, bool mmap) {
  return load(std::make_shared<const io::MappedFile>(path), path, mmap);
}

std::unique_ptr<BinaryIndex> load_index_from_memory(const void* data, std::size_t size, const std::string& name) {
  return load(std::make_shared<const io::MappedFile>(data, size, name), name, false);
}

}  // namespace deephash
