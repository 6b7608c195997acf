// The AMX-BF16 build of the bank products (deephash/bank_products.hpp). Internal to the core:
// call nothing here unless bank_products_available() is true.
#pragma once

#include <cstddef>
#include <cstdint>

namespace deephash::kernels {

// Rows of the bank are padded to a multiple of this (a tile holds 16 rows; the second product
// takes them in pairs), dimensions to a multiple of 32 (one tile row of bfloat16).
inline constexpr std::size_t kAmxRowAlign = 32, kAmxDimAlign = 32;

// uint16 elements of each of the four layout arrays for a padded bank.
inline constexpr std::size_t amx_layout_size(std::size_t rows_pad, std::size_t dim_pad) noexcept {
  return rows_pad * dim_pad;
}

// A packed bank: the four layout arrays (bank_amx.cpp describes them, each 64-byte aligned), and
// per row its squared norm and class (-1: none), for `rows` rows padded to rows_pad.
struct AmxBank {
  const std::uint16_t *t_hi, *t_lo, *v_hi, *v_lo;
  const float* v_norm;
  const std::int32_t* v_class;
  std::size_t rows, rows_pad, dim, dim_pad;
};

struct AmxBankMutable {
  std::uint16_t *t_hi, *t_lo, *v_hi, *v_lo;
  float* v_norm;
  std::int32_t* v_class;
  std::size_t rows, rows_pad, dim, dim_pad;
};

// Writes rows index[i] (each < rows) from values (count x dim, row-major), with classes[i]
// (or -1 where classes is null); the padding dimensions stay zero.
void amx_pack_rows(const AmxBankMutable& bank, const float* values, const std::int64_t* index,
                   const std::int32_t* classes, std::size_t count) noexcept;

// PackedBank::logistic and PackedBank::contrastive.
double amx_logistic(const AmxBank& bank, const float* u, std::size_t batch, float* sigmoid_v, std::size_t threads);
double amx_contrastive(const AmxBank& bank, const float* u, const float* u_norm, const std::int32_t* u_class,
                       std::size_t batch, float margin, float* weight_v, float* weight_sum, std::size_t threads);

}  // namespace deephash::kernels
