// Sinkhorn-Knopp projection of one token's 4x4 comb logits, exactly as the spec writes it:
// row softmax, +eps, column normalisation, then (iters - 1) row/column normalisations,
// every divisor being sum + eps. Sums run over the index in increasing order.
#pragma once

#include <cmath>

namespace mhc::cpu {

inline void sinkhorn4(float c[4][4], int iters, float eps) {
  for (int a = 0; a < 4; ++a) {
    float m = c[a][0];
    for (int k = 1; k < 4; ++k) m = std::fmax(m, c[a][k]);
    float e[4], s = 0.0f;
    for (int k = 0; k < 4; ++k) {
      e[k] = expf(c[a][k] - m);
      s += e[k];
    }
    for (int k = 0; k < 4; ++k) c[a][k] = e[k] / s + eps;
  }
  auto normalise_columns = [&] {
    for (int k = 0; k < 4; ++k) {
      float s = c[0][k] + c[1][k] + c[2][k] + c[3][k];
      for (int a = 0; a < 4; ++a) c[a][k] = c[a][k] / (s + eps);
    }
  };
  auto normalise_rows = [&] {
    for (int a = 0; a < 4; ++a) {
      float s = c[a][0] + c[a][1] + c[a][2] + c[a][3];
      for (int k = 0; k < 4; ++k) c[a][k] = c[a][k] / (s + eps);
    }
  };
  normalise_columns();
  for (int it = 1; it < iters; ++it) {
    normalise_rows();
    normalise_columns();
  }
}

}  // namespace mhc::cpu
