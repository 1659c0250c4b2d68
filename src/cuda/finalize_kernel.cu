// Finalize of hc_pre / hc_head: reduce the split-K partials in a fixed order, apply the RMS
// factor, sigmoids and (hc_pre) the Sinkhorn projection, then write the pre-weighted sum of
// the 4 streams (optionally RMS-normalised with norm_weight).
//
// Grid: (token, channel block). Every CTA of a token recomputes the 4 pre gates (cheap);
// only channel block 0 writes post_mix and runs the Sinkhorn in warp 0, one lane per comb
// element, gathering rows and columns with shuffles in the spec's summation order -- after
// its share of the weighted sum, so the other warps' loads and stores are not held up by
// the Sinkhorn's dependent chain. Without a norm, each thread's streams are loaded as soon
// as the partials are, so they are in flight while the partials are reduced. With a
// norm_weight the whole row is needed for its RMS, so a token is one CTA (two passes over the
// streams, the second re-reading them from L2 rather than keeping H floats around).
#include "common/mhc_math.hpp"
#include "cuda/device_common.cuh"
#include "cuda/kernels.hpp"
#include "cuda/mix_epilogue.cuh"

namespace mhc::cuda {
namespace {

constexpr int kFinalizeThreads = 128;
constexpr int kVecPerThread = 2;
constexpr int kChannelsPerBlock = kFinalizeThreads * kVecWidth * kVecPerThread;

// CTAs per token: with a norm_weight the whole row is one CTA (its RMS needs every channel).
template <bool kNorm>
__host__ __device__ constexpr int64_t blocks_per_token(int64_t H) {
  return kNorm ? 1 : (H + kChannelsPerBlock - 1) / kChannelsPerBlock;
}

// Deterministic block sum (fixed tree); every thread gets the result.
__device__ float block_sum(float v, float *s_tmp) {
  v = warp_sum(v);
  if (threadIdx.x % 32 == 0) s_tmp[threadIdx.x / 32] = v;
  __syncthreads();
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kFinalizeThreads / 32; ++w) total += s_tmp[w];
  __syncthreads();
  return total;
}

template <int NOUT, bool kVec, bool kNorm>
__global__ void __launch_bounds__(kFinalizeThreads) finalize_kernel(const FinalizeArgs a) {
  __shared__ float s_pre[4];
  __shared__ float s_tmp[kFinalizeThreads / 32];
  // [splits][NOUT + 1], sized at launch: a fixed kMaxSplits array would cap the kernel at
  // 8 CTAs per SM where prefill wants every token's loads in flight.
  extern __shared__ float s_part[];
  __shared__ float s_quarter[4][NOUT + 1];
  // Grid (token, channel block), or with a.rows_together 1-D with a token's channel blocks
  // adjacent: whole rows at a time rather than one part of every row and then the next, in
  // ascending token order -- the tensor-core GEMM before us reads them descending, so our
  // first tokens are the ones it read last, still in L2 (faster from T = 2048 on an H200,
  // slower at T = 512: src/cuda/TUNING.md).
  const int64_t H = a.H;
  int64_t t = blockIdx.x, block = blockIdx.y;
  if (a.rows_together) {
    const unsigned per_token = static_cast<unsigned>(blocks_per_token<kNorm>(H));
    t = blockIdx.x / per_token;
    block = blockIdx.x % per_token;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const bool first_block = block == 0;

  wait_for_prior_grid();  // the partials come from the GEMM kernel just before us

  const uint16_t *r_tok = a.residual + t * 4 * H;
  uint16_t *out_row = a.out + t * H;
  const int64_t n_vec = (H + kVecWidth - 1) / kVecWidth;
  int64_t v_begin = 0, v_end = n_vec;
  if constexpr (!kNorm) {
    v_begin = block * (kChannelsPerBlock / kVecWidth);
    v_end = min(n_vec, v_begin + kChannelsPerBlock / kVecWidth);
  }
  // Stage this token's split partials in shared memory with every thread (all loads in
  // flight at once), then sum them in a fixed order: 4 interleaved sequential partial sums
  // per output, combined as (p0 + p1) + (p2 + p3).
  // Unrolled by 8 so that a thread's loads are all in flight before the first store: at
  // decode sizes this staging is pure memory latency.
  constexpr int kUnroll = 8;
  const int n_part = a.splits * (NOUT + 1);
  for (int base = threadIdx.x; base < n_part; base += kUnroll * kFinalizeThreads) {
    float v[kUnroll];
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int i = base + k * kFinalizeThreads, s = i / (NOUT + 1), o = i % (NOUT + 1);
      v[k] = i < n_part ? a.partials[(static_cast<int64_t>(s) * a.T + t) * (NOUT + 1) + o] : 0.0f;
    }
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int i = base + k * kFinalizeThreads;
      if (i < n_part) s_part[i] = v[k];
    }
  }
  // Without a norm, the streams are loaded now: after the partials (the gates' critical
  // path), before the reduction and gates, which their latency then overlaps. This thread's
  // vectors are v_begin + threadIdx.x + k * kFinalizeThreads.
  uint4 streams[kNorm ? 1 : kVecPerThread][4];
  if constexpr (!kNorm) {
#pragma unroll
    for (int k = 0; k < kVecPerThread; ++k) {
      const int64_t v = v_begin + threadIdx.x + k * kFinalizeThreads;
#pragma unroll
      for (int j = 0; j < 4; ++j)
        streams[k][j] = v < v_end ? load_bf16x8<kVec>(r_tok + j * H, v * kVecWidth, H) : make_uint4(0, 0, 0, 0);
    }
  }

