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

// Writes rows index[i] (each < rows_pad) from values (count x dim, row-major) into the four
// layout arrays; the padding dimensions stay zero.
void amx_pack_rows(const float* values, const std::int64_t* index, std::size_t count, std::size_t dim,
                   std::size_t dim_pad, std::uint16_t* t_hi, std::uint16_t* t_lo, std::uint16_t* v_hi,
                   std::uint16_t* v_lo) noexcept;

// PackedBank::logistic over a packed bank of `rows` rows (the rest up to rows_pad zero).
double amx_logistic(const float* u, std::size_t batch, std::size_t dim, std::size_t dim_pad, std::size_t rows,
                    std::size_t rows_pad, const std::uint16_t* t_hi, const std::uint16_t* t_lo,
                    const std::uint16_t* v_hi, const std::uint16_t* v_lo, float* sigmoid_v, std::size_t threads);

}  // namespace deephash::kernels
