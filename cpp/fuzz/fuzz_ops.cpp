// Fuzzes sequences of index operations decoded from the input, run on a FlatIndex (the oracle)
// and on a MIHIndex side by side. Both must accept or refuse each call alike (a refused call
// changes neither), hold the same items and ids, and answer every k-NN and range query with
// identical arrays, ties included. Codes are drawn near a few centres so that MIH really probes
// its tables instead of falling back to a scan. A save and reload replaces the MIH index midway.
#include <fuzzer/FuzzedDataProvider.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "deephash/codes.hpp"
#include "deephash/flat_index.hpp"
#include "deephash/mih_index.hpp"
#include "deephash/threads.hpp"
#include "fuzz_common.hpp"

using namespace deephash;

namespace {

struct Run {
  FuzzedDataProvider& in;
  int nbits;
  std::size_t cs;
  std::vector<std::uint8_t> centres;  // 4 codes

  std::vector<std::uint8_t> codes(std::size_t n) {
    std::vector<std::uint8_t> out(n * cs);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t c = in.ConsumeIntegralInRange<std::size_t>(0, 3);
      std::copy_n(centres.data() + c * cs, cs, out.data() + i * cs);
      const int flips = in.ConsumeIntegralInRange<int>(0, std::min(nbits, 12));
      for (int f = 0; f < flips; ++f) {
        // now and then a padding bit (past nbits, in the last byte): both indexes must refuse it
        const int bit = in.ConsumeIntegralInRange<int>(0, static_cast<int>(8 * cs) - 1);
        out[i * cs + bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
      }
    }
    return out;
  }
  std::vector<idx_t> ids(std::size_t n) {
    std::vector<idx_t> out(n);
    for (auto& id : out) id = in.ConsumeIntegralInRange<idx_t>(-1, 700);
    return out;
  }
};

// Runs `op` on both indexes: both must succeed or both refuse with InvalidArgument.
template <class Op>
void both(BinaryIndex& flat, BinaryIndex& mih, Op op) {
  bool flat_refused = false, mih_refused = false;
  try {
    op(flat);
  } catch (const InvalidArgument&) {
    flat_refused = true;
  }
  try {
    op(mih);
  } catch (const InvalidArgument&) {
    mih_refused = true;
  }
  FUZZ_CHECK(flat_refused == mih_refused);
  FUZZ_CHECK(flat.ntotal() == mih.ntotal() && flat.next_id() == mih.next_id());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const int nbits = in.ConsumeIntegralInRange<int>(1, 320);  // any length, whole bytes or not
  const int m = in.ConsumeIntegralInRange<int>(0, std::min(nbits, 12));
  std::unique_ptr<BinaryIndex> mih;
  try {
    mih = std::make_unique<MIHIndex>(nbits, m);
  } catch (const InvalidArgument&) {
    FUZZ_CHECK(m > 0 && (nbits + m - 1) / m > 32);  // the only way m can be refused here
    return 0;
  }
  FlatIndex flat(nbits);
  Run run{in, nbits, code_size_for(nbits), {}};
  run.centres = in.ConsumeBytes<std::uint8_t>(4 * run.cs);
  run.centres.resize(4 * run.cs, 0x5A);
  for (std::size_t c = 0; c < 4; ++c) run.centres[c * run.cs + run.cs - 1] &= static_cast<std::uint8_t>(~padding_mask(nbits));
  // One selector kept for the whole run: its cached resolution must follow every change.
  std::vector<idx_t> kept_ids;
  for (idx_t id = in.ConsumeIntegralInRange<idx_t>(0, 7); id < 700; id += 1 + in.ConsumeIntegralInRange<idx_t>(0, 7))
    kept_ids.push_back(id);
  const IdSelector kept(kept_ids.data(), kept_ids.size());

  for (int step = 0; step < 48 && in.remaining_bytes() > 0; ++step) {
    switch (in.ConsumeIntegralInRange<int>(0, 7)) {
      case 0: {
        const auto c = run.codes(in.ConsumeIntegralInRange<std::size_t>(0, 400));
        both(flat, *mih, [&](BinaryIndex& x) { x.add(c.data(), c.size() / run.cs); });
        break;
      }
      case 1: {
        const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 40);
        const auto c = run.codes(n);
        const auto ids = run.ids(n);
        both(flat, *mih, [&](BinaryIndex& x) { x.add_with_ids(c.data(), n, ids.data()); });
        break;
      }
      case 2: {
        const auto ids = run.ids(in.ConsumeIntegralInRange<std::size_t>(0, 60));
        std::size_t removed[2], which = 0;
        both(flat, *mih, [&](BinaryIndex& x) { removed[which++] = x.remove_ids(ids.data(), ids.size()); });
        FUZZ_CHECK(removed[0] == removed[1]);
        break;
      }
      case 3:
      case 4: {
        const std::size_t nq = in.ConsumeIntegralInRange<std::size_t>(1, 4);
        const auto q = run.codes(nq);
        if (find_padding_bits(q.data(), nq, static_cast<std::size_t>(nbits)) < nq) {  // every search refuses
          int refused = 0;
          std::vector<dist_t> d(nq);
          std::vector<idx_t> i(nq);
          for (const BinaryIndex* x : {static_cast<const BinaryIndex*>(&flat), static_cast<const BinaryIndex*>(mih.get())}) {
            try {
              x->search(q.data(), nq, 1, d.data(), i.data());
            } catch (const InvalidArgument&) {
              ++refused;
            }
            try {
              x->range_search(q.data(), nq, 0);
            } catch (const InvalidArgument&) {
              ++refused;
            }
          }
          FUZZ_CHECK(refused == 4);
          break;
        }
        const std::size_t k = in.ConsumeIntegralInRange<std::size_t>(1, flat.ntotal() + 3);
        std::vector<dist_t> D1(nq * k), D2(nq * k);
        std::vector<idx_t> I1(nq * k), I2(nq * k);
        flat.search(q.data(), nq, k, D1.data(), I1.data());
        mih->search(q.data(), nq, k, D2.data(), I2.data());
        FUZZ_CHECK(D1 == D2 && I1 == I2);
        const int r = in.ConsumeIntegralInRange<int>(0, nbits);
        const RangeResult a = flat.range_search(q.data(), nq, r), b = mih->range_search(q.data(), nq, r);
        FUZZ_CHECK(a.lims == b.lims && a.distances == b.distances && a.ids == b.ids);
        // Filtered: both indexes, against the unfiltered full ranking with the others left out.
        const auto allowed_ids = run.ids(in.ConsumeIntegralInRange<std::size_t>(0, 300));
        std::vector<idx_t> nonneg;
        for (idx_t id : allowed_ids) if (id >= 0) nonneg.push_back(id);
        const IdSelector sel(nonneg.data(), nonneg.size());
        const std::size_t all = flat.ntotal() + 1;
        std::vector<dist_t> DA(nq * all);
        std::vector<idx_t> IA(nq * all);
        flat.search(q.data(), nq, all, DA.data(), IA.data());
        for (const IdSelector* s : {&sel, &kept}) {  // a fresh selector, and one whose cache follows changes
          flat.search_filtered(q.data(), nq, k, D1.data(), I1.data(), *s);
          mih->search_filtered(q.data(), nq, k, D2.data(), I2.data(), *s);
          FUZZ_CHECK(D1 == D2 && I1 == I2);
          for (std::size_t qi = 0; qi < nq; ++qi) {  // the full ranking with the others left out
            std::size_t j = 0;
            for (std::size_t t = 0; t < all && j < k; ++t) {
              const idx_t id = IA[qi * all + t];
              if (id == kMissingId) break;
              if (!s->contains(id)) continue;
              FUZZ_CHECK(I1[qi * k + j] == id && D1[qi * k + j] == DA[qi * all + t]);
              ++j;
            }
            for (; j < k; ++j) FUZZ_CHECK(I1[qi * k + j] == kMissingId && D1[qi * k + j] == kMissingDistance);
          }
          const RangeResult fa = flat.range_search_filtered(q.data(), nq, r, *s),
                            fb = mih->range_search_filtered(q.data(), nq, r, *s);
          FUZZ_CHECK(fa.lims == fb.lims && fa.distances == fb.distances && fa.ids == fb.ids);
        }
        break;
      }
      case 5:
        if (in.ConsumeIntegralInRange<int>(0, 3) == 0) both(flat, *mih, [](BinaryIndex& x) { x.reset(); });
        break;
      case 6:
        static_cast<MIHIndex&>(*mih).compact();
        break;
      case 7: {
        const std::string& path = fuzz::scratch_path("ops");
        mih->save(path);
        mih = load_index(path, in.ConsumeBool());
        ::unlink(path.c_str());
        FUZZ_CHECK(mih->type() == IndexType::MIH && mih->ntotal() == flat.ntotal());
        break;
      }
    }
  }
  return 0;
}
