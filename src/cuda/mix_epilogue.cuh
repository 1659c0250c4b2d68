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

// 1/s with one hardware reciprocal (MUFU.RCP, <= 1 ulp). Sinkhorn sums are >= eps > 0 or
// NaN/Inf (which it propagates: 1/Inf = 0, 1/NaN = NaN), so flushing denormal s is moot.
__device__ __forceinline__ float rcp_approx(float s) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(s));
  return r;
}

// Sinkhorn of spec §2.1 on a 4x4 held whole in every lane's registers (c[4a + k] =
// comb[a][k]). The 39 dependent normalisations are the latency floor of the decode epilogue:
// with the matrix in registers a normalisation is two adds deep ((c0 + c1) + (c2 + c3)), then
// + eps, ONE reciprocal per row or column and four multiplies -- no shuffle round trips, and
// 4 MUFU operations rather than 16 divides (which made an earlier register version
// throughput-bound). v / s is v * (1/s): <= 2 ulp, the comb tolerance of 1e-4 leaves ample room.
__device__ __forceinline__ void sinkhorn_4x4(float c[16], int iters, float eps) {
  auto sum4 = [](float a, float b, float c2, float d) { return (a + b) + (c2 + d); };
  // row softmax, then + eps
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    float *r = c + 4 * a;
    const float m = fmaxf(fmaxf(r[0], r[1]), fmaxf(r[2], r[3]));
#pragma unroll
    for (int k = 0; k < 4; ++k) r[k] = expf(r[k] - m);
    const float inv = rcp_approx(sum4(r[0], r[1], r[2], r[3]));
#pragma unroll
    for (int k = 0; k < 4; ++k) r[k] = r[k] * inv + eps;
  }
  auto normalize_columns = [&]() {
    float inv[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) inv[k] = rcp_approx(sum4(c[k], c[4 + k], c[8 + k], c[12 + k]) + eps);
#pragma unroll
    for (int i = 0; i < 16; ++i) c[i] *= inv[i % 4];
  };
  auto normalize_rows = [&]() {
    float inv[4];
#pragma unroll
    for (int a = 0; a < 4; ++a)
      inv[a] = rcp_approx(sum4(c[4 * a], c[4 * a + 1], c[4 * a + 2], c[4 * a + 3]) + eps);
#pragma unroll
    for (int i = 0; i < 16; ++i) c[i] *= inv[i / 4];
  };
  // column normalisation, then (iters - 1) row + column normalisations
  normalize_columns();
  for (int it = 1; it < iters; ++it) {
    normalize_rows();
    normalize_columns();
  }
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
  float c[16];
#pragma unroll
  for (int i = 0; i < 16; ++i) c[i] = __shfl_sync(0xffffffffu, logit, 8 + i);
  sinkhorn_4x4(c, a.sinkhorn_iters, a.sinkhorn_eps);
  // lane 8 + i writes element i (a select chain, not a runtime index into c: no local memory)
  float mine = c[0];
#pragma unroll
  for (int i = 1; i < 16; ++i) mine = lane == 8 + i ? c[i] : mine;
  if (lane >= 8 && lane < 24) a.comb_mix[t * 16 + (lane - 8)] = mine;
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
