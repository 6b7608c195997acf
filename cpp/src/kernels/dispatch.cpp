// Chooses the kernel table once, from CPUID feature bits (x86-64) or the build target (ARM).
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "deephash/simd.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace deephash {

const char* simd_level_name(SimdLevel level) noexcept {
  switch (level) {
    case SimdLevel::Scalar: return "scalar";
    case SimdLevel::AVX2: return "avx2";
    case SimdLevel::AVX512: return "avx512";
    case SimdLevel::NEON: return "neon";
  }
  return "unknown";
}

namespace {

#if defined(__x86_64__) || defined(_M_X64)
struct X86Features {
  bool avx2 = false;
  bool avx512 = false;  // AVX512F + BW + VL + VPOPCNTDQ + VBMI, with ZMM state enabled by the OS
};

X86Features detect_x86() noexcept {
  X86Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, popcnt = (c >> 23) & 1;
  if (!osxsave || !avx || !popcnt) return f;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_state = (xcr0_lo & 0x6) == 0x6;
  const bool zmm_state = (xcr0_lo & 0xE6) == 0xE6;
  if (!ymm_state || __get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = (b >> 5) & 1;
  const bool avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
  const bool vbmi = (c >> 1) & 1, vpopcntdq = (c >> 14) & 1;
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512bw && avx512vl && vpopcntdq && vbmi;
  return f;
}
#endif

bool cpu_supports(SimdLevel level) noexcept {
  switch (level) {
    case SimdLevel::Scalar: return true;
#if defined(__x86_64__) || defined(_M_X64)
    case SimdLevel::AVX2: return detect_x86().avx2;
    case SimdLevel::AVX512: return detect_x86().avx512;
#endif
#if defined(__aarch64__)
    case SimdLevel::NEON: return true;
#endif
    default: return false;
  }
}

const kernels::KernelTable* table_for(SimdLevel level) noexcept {
  switch (level) {
    case SimdLevel::Scalar: return &kernels::scalar_table();
#if defined(__x86_64__) || defined(_M_X64)
    case SimdLevel::AVX2: return &kernels::avx2_table();
    case SimdLevel::AVX512: return &kernels::avx512_table();
#endif
#if defined(__aarch64__)
    case SimdLevel::NEON: return &kernels::neon_table();
#endif
    default: return nullptr;
  }
}

bool parse_level(const std::string& name, SimdLevel* out) noexcept {
  for (SimdLevel l : {SimdLevel::Scalar, SimdLevel::AVX2, SimdLevel::AVX512, SimdLevel::NEON}) {
    if (name == simd_level_name(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

std::atomic<const kernels::KernelTable*> g_active{nullptr};

const kernels::KernelTable* initial_table() noexcept {
  // DEEPHASH_SIMD forces a level; an unknown or unsupported value falls back to the best level
  // (the library never aborts or prints; build_info() reports the level in use).
  if (const char* env = std::getenv("DEEPHASH_SIMD")) {
    SimdLevel forced;
    if (parse_level(env, &forced) && cpu_supports(forced) && table_for(forced)) return table_for(forced);
  }
  return table_for(best_simd_level());
}

}  // namespace

std::vector<SimdLevel> compiled_simd_levels() {
  std::vector<SimdLevel> out{SimdLevel::Scalar};
#if defined(__x86_64__) || defined(_M_X64)
  out.push_back(SimdLevel::AVX2);
  out.push_back(SimdLevel::AVX512);
#endif
#if defined(__aarch64__)
  out.push_back(SimdLevel::NEON);
#endif
  return out;
}

std::vector<SimdLevel> available_simd_levels() {
  std::vector<SimdLevel> out;
  for (SimdLevel l : compiled_simd_levels())
    if (cpu_supports(l)) out.push_back(l);
  return out;
}

SimdLevel best_simd_level() noexcept {
  static const SimdLevel best = [] {
    SimdLevel b = SimdLevel::Scalar;
    for (SimdLevel l : available_simd_levels()) b = l;  // listed in increasing order
    return b;
  }();
  return best;
}

namespace kernels {
const KernelTable& active() noexcept {
  const KernelTable* t = g_active.load(std::memory_order_acquire);
  if (t) return *t;
  const KernelTable* init = initial_table();
  const KernelTable* expected = nullptr;
  g_active.compare_exchange_strong(expected, init, std::memory_order_acq_rel);
  return *g_active.load(std::memory_order_acquire);
}
}  // namespace kernels

SimdLevel simd_level() noexcept { return kernels::active().level; }

void set_simd_level(const std::string& name) {
  if (name == "auto") {
    g_active.store(table_for(best_simd_level()), std::memory_order_release);
    return;
  }
  SimdLevel level;
  if (!parse_level(name, &level)) {
    throw InvalidArgument("simd level must be one of 'scalar', 'avx2', 'avx512', 'neon' or 'auto', got '" +
                          name + "'");
  }
  if (!table_for(level)) throw InvalidArgument("simd level '" + name + "' is not compiled into this build");
  if (!cpu_supports(level)) throw InvalidArgument("simd level '" + name + "' is not supported by this CPU");
  g_active.store(table_for(level), std::memory_order_release);
}

}  // namespace deephash