  __syncthreads();
  if (threadIdx.x < 4 * (NOUT + 1)) {
    const int o = threadIdx.x % (NOUT + 1), q = threadIdx.x / (NOUT + 1);
    float p = 0.0f;
    for (int s = q; s < a.splits; s += 4) p += s_part[s * (NOUT + 1) + o];
    s_quarter[q][o] = p;
  }
  __syncthreads();
  float mix = 0.0f;  // warp 0: lane o's mix
  if (warp == 0) {
    // lane o < NOUT: dot product o; lane NOUT: sum of squares.
    const int o = lane <= NOUT ? lane : 0;
    const float sum = (s_quarter[0][o] + s_quarter[1][o]) + (s_quarter[2][o] + s_quarter[3][o]);
    mix = lane_mix<NOUT>(a, sum);
    if (lane < 4) s_pre[lane] = pre_gate(a, mix, lane);
  }
  __syncthreads();
  const float pre[4] = {s_pre[0], s_pre[1], s_pre[2], s_pre[3]};
  auto stream_sum = [&](int64_t h0, float ol[8]) { weighted_sum_x8<kVec>(r_tok, h0, H, pre, ol); };

  if constexpr (!kNorm) {
#pragma unroll
    for (int k = 0; k < kVecPerThread; ++k) {
      const int64_t v = v_begin + threadIdx.x + k * kFinalizeThreads;
      if (v >= v_end) break;
      float ol[8];
      weighted_sum_bf16x8(streams[k], pre, ol);
      store_bf16x8<kVec>(out_row, v * kVecWidth, H, pack_bf16x8(ol));
    }
  } else {
    // pass 1: sum of squares of the unrounded sums (spec §2.6); channels >= H are zero
    float sq = 0.0f;
    for (int64_t v = v_begin + threadIdx.x; v < v_end; v += kFinalizeThreads) {
      float ol[8];
      stream_sum(v * kVecWidth, ol);
#pragma unroll
      for (int e = 0; e < 8; ++e) sq = fma_f32(ol[e], ol[e], sq);
    }
    const float rs = inv_rms_f32(block_sum(sq, s_tmp), static_cast<float>(H), a.norm_eps);
    // pass 2: bf16(bf16(ol) * rs * w)
    for (int64_t v = v_begin + threadIdx.x; v < v_end; v += kFinalizeThreads) {
      const int64_t h0 = v * kVecWidth;
      float ol[8];
      stream_sum(h0, ol);
      store_bf16x8<kVec>(out_row, h0, H, normed_x8(ol, rs, load_bf16x8<kVec>(a.norm_weight, h0, H)));
    }
  }
  if constexpr (NOUT == 24) {
    if (warp == 0 && first_block) write_post_and_comb(a, t, mix);
  }
}

template <int NOUT, bool kNorm>
void launch_norm_variant(const FinalizeArgs &a, bool vec, const LaunchOptions &opt) {
  const int64_t per_token = blocks_per_token<kNorm>(a.H);
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = a.rows_together ? dim3(static_cast<unsigned>(a.T * per_token))
                                : dim3(static_cast<unsigned>(a.T), static_cast<unsigned>(per_token));
  cfg.blockDim = dim3(kFinalizeThreads);
  cfg.dynamicSmemBytes = sizeof(float) * static_cast<size_t>(a.splits) * (NOUT + 1);  // <= 25.6 KB
  launch_kernel_cfg(vec ? finalize_kernel<NOUT, true, kNorm> : finalize_kernel<NOUT, false, kNorm>, cfg, opt, a);
}

}  // namespace

void launch_finalize(int n_out, const FinalizeArgs &a, const LaunchOptions &opt) {
  const bool vec = a.H % kVecWidth == 0 && is_aligned16(a.residual) && is_aligned16(a.out) &&
                   (a.norm_weight == nullptr || is_aligned16(a.norm_weight));
  if (n_out == 4) return launch_norm_variant<4, false>(a, vec, opt);
  if (a.norm_weight) return launch_norm_variant<24, true>(a, vec, opt);
  launch_norm_variant<24, false>(a, vec, opt);
}

}  // namespace mhc::cuda
