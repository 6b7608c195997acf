#include "mih_table.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "radix_sort.hpp"

namespace deephash {

void SubstringTable::build(const std::uint8_t* codes, std::size_t n, std::size_t code_size, bool contiguous) {
  dense_ = dense_for(bits_, n);
  contiguous_ = contiguous;
  positions_.clear();
  positions_.shrink_to_fit();
  keys_.clear();
  offsets_.clear();
  blocks_.clear();
  blocked_ = false;
  if (contiguous) {  // the codes come sorted by key: only the bucket starts
    if (dense_) {
      std::vector<std::uint32_t, HugePageAllocator<std::uint32_t>> offsets((std::size_t{1} << bits_) + 1, 0);
      for (std::size_t i = 0; i < n; ++i) ++offsets[key_of(codes + i * code_size, code_size) + 1];
      for (std::size_t k = 0; k + 1 < offsets.size(); ++k) offsets[k + 1] += offsets[k];
      block_offsets(offsets);
      if (!blocked_) offsets_.swap(offsets);
      return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t key = key_of(codes + i * code_size, code_size);
      if (i == 0 || key != keys_.back()) {
        keys_.push_back(key);
        offsets_.push_back(static_cast<std::uint32_t>(i));
      }
    }
    offsets_.push_back(static_cast<std::uint32_t>(n));
    keys_.shrink_to_fit();
    offsets_.shrink_to_fit();
    return;
  }
  positions_.assign(n, 0);
  if (dense_) {
    const std::size_t nkeys = std::size_t{1} << bits_;
    std::vector<std::uint32_t, HugePageAllocator<std::uint32_t>> offsets(nkeys + 1);
    order_by_key(n, bits_, [&](std::size_t i) { return key_of(codes + i * code_size, code_size); }, positions_.data(),
                 offsets.data());
    block_offsets(offsets);
    if (!blocked_) offsets_.swap(offsets);
    return;
  }
  std::vector<std::pair<std::uint64_t, std::uint32_t>> pairs(n);
  for (std::size_t i = 0; i < n; ++i) pairs[i] = {key_of(codes + i * code_size, code_size), static_cast<std::uint32_t>(i)};
  std::sort(pairs.begin(), pairs.end());
  offsets_.clear();
  for (std::size_t i = 0; i < n; ++i) {
    if (i == 0 || pairs[i].first != pairs[i - 1].first) {
      keys_.push_back(pairs[i].first);
      offsets_.push_back(static_cast<std::uint32_t>(i));
    }
    positions_[i] = pairs[i].second;
  }
  offsets_.push_back(static_cast<std::uint32_t>(n));
  keys_.shrink_to_fit();
  offsets_.shrink_to_fit();
}

void SubstringTable::block_offsets(const std::vector<std::uint32_t, HugePageAllocator<std::uint32_t>>& offsets) {
  const std::size_t nkeys = offsets.size() - 1, nblocks = (nkeys + kBlock - 1) / kBlock;
  auto at = [&](std::size_t k) { return offsets[std::min(k, nkeys)]; };
  for (std::size_t b = 0; b < nblocks; ++b)
    if (at((b + 1) * kBlock) - at(b * kBlock) > UINT16_MAX) return;  // plain offsets
  blocks_.resize(nblocks);
  for (std::size_t b = 0; b < nblocks; ++b) {
    Block& blk = blocks_[b];
    blk.start = at(b * kBlock);
    for (std::size_t i = 0; i <= kBlock; ++i) blk.before[i] = static_cast<std::uint16_t>(at(b * kBlock + i) - blk.start);
  }
  blocked_ = true;
}

}  // namespace deephash
