// Scalar math shared by the CPU reference and the CUDA kernels, so that both evaluate the
// spec's formulas in the same order (the CPU backend is the oracle of the CUDA one).
// Everything is fp32; bf16 values are carried as raw bits.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#define MHC_HD __host__ __device__ __forceinline__
#else
#define MHC_HD inline
#endif

namespace mhc {

MHC_HD float bf16_to_f32(uint16_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
#else
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

// Round to nearest even, as the spec's bf16 casts do; NaN becomes the canonical 0x7FFF
// (what cvt.rn.bf16.f32 produces on the GPU), overflow rounds to infinity.
MHC_HD uint16_t f32_to_bf16(float f) {
#if defined(__CUDA_ARCH__)
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
#endif
}

MHC_HD float fma_f32(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

MHC_HD float sigmoid_f32(float z) { return 1.0f / (1.0f + expf(-z)); }

// hc_post for one element of destination stream j:
//   post_j * x + sum_i comb[i][j] * r_i, accumulated i = 0..3 with fused multiply-adds.
MHC_HD float post_element(float post_j, float x, const float comb_col_j[4], const float r[4]) {
  float acc = post_j * x;
  acc = fma_f32(comb_col_j[0], r[0], acc);
  acc = fma_f32(comb_col_j[1], r[1], acc);
  acc = fma_f32(comb_col_j[2], r[2], acc);
  acc = fma_f32(comb_col_j[3], r[3], acc);
  return acc;
}

// Weighted stream sum of hc_pre / hc_head: sum_j pre_j * r_j, j = 0..3.
MHC_HD float weighted_sum4(const float pre[4], const float r[4]) {
  float acc = pre[0] * r[0];
  acc = fma_f32(pre[1], r[1], acc);
  acc = fma_f32(pre[2], r[2], acc);
  acc = fma_f32(pre[3], r[3], acc);
  return acc;
}

// 1 / sqrt(mean + eps) with IEEE sqrt and division (no approximate rsqrt).
MHC_HD float inv_rms_f32(float sum_sq, float count, float eps) {
  return 1.0f / sqrtf(sum_sq / count + eps);
}

}  // namespace mhc
