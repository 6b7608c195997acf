// PackedBank and the availability check of the AMX bank products (the kernels are in
// kernels/bank_amx.cpp, compiled with the AMX flags; this file is compiled for the baseline, so the
// checks below run on any x86-64 CPU).
#include "deephash/bank_products.hpp"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "deephash/common.hpp"
#include "deephash/simd.hpp"
#include "huge_pages.hpp"

#if defined(DEEPHASH_HAVE_AMX)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kernels/bank_amx.hpp"
#endif

namespace deephash {

struct PackedBank::Layouts {
  AlignedVector<std::uint16_t> t_hi, t_lo, v_hi, v_lo;
  AlignedVector<float> v_norm;
  AlignedVector<std::int32_t> v_class;
#if defined(DEEPHASH_HAVE_AMX)
  kernels::AmxBankMutable bank(const PackedBank& p) {
    return {t_hi.data(), t_lo.data(), v_hi.data(), v_lo.data(), v_norm.data(), v_class.data(),
            p.rows_, p.rows_pad_, p.dim_, p.dim_pad_};
  }
  kernels::AmxBank bank(const PackedBank& p) const {
    return {t_hi.data(), t_lo.data(), v_hi.data(), v_lo.data(), v_norm.data(), v_class.data(),
            p.rows_, p.rows_pad_, p.dim_, p.dim_pad_};
  }
#endif
};

namespace {

struct Availability {
  bool ok = false;
  std::string reason;
};

#if defined(DEEPHASH_HAVE_AMX)
Availability detect() {
  if (const char* env = std::getenv("DEEPHASH_BANK_PRODUCTS")) {
    if (std::strcmp(env, "float32") == 0) return {false, "DEEPHASH_BANK_PRODUCTS=float32"};
  }
  unsigned a, b, c, d;
  if (__get_cpuid_max(0, nullptr) < 7) return {false, "the CPU has no AMX (no CPUID leaf 7)"};
  __cpuid_count(7, 0, a, b, c, d);
  const bool amx_bf16 = (d >> 22) & 1, amx_tile = (d >> 24) & 1, avx512f = (b >> 16) & 1, avx512bw = (b >> 30) & 1,
             avx512vl = (b >> 31) & 1;
  if (!amx_tile || !amx_bf16) return {false, "the CPU has no AMX-BF16"};
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = (a >> 5) & 1;
  if (!avx512f || !avx512bw || !avx512vl || !avx512_bf16) return {false, "the CPU has no AVX512-BF16"};
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0xE6) != 0xE6) return {false, "the operating system does not enable the AVX-512 state"};
  // Linux hands out the tile data state only on request (ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
  constexpr long kReqXcompPerm = 0x1023, kXtileData = 18;
  if (syscall(SYS_arch_prctl, kReqXcompPerm, kXtileData) != 0)
    return {false, "the operating system does not grant the AMX tile state"};
  return {true, ""};
}
#else
Availability detect() { return {false, "this build of the core has no AMX kernels"}; }
#endif

const Availability& availability() {
  static const Availability a = detect();
  return a;
}

}  // namespace

// The kernels use AVX-512 beside AMX, so a level forced below it (DEEPHASH_SIMD) turns them off.
static bool level_allows() noexcept {
#if defined(__x86_64__) || defined(_M_X64)
  return kernels::active().level == SimdLevel::AVX512;
#else
  return false;
#endif
}

bool bank_products_available() noexcept { return availability().ok && level_allows(); }

const char* bank_products_unavailable_reason() noexcept {
  if (!availability().ok) return availability().reason.c_str();
  return level_allows() ? "" : "DEEPHASH_SIMD forces a SIMD level below avx512";
}

#if defined(DEEPHASH_HAVE_AMX)

PackedBank::PackedBank(std::size_t rows, std::size_t dim) : rows_(rows), dim_(dim) {
  if (rows < 1 || dim < 1)
    throw InvalidArgument("PackedBank: rows and dim must be >= 1, got " + std::to_string(rows) + " and " +
                          std::to_string(dim));
  if (!bank_products_available())
    throw std::runtime_error(std::string("PackedBank: the AMX bank products cannot run here: ") +
                             bank_products_unavailable_reason());
  rows_pad_ = (rows + kernels::kAmxRowAlign - 1) / kernels::kAmxRowAlign * kernels::kAmxRowAlign;
  dim_pad_ = (dim + kernels::kAmxDimAlign - 1) / kernels::kAmxDimAlign * kernels::kAmxDimAlign;
  const std::size_t size = kernels::amx_layout_size(rows_pad_, dim_pad_);
  layouts_ = std::make_unique<Layouts>();
  layouts_->t_hi.assign(size, 0);
  layouts_->t_lo.assign(size, 0);
  layouts_->v_hi.assign(size, 0);
  layouts_->v_lo.assign(size, 0);
  layouts_->v_norm.assign(rows_pad_, 0.0f);
  layouts_->v_class.assign(rows_pad_, -1);
}


void PackedBank::write(const float* values, const std::int64_t* index, std::size_t count,
                       const std::int32_t* classes) {
  for (std::size_t i = 0; i < count; ++i)
    if (index[i] < 0 || static_cast<std::size_t>(index[i]) >= rows_)
      throw InvalidArgument("PackedBank.write: index " + std::to_string(index[i]) + " outside [0, " +
                            std::to_string(rows_) + ")");
  kernels::amx_pack_rows(layouts_->bank(*this), values, index, classes, count);
}

double PackedBank::logistic(const float* u, std::size_t batch, float* sigmoid_v, std::size_t threads) const {
  if (batch < 1) throw InvalidArgument("PackedBank.logistic: batch must be >= 1, got 0");
  const Layouts& l = *layouts_;
  return kernels::amx_logistic(l.bank(*this), u, batch, sigmoid_v, threads);
}

double PackedBank::contrastive(const float* u, const float* u_norm, const std::int32_t* u_class, std::size_t batch,
                               float margin, float* weight_v, float* weight_sum, std::size_t threads) const {
  if (batch < 1) throw InvalidArgument("PackedBank.contrastive: batch must be >= 1, got 0");
  const Layouts& l = *layouts_;
  return kernels::amx_contrastive(l.bank(*this), u, u_norm, u_class, batch, margin, weight_v, weight_sum, threads);
}

#else

PackedBank::PackedBank(std::size_t rows, std::size_t dim) : rows_(rows), dim_(dim), rows_pad_(0), dim_pad_(0) {
  throw std::runtime_error(std::string("PackedBank: the AMX bank products cannot run here: ") +
                           bank_products_unavailable_reason());
}

void PackedBank::write(const float*, const std::int64_t*, std::size_t, const std::int32_t*) {}

double PackedBank::logistic(const float*, std::size_t, float*, std::size_t) const { return 0.0; }

double PackedBank::contrastive(const float*, const float*, const std::int32_t*, std::size_t, float, float*, float*,
                               std::size_t) const {
  return 0.0;
}

#endif

PackedBank::~PackedBank() = default;

std::size_t PackedBank::memory_bytes() const noexcept {
  if (!layouts_) return 0;
  const Layouts& l = *layouts_;
  return (l.t_hi.size() + l.t_lo.size() + l.v_hi.size() + l.v_lo.size()) * sizeof(std::uint16_t) +
         l.v_norm.size() * sizeof(float) + l.v_class.size() * sizeof(std::int32_t);
}

}  // namespace deephash
