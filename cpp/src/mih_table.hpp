// SubstringTable: one table of the multi-index hash. It maps the value of one substring of the
// codes (bits [bit_begin, bit_begin + bits)) to the storage positions of the codes holding it.
//
// Compact CSR layout, no per-bucket allocation: positions grouped by key in one array, and either
// dense bucket starts indexed by key (short substrings) or sorted distinct keys with offsets
// (long, sparse substrings). Positions inside a bucket are increasing.
//
// Dense starts take 2.2 bytes per key where they can instead of 4: keys come in blocks of 29, each
// one 64-byte line holding the block's first position (uint32) and 30 uint16 counts, the positions
// of the block's keys before each key (the 30th: before the next block). A bucket is then one
// cache line away, as with plain offsets. A table with a block of 65,536 or more positions (heavily
// repeated substrings) keeps plain 4-byte offsets. At 10M codes and 2^21 or 2^22 keys per table
// this takes the offsets from 32 MiB to 18 MiB (m = 3 at 64 bits).
//
// Contiguous tables: where the codes are stored sorted by this table's substring (MIHIndex sorts
// them by its last table's), bucket i of the position list is simply the range of storage
// positions [begin, end): the table keeps no position list at all, only the bucket starts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "huge_pages.hpp"

namespace deephash {

class SubstringTable {
 public:
  SubstringTable() = default;
  SubstringTable(int bit_begin, int bits) : begin_(bit_begin), bits_(bits) {}

  int bit_begin() const noexcept { return begin_; }
  int bits() const noexcept { return bits_; }

  // The substring of a code (LSB-first bit order), as an integer of `bits` bits.
  std::uint64_t key_of(const std::uint8_t* code, std::size_t code_size) const noexcept {
    const std::size_t byte = static_cast<std::size_t>(begin_) / 8;
    std::uint64_t v = 0;
    std::memcpy(&v, code + byte, std::min<std::size_t>(8, code_size - byte));
    v >>= (begin_ % 8);
    return bits_ == 64 ? v : (v & ((std::uint64_t{1} << bits_) - 1));
  }

  // Whether a table of `bits`-bit substrings over n codes keeps dense bucket starts (indexed by
  // key: the key space is small or at most a few times the item count) or sorted distinct keys.
  static bool dense_for(int bits, std::size_t n) noexcept {
    return bits <= 20 || (bits <= 28 && (std::uint64_t{1} << bits) <= 4 * static_cast<std::uint64_t>(n));
  }

  // Indexes positions [0, n) of the codes. With `contiguous`, the codes must be stored in
  // increasing order of this table's substring (see the top of the file).
  void build(const std::uint8_t* codes, std::size_t n, std::size_t code_size, bool contiguous = false);

  bool contiguous() const noexcept { return contiguous_; }
  // The position list: bucket entries [begin, end) are positions()[begin..end), or, for a
  // contiguous table (nullptr here), the positions begin..end - 1 themselves.
  const std::uint32_t* positions() const noexcept { return contiguous_ ? nullptr : positions_.data(); }

  // The entries of the positions whose substring equals key: [*begin, *end) of the position list.
  void bucket(std::uint64_t key, std::uint32_t* begin, std::uint32_t* end) const noexcept {
    if (blocked_) {
      const Block& blk = blocks_[key / kBlock];
      const std::size_t i = key % kBlock;
      *begin = blk.start + blk.before[i];
      *end = blk.start + blk.before[i + 1];
      return;
    }
    if (dense_) {
      *begin = offsets_[key];
      *end = offsets_[key + 1];
      return;
    }
    std::size_t lo = 0, hi = keys_.size();
    while (lo < hi) {
      const std::size_t mid = (lo + hi) / 2;
      if (keys_[mid] < key) lo = mid + 1; else hi = mid;
    }
    if (lo == keys_.size() || keys_[lo] != key) {
      *begin = *end = 0;
      return;
    }
    *begin = offsets_[lo];
    *end = offsets_[lo + 1];
  }
  std::size_t bucket_size(std::uint64_t key) const noexcept {
    std::uint32_t begin, end;
    bucket(key, &begin, &end);
    return end - begin;
  }

  // Prefetch hints for a bucket that will be read soon: first its offsets, then (once those are
  // likely cached) its positions. Used to overlap the cache misses of many lookups.
  void prefetch_offsets(std::uint64_t key) const noexcept {
    if (blocked_) {
      __builtin_prefetch(blocks_.data() + key / kBlock);
    } else if (dense_) {
      __builtin_prefetch(offsets_.data() + key);
    }
  }
  void prefetch_positions(std::uint64_t key) const noexcept {
    if (contiguous_) return;  // no list: the codes come next
    if (blocked_)
      __builtin_prefetch(positions_.data() + blocks_[key / kBlock].start + blocks_[key / kBlock].before[key % kBlock]);
    else if (dense_)
      __builtin_prefetch(positions_.data() + offsets_[key]);
  }

  // Prefetch the codes of a bucket whose positions are likely cached (dense tables; the first
  // kPrefetchCodes of a larger bucket, whose later codes the candidate loop prefetches itself).
  // Small buckets (uniform codes, short substrings) otherwise wait on a miss per candidate.
  static constexpr std::size_t kPrefetchCodes = 16;
  void prefetch_codes(std::uint64_t key, const std::uint8_t* codes, std::size_t code_size) const noexcept {
    if (!dense_) return;
    std::uint32_t begin, end;
    bucket(key, &begin, &end);
    if (end - begin > kPrefetchCodes) end = begin + static_cast<std::uint32_t>(kPrefetchCodes);
    if (contiguous_) {  // one run of codes
      const std::uint8_t* first = codes + static_cast<std::size_t>(begin) * code_size;
      const std::uint8_t* last = codes + static_cast<std::size_t>(end) * code_size;
      for (; first < last; first += 64) __builtin_prefetch(first);
      return;
    }
    for (; begin < end; ++begin) __builtin_prefetch(codes + static_cast<std::size_t>(positions_[begin]) * code_size);
  }

  std::size_t memory_usage() const noexcept {
    return offsets_.capacity() * sizeof(std::uint32_t) + keys_.capacity() * sizeof(std::uint64_t) +
           blocks_.capacity() * sizeof(Block) +
           positions_.capacity() * sizeof(std::uint32_t);
  }

 private:
  static constexpr std::size_t kBlock = 29;
  struct Block {
    std::uint32_t start;
    std::uint16_t before[kBlock + 1];
  };
  static_assert(sizeof(Block) == 64, "one cache line per block");
  // Dense starts in blocks (offsets_ empty) when they fit; see the top of the file.
  void block_offsets(const std::vector<std::uint32_t, HugePageAllocator<std::uint32_t>>& offsets);

  int begin_ = 0, bits_ = 0;
  bool dense_ = true, blocked_ = false, contiguous_ = false;
  std::vector<std::uint32_t, HugePageAllocator<std::uint32_t>> offsets_;
  std::vector<Block, HugePageAllocator<Block>> blocks_;
  std::vector<std::uint64_t, HugePageAllocator<std::uint64_t>> keys_;
  std::vector<std::uint32_t, HugePageAllocator<std::uint32_t>> positions_;
};

}  // namespace deephash
