// The per-token epilogue of hc_pre / hc_head, shared by the finalize kernel and the
// one-pass cluster kernel: from the reduced dot products to the gates (RMS factor, sigmoids,
// Sinkhorn of spec §2.1) and the pre-weighted sum of the 4 streams. One copy of this math
// is what keeps the kernels' definitions of the spec identical.
//
// Warp convention: lane o < NOUT holds the full dot product of output o, lane NOUT the sum
// of squares of the token's 4H stream values; other lanes hold anything.
#pragma once

#include "common/mhc_math.hpp"
#include "cuda/device_common.cuh"
#include "cuda/kernels.hpp"

namespace mhc::cuda {

// Sinkhorn of spec §2.1, in two forms that give the same bits (batch invariance lets the
// choice depend on T): the 4x4 whole in every lane's registers (decode: no shuffle round trips
// in the 39 dependent normalisations, measured 3.3k vs 4.0k cycles per token on an H200), or
// one element per lane on lanes 8..23 with shuffles (prefill: a quarter of the MUFU and FP32
// work per warp, measured 4.5k vs 7.9k cycles with 16 tokens' warps per SM). Both are written
// with the same explicitly rounded operations in the same order; a normalisation is
// v * rcp((c0 + c1) + (c2 + c3) + eps), with one hardware reciprocal (<= 1 ulp) per row or
// column: <= 2 ulp from a division, well inside the comb tolerance of 1e-4.

// 1/s as one MUFU.RCP (1/Inf = 0, 1/NaN = NaN). With eps >= FLT_MIN every sum is normal or
// NaN/Inf. With eps = 0 a column whose entries all underflowed sums to 0 or a denormal, and
// v * (1/s) gives Inf/NaN where v / s could stay finite -- as the __fdividef of earlier
// versions did; both forms below agree bit for bit either way.
__device__ __forceinline__ float rcp_approx(float s) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(s));
  return r;
}
__device__ __forceinline__ float sk_sum(float a, float b, float c, float d) {
  return __fadd_rn(__fadd_rn(a, b), __fadd_rn(c, d));
}
__device__ __forceinline__ float sk_max(float a, float b, float c, float d) {
  return fmaxf(fmaxf(a, b), fmaxf(c, d));
}
// softmax entry of x in a row with maximum m, before the row's 1/sum
__device__ __forceinline__ float sk_exp(float x, float m) { return expf(__fsub_rn(x, m)); }
// the softmax entry, normalised, + eps
__device__ __forceinline__ float sk_first(float e, float inv, float eps) {
  return __fadd_rn(__fmul_rn(e, inv), eps);
}

