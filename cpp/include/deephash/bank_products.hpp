// The products of the memory-bank losses on CPUs with AMX: a bank of float rows kept in the tile
// layouts of Intel's AMX-BF16 unit, and the logistic loss (DPSH, DSDH, DHN) or the contrastive loss
// (DSH) against all of it in one call.
//
// A bank loss's step against n rows of dimension d multiplies the batch by the bank twice
// (theta = U V^T, then sigmoid(theta) V): about 4 * batch * n * d flops, 2 GFLOP for a batch of
// 128 against 60,000 64-dimensional rows, which in float32 take about 20 ms of a core. AMX
// multiplies bfloat16 tiles at several times float32's rate. Every float x is split into two
// bfloat16 halves, x = hi + lo + e with |e| <= 2^-17 |x|, and a product is taken as
// hi_a hi_b + hi_a lo_b + lo_a hi_b (three tile products, accumulated in float32): the products
// keep about 16 significant bits (relative error near 2^-16 per term, where float32 keeps 24).
// The sums over the bank run in float32 as before; the value is accumulated in double.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace deephash {

// True when this CPU has AMX-TILE, AMX-BF16 and AVX512-BF16 and the operating system lets the
// process use the tile registers (asked for once, on first call). The environment variable
// DEEPHASH_BANK_PRODUCTS=float32 makes it false (read on first call).
bool bank_products_available() noexcept;

// Why bank_products_available() is false ("" when it is true).
const char* bank_products_unavailable_reason() noexcept;

// A bank of `rows` float rows of dimension `dim`, all zero and without a class at first, in the
// tile layouts.
// Throws InvalidArgument for rows or dim < 1 and std::runtime_error (with the reason) where
// bank_products_available() is false. Not safe for concurrent writes; logistic() may run while nothing writes.
class PackedBank {
 public:
  PackedBank(std::size_t rows, std::size_t dim);
  ~PackedBank();
  PackedBank(const PackedBank&) = delete;
  PackedBank& operator=(const PackedBank&) = delete;

  std::size_t rows() const noexcept { return rows_; }
  std::size_t dim() const noexcept { return dim_; }

  // Rows index[i] := values[i * dim .. (i + 1) * dim) for i < count, with class classes[i] (or
  // -1, no class, where classes is null; only contrastive() reads classes). A later repeat of an
  // index wins. Throws InvalidArgument for an index outside [0, rows), before anything is written.
  void write(const float* values, const std::int64_t* index, std::size_t count,
             const std::int32_t* classes = nullptr);

  // The pairwise-likelihood terms of a batch u (batch x dim, row-major) against every row v_j:
  // with theta_ij = u_i . v_j, writes sigmoid_v = sigmoid(theta) V (batch x dim, row-major) and
  // returns sum_ij log(1 + e^theta_ij), accumulated in double. Rows never written are zero, so
  // each adds log 2 per batch row to the sum and nothing to sigmoid_v. Runs on up to `threads`
  // threads of the core's pool (0: its default). Throws InvalidArgument for batch < 1.
  double logistic(const float* u, std::size_t batch, float* sigmoid_v, std::size_t threads = 0) const;

  // The contrastive (DSH) terms of u against every row, as deephash/contrastive.hpp states them
  // for one block: d_ij = max(u_norm[i] + |v_j|^2 - 2 u_i . v_j, 0), a pair similar where
  // u_class[i] equals the row's class. Writes weight_v = W V (batch x dim) and weight_sum = W 1
  // (batch) for the pair weights W = S - (1 - S)[d < margin], and returns the sum of
  // s d + (1 - s) max(margin - d, 0) in double. Rows never written are zero with no class: each is
  // a dissimilar pair at d = u_norm[i]. Throws InvalidArgument for batch < 1.
  double contrastive(const float* u, const float* u_norm, const std::int32_t* u_class, std::size_t batch,
                     float margin, float* weight_v, float* weight_sum, std::size_t threads = 0) const;

  // Bytes held by the layouts.
  std::size_t memory_bytes() const noexcept;

 private:
  std::size_t rows_, dim_, rows_pad_, dim_pad_;
  // Two layouts, each as high and low bfloat16 halves: `t` feeds theta = U V^T, `v` feeds
  // P V (kernels/bank_amx.cpp describes them); cache-line aligned arrays. Per row: |v|^2, class.
  struct Layouts;
  std::unique_ptr<Layouts> layouts_;
};

}  // namespace deephash
