// The SIMD levels: one row per level (name, CPU detection, kernel table), the forced level, and the
// level reported as in use. Adding an instruction set takes one kernel file, one row below and one
// CMake line. Per-code-size plans are in simd_plan.cpp.
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

#include "deephash/simd.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#endif

namespace deephash {

const char* simd_level_name(SimdLevel level) noexcept {
  static constexpr const char* kNames[] = {"scalar", "avx2", "avx512", "neon"};
  const int i = static_cast<int>(level);
  return i >= 0 && i < 4 ? kNames[i] : "unknown";
}

namespace {

#if defined(__x86_64__) || defined(_M_X64)
struct X86Features {
  bool avx2 = false;    // AVX2 + FMA (every AVX2 CPU made has FMA; the logistic kernel needs it)
  bool avx512 = false;  // AVX512F + BW + VL + VPOPCNTDQ + VBMI + IFMA, with ZMM state enabled by the OS
};

X86Features detect_x86() noexcept {
  X86Features f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, popcnt = (c >> 23) & 1, fma = (c >> 12) & 1;
  if (!osxsave || !avx || !popcnt) return f;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_state = (xcr0_lo & 0x6) == 0x6;
  const bool zmm_state = (xcr0_lo & 0xE6) == 0xE6;
  if (!ymm_state || __get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = ((b >> 5) & 1) && fma;
  const bool avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1, ifma = (b >> 21) & 1;
  const bool vbmi = (c >> 1) & 1, vpopcntdq = (c >> 14) & 1;
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512bw && avx512vl && vpopcntdq && vbmi && ifma;
  return f;
}

const X86Features& x86() noexcept {
  static const X86Features f = detect_x86();
  return f;
}
#endif

struct Level {
  SimdLevel level;
  bool (*supported)() noexcept;
  const kernels::KernelTable& (*table)() noexcept;
  const char* needs;  // what the CPU must report, for the error when it does not
};

// Increasing order of preference; rows exist only for levels compiled into this build.
constexpr Level kLevels[] = {
    {SimdLevel::Scalar, [] () noexcept { return true; }, &kernels::scalar_table, "nothing"},
#if defined(__x86_64__) || defined(_M_X64)
    {SimdLevel::AVX2, [] () noexcept { return x86().avx2; }, &kernels::avx2_table, "AVX2, FMA and POPCNT"},
    {SimdLevel::AVX512, [] () noexcept { return x86().avx512; }, &kernels::avx512_table,
     "AVX-512 F, BW, VL, VPOPCNTDQ, VBMI and IFMA, with ZMM state enabled by the OS"},
#endif
#if defined(__aarch64__)
    {SimdLevel::NEON, [] () noexcept { return true; }, &kernels::neon_table, "NEON"},
#endif
};

const Level* find(SimdLevel level) noexcept {
  for (const Level& l : kLevels)
    if (l.level == level) return &l;
  return nullptr;
}

const Level* find(const std::string& name) noexcept {
  for (const Level& l : kLevels)
    if (name == simd_level_name(l.level)) return &l;
  return nullptr;
}

// The forced table, or nullptr for per-size plans. Resolved from DEEPHASH_SIMD on first use: an
// unknown or unsupported value is ignored (the library never aborts or prints; build_info()
// reports the level in use).
std::atomic<const kernels::KernelTable*> g_forced{nullptr};
std::atomic<bool> g_env_read{false};

void read_env_once() noexcept {
  if (g_env_read.load(std::memory_order_acquire)) return;
  const kernels::KernelTable* forced = nullptr;
  if (const char* env = std::getenv("DEEPHASH_SIMD")) {
    const Level* l = find(std::string(env));
    if (l && l->supported()) forced = &l->table();
  }
  bool expected = false;
  if (g_env_read.compare_exchange_strong(expected, true, std::memory_order_acq_rel))
    g_forced.store(forced, std::memory_order_release);
}

}  // namespace


std::vector<SimdLevel> compiled_simd_levels() {
  std::vector<SimdLevel> out;
  for (const Level& l : kLevels) out.push_back(l.level);
  return out;
}

std::vector<SimdLevel> available_simd_levels() {
  std::vector<SimdLevel> out;
  for (const Level& l : kLevels)
    if (l.supported()) out.push_back(l.level);
  return out;
}

SimdLevel best_simd_level() noexcept {
  SimdLevel best = SimdLevel::Scalar;
  for (const Level& l : kLevels)
    if (l.supported()) best = l.level;
  return best;
}

namespace kernels {

const KernelTable* table_for(SimdLevel level) noexcept {
  const Level* l = find(level);
  return l && l->supported() ? &l->table() : nullptr;
}

const KernelTable* forced_table() noexcept {
  read_env_once();
  return g_forced.load(std::memory_order_acquire);
}

const KernelTable& active() noexcept {
  const KernelTable* forced = forced_table();
  return forced ? *forced : *table_for(best_simd_level());
}

}  // namespace kernels

SimdLevel simd_level() noexcept { return kernels::active().level; }

bool simd_level_forced() noexcept { return kernels::forced_table() != nullptr; }

void set_simd_level(const std::string& name) {
  read_env_once();
  if (name == "auto") {
    g_forced.store(nullptr, std::memory_order_release);
    return;
  }
  const Level* l = find(name);
  if (!l) {
    for (int i = 0; i < 4; ++i)
      if (name == simd_level_name(static_cast<SimdLevel>(i)))
        throw InvalidArgument("simd level '" + name + "' is not compiled into this build");
    throw InvalidArgument("simd level must be one of 'scalar', 'avx2', 'avx512', 'neon' or 'auto', got '" +
                          name + "'");
  }
  if (!l->supported()) {
    std::string here;
    for (SimdLevel v : available_simd_levels()) here += (here.empty() ? "" : ", ") + std::string(simd_level_name(v));
    throw InvalidArgument("simd level '" + name + "' is not supported by this CPU: it needs " + l->needs +
                          "; this CPU runs " + here);
  }
  g_forced.store(&l->table(), std::memory_order_release);
}

}  // namespace deephash
