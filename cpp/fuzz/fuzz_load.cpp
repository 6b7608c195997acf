// Fuzzes the index loader with whole files held in memory. Whatever loads must then behave:
// k-NN results are sorted by (distance, id) and their distances are the true distances to the
// codes the index reconstructs; range search returns exactly the prefix of a full ranking within
// the radius; add() and save() work, and the saved file loads back to the same index.
// Anything the loader throws other than FileError, and any sanitizer report, is a bug.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <cstdint>
#include <memory>
#include <vector>

#include "deephash/codes.hpp"
#include "deephash/index.hpp"
#include "index_io.hpp"
#include "deephash/threads.hpp"
#include "fuzz_common.hpp"

using namespace deephash;

namespace {

void check_queries(const BinaryIndex& index, const std::vector<std::uint8_t>& queries, std::size_t nq) {
  const std::size_t cs = index.code_size(), n = index.ntotal();
  const std::size_t k = n + 1;  // the full ranking plus one padded slot
  std::vector<dist_t> D(nq * k);
  std::vector<idx_t> I(nq * k);
  index.search(queries.data(), nq, k, D.data(), I.data());
  std::vector<std::uint8_t> code(cs);
  const int radius = index.nbits() / 4;
  const RangeResult range = index.range_search(queries.data(), nq, radius);
  FUZZ_CHECK(range.lims.size() == nq + 1 && range.lims[0] == 0);
  for (std::size_t q = 0; q < nq; ++q) {
    const dist_t* d = D.data() + q * k;
    const idx_t* id = I.data() + q * k;
    std::size_t within = 0;
    for (std::size_t j = 0; j < n; ++j) {
      FUZZ_CHECK(id[j] >= 0);
      if (j > 0) FUZZ_CHECK(d[j - 1] < d[j] || (d[j - 1] == d[j] && id[j - 1] < id[j]));
      index.reconstruct(id[j], code.data());
      FUZZ_CHECK(fuzz::hamming(code.data(), queries.data() + q * cs, cs) == d[j]);
      if (d[j] <= radius) ++within;
    }
    FUZZ_CHECK(d[n] == kMissingDistance && id[n] == kMissingId);
    const std::size_t b = static_cast<std::size_t>(range.lims[q]), e = static_cast<std::size_t>(range.lims[q + 1]);
    FUZZ_CHECK(e - b == within);
    for (std::size_t j = 0; j < within; ++j) FUZZ_CHECK(range.distances[b + j] == d[j] && range.ids[b + j] == id[j]);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Random bytes almost never carry a valid checksum, which would stop nearly every input at the
  // first gate: the harness seals each input with its checksum so the fuzzer explores the field
  // checks behind it. (Damaged checksums are covered by the unit tests.)
  std::vector<std::uint8_t> file(data, data + size);
  if (size >= 8) {
    const std::uint64_t sum = io::checksum(file.data(), size - 8);
    std::memcpy(file.data() + size - 8, &sum, 8);
  }
  std::unique_ptr<BinaryIndex> index;
  try {
    index = load_index_from_memory(file.data(), size, "fuzz input");
  } catch (const FileError&) {
    return 0;  // refused cleanly
  }
  const std::size_t cs = index->code_size(), nq = 2;
  std::vector<std::uint8_t> queries(nq * cs);
  for (std::size_t i = 0; i < queries.size(); ++i) queries[i] = file[(i * 7919) % size] ^ static_cast<std::uint8_t>(i);
  // The queries' padding bits (nbits % 8 != 0): set, both searches must refuse them; then cleared.
  const std::uint8_t pad = padding_mask(static_cast<std::size_t>(index->nbits()));
  if (pad) {
    queries[cs - 1] |= pad;
    bool refused = false;
    try {
      check_queries(*index, queries, nq);
    } catch (const InvalidArgument&) {
      refused = true;
    }
    FUZZ_CHECK(refused);
    for (std::size_t q = 0; q < nq; ++q) queries[q * cs + cs - 1] &= static_cast<std::uint8_t>(~pad);
  }
  check_queries(*index, queries, nq);

  const std::size_t before = index->ntotal();
  try {
    index->add(queries.data(), 1);
    FUZZ_CHECK(index->ntotal() == before + 1);
  } catch (const InvalidArgument&) {
    FUZZ_CHECK(index->ntotal() == before);  // ids exhausted (next id at INT64_MAX): refused, unchanged
  }
  // A save and reload per input would dominate the run time (file creation, fsync, rename): one
  // input in four, chosen by its length so that a crash file reproduces, takes that path.
  if (size % 4 != 0) return 0;
  const std::string& path = fuzz::scratch_path("load");
  index->save(path);
  auto again = load_index(path);
  ::unlink(path.c_str());
  FUZZ_CHECK(again->type() == index->type() && again->ntotal() == index->ntotal() &&
             again->next_id() == index->next_id());
  const std::size_t k = std::max<std::size_t>(1, std::min<std::size_t>(index->ntotal(), 8));
  std::vector<dist_t> D1(nq * k), D2(nq * k);
  std::vector<idx_t> I1(nq * k), I2(nq * k);
  index->search(queries.data(), nq, k, D1.data(), I1.data());
  again->search(queries.data(), nq, k, D2.data(), I2.data());
  FUZZ_CHECK(D1 == D2 && I1 == I2);
  return 0;
}
