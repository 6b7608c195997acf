// Save / load round trips (copy and mmap) and rejection of damaged or foreign files.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "deephash/flat_index.hpp"
#include "index_io.hpp"
#include "harness.hpp"
#include "oracle.hpp"

using namespace deephash;

static std::string tmp_path(const char* name) {
  const char* dir = std::getenv("TMPDIR");
  return std::string(dir ? dir : "/tmp") + "/deephash_cpp_test_" + name;
}

static std::vector<char> read_all(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), {});
}
static void write_all(const std::string& p, const std::vector<char>& bytes) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(round_trip_copy_and_mmap) {
  const std::string p = tmp_path("roundtrip.dhi");
  auto codes = oracle::random_codes(1000, 3, 4);
  FlatIndex index(24);
  index.add(codes.data(), 1000);
  std::vector<idx_t> rm = {5, 6, 999};
  index.remove_ids(rm.data(), rm.size());
  index.save(p);
  for (bool mmap : {false, true}) {
    auto loaded = load_index(p, mmap);
    CHECK(loaded->type() == IndexType::Flat);
    CHECK_EQ(loaded->ntotal(), 997u);
    CHECK_EQ(loaded->next_id(), 1000);
    auto* flat = dynamic_cast<FlatIndex*>(loaded.get());
    CHECK(flat != nullptr && flat->is_mmapped() == mmap);
    std::vector<dist_t> d1(50), d2(50);
    std::vector<idx_t> i1(50), i2(50);
    index.search(codes.data(), 5, 10, d1.data(), i1.data());
    loaded->search(codes.data(), 5, 10, d2.data(), i2.data());
    CHECK(d1 == d2 && i1 == i2);
    loaded->add(codes.data(), 1);  // a write on a mapped index copies it first
    CHECK_EQ(loaded->ntotal(), 998u);
  }
  std::remove(p.c_str());
}

TEST(damaged_files_are_rejected) {
  const std::string p = tmp_path("damaged.dhi"), q = tmp_path("damaged_copy.dhi");
  auto codes = oracle::random_codes(100, 8, 4);
  FlatIndex index(64);
  index.add(codes.data(), 100);
  index.save(p);
  const std::vector<char> good = read_all(p);
  CHECK(load_index(p)->ntotal() == 100u);
  // truncated at several places
  for (std::size_t cut : {std::size_t(0), std::size_t(5), std::size_t(40), good.size() / 2, good.size() - 1}) {
    write_all(q, std::vector<char>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut)));
    CHECK_THROWS(load_index(q), FileError);
  }
  // one flipped bit anywhere
  for (std::size_t at : {std::size_t(9), std::size_t(30), std::size_t(100), good.size() - 3}) {
    auto bad = good;
    bad[at] ^= 0x10;
    write_all(q, bad);
    CHECK_THROWS(load_index(q), FileError);
  }
  // foreign file
  write_all(q, std::vector<char>(200, 'x'));
  CHECK_THROWS(load_index(q), FileError);
  CHECK_THROWS(load_index(tmp_path("does_not_exist.dhi")), FileError);
  std::remove(p.c_str());
  std::remove(q.c_str());
}

TEST(odd_code_lengths_round_trip_and_a_set_padding_bit_is_refused) {
  const std::string p = tmp_path("odd.dhi"), q = tmp_path("odd_bad.dhi");
  for (int nbits : {1, 12, 100}) {
    const std::size_t cs = code_size_for(nbits);
    auto codes = oracle::random_codes_nbits(40, nbits, 6);
    FlatIndex index(nbits);
    index.add(codes.data(), 40);
    index.save(p);
    for (bool mmap : {false, true}) {
      auto loaded = load_index(p, mmap);
      CHECK_EQ(loaded->nbits(), nbits);
      std::vector<std::uint8_t> back(40 * cs);
      std::vector<idx_t> ids = loaded->ids();
      loaded->reconstruct_batch(ids.data(), ids.size(), back.data());
      CHECK(back == codes);
    }
    auto bad = read_all(p);
    bad[io::kPayloadAlign + 7 * cs + cs - 1] |= static_cast<char>(0x80);  // row 7's last padding bit
    const std::uint64_t sum = io::checksum(bad.data(), bad.size() - 8);
    std::memcpy(bad.data() + bad.size() - 8, &sum, 8);
    write_all(q, bad);
    try {
      load_index(q);
      CHECK(false);
    } catch (const FileError& e) {
      CHECK(std::string(e.what()).find("stored code row 7 sets padding bit " + std::to_string(8 * cs - 1)) !=
            std::string::npos);
    }
    CHECK_THROWS(load_index(q, true), FileError);
  }
  std::remove(p.c_str());
  std::remove(q.c_str());
}

HARNESS_MAIN()
