// The contrastive block pass (see deephash/contrastive.hpp), written once as a plain loop that the
// compiler vectorises; included by the baseline and the AVX2 translation units, each of which
// compiles it for its own instruction set. Sums run in float along a row (at most one block of
// columns) and in double across rows.
static double contrastive_loop(float* r, const float* s, std::size_t rows, std::size_t cols,
                               const float* u_norm, const float* v_norm, float margin,
                               float* row_weight) noexcept {
  double total = 0.0;
  for (std::size_t i = 0; i < rows; ++i) {
    float* ri = r + i * cols;
    const float* si = s + i * cols;
    const float ui = u_norm[i];
    float value = 0.0f, weight = 0.0f;
#pragma omp simd reduction(+ : value, weight)
    for (std::size_t j = 0; j < cols; ++j) {
      // Branch-free (s is 0 or 1) so that the loop vectorises.
      const float d = std::max(ui + v_norm[j] - ri[j], 0.0f);
      const float sim = si[j], dissim = 1.0f - sim;
      const float inside = d < margin ? 1.0f : 0.0f;
      value += sim * d + dissim * std::max(margin - d, 0.0f);
      const float w = sim - dissim * inside;
      ri[j] = w;
      weight += w;
    }
    row_weight[i] += weight;
    total += value;
  }
  return total;
}