// Registers: c[4a + k] = comb[a][k], the same in every lane.
__device__ __forceinline__ void sinkhorn_4x4(float c[16], int iters, float eps) {
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    float *r = c + 4 * a;
    const float m = sk_max(r[0], r[1], r[2], r[3]);
#pragma unroll
    for (int k = 0; k < 4; ++k) r[k] = sk_exp(r[k], m);
    const float inv = rcp_approx(sk_sum(r[0], r[1], r[2], r[3]));
#pragma unroll
    for (int k = 0; k < 4; ++k) r[k] = sk_first(r[k], inv, eps);
  }
  auto normalize_columns = [&]() {
    float inv[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
      inv[k] = rcp_approx(__fadd_rn(sk_sum(c[k], c[4 + k], c[8 + k], c[12 + k]), eps));
#pragma unroll
    for (int i = 0; i < 16; ++i) c[i] = __fmul_rn(c[i], inv[i % 4]);
  };
  auto normalize_rows = [&]() {
    float inv[4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
      inv[a] = rcp_approx(__fadd_rn(sk_sum(c[4 * a], c[4 * a + 1], c[4 * a + 2], c[4 * a + 3]), eps));
#pragma unroll
    for (int i = 0; i < 16; ++i) c[i] = __fmul_rn(c[i], inv[i / 4]);
  };
  // column normalisation, then (iters - 1) row + column normalisations
  normalize_columns();
  for (int it = 1; it < iters; ++it) {
    normalize_rows();
    normalize_columns();
  }
}

// Lanes: lane 8 + 4a + k holds comb[a][k]; all 32 lanes execute the shuffles, lanes outside
// 8..23 compute throw-away values.
__device__ __forceinline__ float sinkhorn_lane(float v, int iters, float eps) {
  const int lane = threadIdx.x % 32;
  const int idx = (lane >= 8 && lane < 24) ? lane - 8 : 0;
  const int a = idx / 4, c = idx % 4;
  auto row = [&](float x, int k) { return __shfl_sync(0xffffffffu, x, 8 + 4 * a + k); };
  auto col = [&](float x, int k) { return __shfl_sync(0xffffffffu, x, 8 + 4 * k + c); };
  auto row_sum = [&](float x) { return sk_sum(row(x, 0), row(x, 1), row(x, 2), row(x, 3)); };
  auto col_sum = [&](float x) { return sk_sum(col(x, 0), col(x, 1), col(x, 2), col(x, 3)); };
  const float e = sk_exp(v, sk_max(row(v, 0), row(v, 1), row(v, 2), row(v, 3)));
  v = sk_first(e, rcp_approx(row_sum(e)), eps);
  v = __fmul_rn(v, rcp_approx(__fadd_rn(col_sum(v), eps)));
  for (int it = 1; it < iters; ++it) {
    v = __fmul_rn(v, rcp_approx(__fadd_rn(row_sum(v), eps)));
    v = __fmul_rn(v, rcp_approx(__fadd_rn(col_sum(v), eps)));
  }
  return v;
}

// The mix of this lane's output: its dot product times the token's RMS factor over 4H.
template <int NOUT>
__device__ __forceinline__ float lane_mix(const FinalizeArgs &a, float sum) {
  const float sum_sq = __shfl_sync(0xffffffffu, sum, NOUT);
  return sum * inv_rms_f32(sum_sq, static_cast<float>(4 * a.H), a.rms_eps);
}

// Pre gate of lane < 4 (hc_pre and hc_head alike).
__device__ __forceinline__ float pre_gate(const FinalizeArgs &a, float mix, int lane) {
  return sigmoid_f32(mix * a.scale[0] + a.base[lane]) + a.pre_eps;
}

// hc_pre only, whole warp (warp-uniform call): post_mix from lanes 4..7, comb_mix from the
// Sinkhorn of the logits of lanes 8..23, both written for token t.
__device__ __forceinline__ void write_post_and_comb(const FinalizeArgs &a, int64_t t, float mix) {
  const int lane = threadIdx.x % 32;
  if (lane >= 4 && lane < 8)
    a.post_mix[t * 4 + (lane - 4)] = sigmoid_f32(mix * a.scale[1] + a.base[lane]) * a.post_mult;
  const float logit = lane < 24 ? mix * a.scale[2] + a.base[lane] : 0.0f;
  float comb;
  if (a.sinkhorn_in_registers) {
    float c[16];
#pragma unroll
    for (int i = 0; i < 16; ++i) c[i] = __shfl_sync(0xffffffffu, logit, 8 + i);
    sinkhorn_4x4(c, a.sinkhorn_iters, a.sinkhorn_eps);
    // lane 8 + i takes element i (a select chain, not a runtime index: no local memory)
    comb = c[0];
#pragma unroll
    for (int i = 1; i < 16; ++i) comb = lane == 8 + i ? c[i] : comb;
  } else {
    comb = sinkhorn_lane(logit, a.sinkhorn_iters, a.sinkhorn_eps);
  }
  if (lane >= 8 && lane < 24) a.comb_mix[t * 16 + (lane - 8)] = comb;
}

// The unrounded pre-weighted sum of the 4 streams (8 channels of each, loaded).
__device__ __forceinline__ void weighted_sum_bf16x8(const uint4 streams[4], const float pre[4],
                                                    float ol[8]) {
  float r[4][8];
#pragma unroll
  for (int j = 0; j < 4; ++j) unpack_bf16x8(streams[j], r[j]);
#pragma unroll
  for (int e = 0; e < 8; ++e) {
    const float re[4] = {r[0][e], r[1][e], r[2][e], r[3][e]};
    ol[e] = weighted_sum4(pre, re);
  }
}

// The same for one token at channels h0..h0+7, loading the streams.
template <bool kVec>
__device__ __forceinline__ void weighted_sum_x8(const uint16_t *r_tok, int64_t h0, int64_t H,
                                                const float pre[4], float ol[8]) {
  uint4 streams[4];
#pragma unroll
  for (int j = 0; j < 4; ++j) streams[j] = load_bf16x8<kVec>(r_tok + j * H, h0, H);
  weighted_sum_bf16x8(streams, pre, ol);
}

// Spec §2.6 output of the RMS-normalised variant: bf16(bf16(sum) * rs * w), for 8 channels.
__device__ __forceinline__ uint4 normed_x8(float ol[8], float rs, const uint4 &w_bits) {
  float w[8];
  unpack_bf16x8(w_bits, w);
#pragma unroll
  for (int e = 0; e < 8; ++e) ol[e] = bf16_to_f32(f32_to_bf16(ol[e])) * rs * w[e];
  return pack_bf16x8(ol);
}

}  // namespace mhc::cuda
