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

// Sinkhorn of spec §2.1 on lanes 8..23 of a warp (lane 8 + 4a + c holds comb[a][c]).
// All 32 lanes execute the shuffles; lanes outside 8..23 compute throw-away values.
__device__ __forceinline__ float sinkhorn_lane(float logit, int iters, float eps) {
  const int lane = threadIdx.x % 32;
  const int idx = (lane >= 8 && lane < 24) ? lane - 8 : 0;
  const int a = idx / 4, c = idx % 4;
  auto row = [&](float v, int k) { return __shfl_sync(0xffffffffu, v, 8 + 4 * a + k); };
  auto col = [&](float v, int k) { return __shfl_sync(0xffffffffu, v, 8 + 4 * k + c); };

  // row softmax, then + eps
  const float r0 = row(logit, 0), r1 = row(logit, 1), r2 = row(logit, 2), r3 = row(logit, 3);
  const float m = fmaxf(fmaxf(fmaxf(r0, r1), r2), r3);
  const float e = expf(logit - m);
  const float row_sum = ((row(e, 0) + row(e, 1)) + row(e, 2)) + row(e, 3);
  // The 39 dependent normalisations are the latency floor of the epilogue: divide with the
  // fast reciprocal-multiply (<= 2 ulp; the comb tolerance of 1e-4 leaves ample room).
  float v = __fdividef(e, row_sum) + eps;
  // column normalisation, then (iters - 1) row + column normalisations
  v = __fdividef(v, (((col(v, 0) + col(v, 1)) + col(v, 2)) + col(v, 3)) + eps);
  for (int it = 1; it < iters; ++it) {
    v = __fdividef(v, (((row(v, 0) + row(v, 1)) + row(v, 2)) + row(v, 3)) + eps);
    v = __fdividef(v, (((col(v, 0) + col(v, 1)) + col(v, 2)) + col(v, 3)) + eps);
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
// Sinkhorn on lanes 8..23, both written for token t.
__device__ __forceinline__ void write_post_and_comb(const FinalizeArgs &a, int64_t t, float mix) {
  const int lane = threadIdx.x % 32;
  if (lane >= 4 && lane < 8)
    a.post_mix[t * 4 + (lane - 4)] = sigmoid_f32(mix * a.scale[1] + a.base[lane]) * a.post_mult;
  const float logit = lane < 24 ? mix * a.scale[2] + a.base[lane] : 0.0f;
  const float comb = sinkhorn_lane(logit, a.sinkhorn_iters, a.sinkhorn_eps);
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
