// FlatIndex: exact Hamming k-NN and range search by a SIMD linear scan.
#pragma once

#include <memory>
#include <string>

#include "deephash/index.hpp"

namespace deephash {

class FlatIndex final : public BinaryIndex {
 public:
  // nbits: any length from 1 to kMaxNbits (throws InvalidArgument otherwise); codes of
  // code_size_for(nbits) bytes with the padding bits zero (index.hpp).
  explicit FlatIndex(int nbits);
  ~FlatIndex() override;

  IndexType type() const noexcept override { return IndexType::Flat; }
  int nbits() const noexcept override { return nbits_; }
  std::size_t ntotal() const override;
  idx_t next_id() const override;
  bool is_mmapped() const override;

  void add(const std::uint8_t* codes, std::size_t n) override;
  void add_with_ids(const std::uint8_t* codes, std::size_t n, const idx_t* ids) override;
  void search(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances,
              idx_t* ids) const override;
  RangeResult range_search(const std::uint8_t* queries, std::size_t nq, int radius) const override;
  void search_filtered(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances, idx_t* ids,
                       const IdSelector& allow, FilterStrategy* strategy = nullptr) const override;
  RangeResult range_search_filtered(const std::uint8_t* queries, std::size_t nq, int radius, const IdSelector& allow,
                                    FilterStrategy* strategy = nullptr) const override;
  std::size_t remove_ids(const idx_t* ids, std::size_t n) override;
  void reset() override;
  void reconstruct(idx_t id, std::uint8_t* out) const override;
  void reconstruct_batch(const idx_t* ids, std::size_t n, std::uint8_t* out) const override;
  std::vector<idx_t> ids() const override;
  void save(const std::string& path) const override;

  // A FlatIndex holding the items of `index` (any BinaryIndex: its codes and ids in storage order)
  // with the same next_id; `index` must not change meanwhile (an id it drops raises UnknownId).
  static std::unique_ptr<FlatIndex> copy_of(const BinaryIndex& index);

  // Builds a FlatIndex from a validated file (used by load_index).
  static std::unique_ptr<FlatIndex> from_file(const io::Header& header,
                                              const std::shared_ptr<const io::MappedFile>& file,
                                              const std::string& path, bool mmap);

 private:
  void knn(const std::uint8_t* queries, std::size_t nq, std::size_t k, dist_t* distances, idx_t* ids,
           const IdSelector* allow, FilterStrategy* strategy) const;
  RangeResult range(const std::uint8_t* queries, std::size_t nq, int radius, const IdSelector* allow,
                    FilterStrategy* strategy) const;
  template <class Scan>
  auto scan_locked(const IdSelector* allow, FilterStrategy* strategy, Scan&& scan) const;

  struct State;  // the lock and the stored codes (flat_index.cpp)
  int nbits_;
  std::unique_ptr<State> s_;
};

}  // namespace deephash
