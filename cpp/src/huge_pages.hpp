// HugePageAllocator: a std::allocator for large arrays that are read at random (multi-index hash
// tables, de-duplication bits, codes, a training bank's tile layouts). Blocks of 2 MiB or more are
// 2 MiB aligned and advised for transparent huge pages before first touch, which removes most TLB
// misses of random lookups (the dominant cost of a table probe under virtualisation). Smaller
// blocks use operator new, aligned to SmallAlign bytes.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace deephash {

template <class T, std::size_t SmallAlign = __STDCPP_DEFAULT_NEW_ALIGNMENT__>
struct HugePageAllocator {
  using value_type = T;
  static constexpr std::size_t kHuge = std::size_t{2} << 20;
  static constexpr std::align_val_t kSmallAlign{SmallAlign};
  template <class U>
  struct rebind {
    using other = HugePageAllocator<U, SmallAlign>;
  };

  HugePageAllocator() noexcept = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U, SmallAlign>&) noexcept {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = n * sizeof(T);
    if (bytes < kHuge) return static_cast<T*>(::operator new(bytes, kSmallAlign));
    const std::size_t rounded = (bytes + kHuge - 1) / kHuge * kHuge;
    void* p = std::aligned_alloc(kHuge, rounded);
    if (!p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    ::madvise(p, rounded, MADV_HUGEPAGE);  // advisory: ignored where THP is off
#endif
    return static_cast<T*>(p);
  }

  void deallocate(T* p, std::size_t n) noexcept {
    if (n * sizeof(T) < kHuge) {
      ::operator delete(p, kSmallAlign);
    } else {
      std::free(p);
    }
  }

  template <class U>
  bool operator==(const HugePageAllocator<U, SmallAlign>&) const noexcept { return true; }
  template <class U>
  bool operator!=(const HugePageAllocator<U, SmallAlign>&) const noexcept { return false; }
};

// A vector whose data starts on a cache line (64 bytes), for arrays read by instructions that
// load whole lines: an AMX tile row across two lines loads several times slower than one within
// a line.
template <class T>
using AlignedVector = std::vector<T, HugePageAllocator<T, 64>>;

}  // namespace deephash
