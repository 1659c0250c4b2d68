// The split-K "prenorm GEMM": for every token, the NOUT dot products of the flattened bf16
// streams with the rows of fn, plus their sum of squares, as per-split partials that the
// finalize kernel reduces in a fixed order. CUDA-core FP32 FMA, no atomics.
//
// One routine serves hc_pre (streams loaded from memory), hc_head (NOUT = 4) and the fused
// boundary (kFused: the new residual of hc_post is computed in registers from x, residual,
// post_mix and comb_mix, rounded to bf16, stored, and the rounded values feed the GEMM).
// Because the fused and the plain variant run the same accumulation code on the same bf16
// values with the same configuration, hc_post_pre == hc_post + hc_pre bit for bit.
//
// Cluster mode (kEpi > 0, sm_90+, decode sizes): the K-splits of a token block form one
// thread-block cluster, and instead of writing partials for a finalize kernel they run the
// cluster epilogue (cluster_common.cuh) right away: hc_pre, or the whole hc_post_pre
// boundary, in one kernel. The arithmetic up to the CTA partials is the same code.
//
// Work split: grid.x = K-splits over hidden (each split a contiguous range of 8-channel
// vectors, all 4 streams), grid.y = token CTAs looping over blocks of TPB tokens. Inside a
// CTA of 256 threads, G groups of VPI = 256/G threads each own NOUT/G outputs; a thread
// walks the vectors v = v0 + lane_in_group, v += VPI, so every weight element is loaded once
// per token block and reused for TPB tokens from registers.
#include <cuda_runtime.h>

#include <type_traits>

#include "cuda/cluster_common.cuh"
#include "cuda/cuda_check.hpp"
#include "cuda/device_common.cuh"
#include "cuda/kernels.hpp"

namespace mhc::cuda {
namespace {

constexpr int kGemmThreads = 256;

// Token t's hc_post mixes into registers: post[4] then comb[4][4]. Read-only loads: the
// whole CTA reads the same 80 bytes, so after one L2 trip they are L1 hits.
__device__ __forceinline__ void load_token_mixes(const GemmArgs &a, int64_t t, float mix[20]) {
#pragma unroll
  for (int k = 0; k < 4; ++k) mix[k] = __ldg(a.post_mix + t * 4 + k);
#pragma unroll
  for (int k = 0; k < 16; ++k) mix[4 + k] = __ldg(a.comb_mix + t * 16 + k);
}

// kEpi: 0 = partials to global memory (a finalize follows); 1 = cluster epilogue; 2 = cluster
// epilogue with the RMS-normalised output.
template <int NOUT, int G, int TPB, bool kFused, bool kVec, int kEpi>
__global__ void __launch_bounds__(kGemmThreads, 1)
    prenorm_gemm_kernel(const GemmArgs a, const FinalizeArgs epi) {
  constexpr int VPI = kGemmThreads / G;  // vectors per iteration of one group
  constexpr int OPT = NOUT / G;          // outputs per thread
  constexpr int kWarps = kGemmThreads / 32;
  constexpr int kWarpsPerGroup = VPI / 32;
  static_assert(VPI % 32 == 0 && NOUT % G == 0, "groups must be whole warps");

  // The fused kernel computes hc_post in one of two ways (same values, same FMA order):
  // - post once (TPB >= 2): each (token, vector) once per CTA, staged in shared memory for
  //   the G groups; it cost an extra barrier per sub-range and measured slower at one token
  //   per CTA (H200: boundary T=1 6.46 -> 6.73 us) but faster from two up (T=8 8.25 -> 7.74,
  //   T=16 10.39 -> 8.82 at H=4096), where the per-group recompute repeats G * TPB posts;
  // - per group (TPB == 1): every group recomputes the post of its vectors from the token's
  //   mixes, which every thread holds in registers.
  constexpr bool kPostOnce = kFused && TPB >= 2;
  constexpr bool kPostPerGroup = kFused && !kPostOnce;
  static_assert(!kPostPerGroup || TPB == 1, "the per-group post holds one token's mixes");
  __shared__ float s_red[kWarps][TPB][OPT + 1];
  // post once: the new residual of a sub-range of this split's vectors (kSubVecs is a multiple
  // of VPI, so a thread's vectors and their order are the same as in one pass over the split)
  constexpr int kSubVecs = 2 * VPI;
  __shared__ uint4 s_post[kPostOnce ? TPB : 1][4][kPostOnce ? kSubVecs : 1];
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  __shared__ ClusterEpilogueSmem<NOUT, kEpi ? TPB : 1> s_epi;
#endif

  const int64_t T = a.T, H = a.H, K = 4 * H;
  const int group = threadIdx.x / VPI, lane_in_group = threadIdx.x % VPI;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n_vec = (H + kVecWidth - 1) / kVecWidth;
  const int64_t v_begin = static_cast<int64_t>(blockIdx.x) * a.vectors_per_split;
  const int64_t v_end = min(n_vec, v_begin + a.vectors_per_split);

  // Only x (fused) depends on the kernel before us when launched with PDL; everything is
  // simplest and safe if we wait before touching any argument.
  wait_for_prior_grid();
  // With partials (kEpi == 0) a finalize follows. Early launch lets it launch now, so its CTAs
  // are resident and parked in their own wait (which still waits for this whole grid and its
  // writes) when we finish: its launch latency leaves the critical path. That measured faster
  // for some grids and slower for others, so the dispatch table decides. The cluster mode
  // ends the op and lets the caller's next kernel go only at its end.
  if (kEpi == 0 && a.early_launch) allow_dependent_launch();

  for (int64_t t0 = static_cast<int64_t>(blockIdx.y) * TPB; t0 < T;
       t0 += static_cast<int64_t>(gridDim.y) * TPB) {
    // The token's mixes (per-group post): every thread loads them itself, in flight with its
    // first x, residual and weight loads; staged through shared memory they cost an L2 round
    // trip and a barrier before those loads could start.
    float mix[20];
    if constexpr (kPostPerGroup) load_token_mixes(a, t0, mix);

    float acc[TPB][OPT];
    float sum_sq[TPB];
#pragma unroll
    for (int tt = 0; tt < TPB; ++tt) {
      sum_sq[tt] = 0.0f;
#pragma unroll
      for (int q = 0; q < OPT; ++q) acc[tt][q] = 0.0f;
    }

    // fn row of this thread's output q over stream j's K-segment.
    auto weight_row = [&](int j, int q) {
      return a.fn + static_cast<int64_t>(group * OPT + q) * K + j * H;
    };
    // All of a vector's weights in flight at once (one L2 round trip, not 4 * OPT).
    auto load_weights = [&](int64_t h0, float w[4][OPT][8]) {
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int q = 0; q < OPT; ++q) load_f32x8<kVec>(weight_row(j, q), h0, H, w[j][q]);
    };
    // The arithmetic of one vector: the same code and order for the plain and fused paths.
    auto accumulate = [&](const uint4 xs[TPB][4], const float w[4][OPT][8]) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        float xf[TPB][8];
#pragma unroll
        for (int tt = 0; tt < TPB; ++tt) unpack_bf16x8(xs[tt][j], xf[tt]);
#pragma unroll
        for (int q = 0; q < OPT; ++q) {
#pragma unroll
          for (int tt = 0; tt < TPB; ++tt)
#pragma unroll
            for (int e = 0; e < 8; ++e) acc[tt][q] = fma_f32(xf[tt][e], w[j][q][e], acc[tt][q]);
        }
        if (group == 0) {
#pragma unroll
          for (int tt = 0; tt < TPB; ++tt)
#pragma unroll
            for (int e = 0; e < 8; ++e) sum_sq[tt] = fma_f32(xf[tt][e], xf[tt][e], sum_sq[tt]);
        }
      }
    };

    if constexpr (kPostOnce) {
      // Per sub-range: (1) every thread computes hc_post for one (token, vector) -- its
      // token's 20 mixes, x and the 4 streams loaded together, with this thread's first
      // weights of the sub-range already on their way to L1 (a prefetch: no registers held
      // across the post) -- stores the new residual and stages it in shared memory; (2) the
      // groups run the GEMM on the staged values.
      for (int64_t sub = v_begin; sub < v_end; sub += kSubVecs) {
        const int n_sub = static_cast<int>(min(static_cast<int64_t>(kSubVecs), v_end - sub));
        const int64_t v_first = sub + lane_in_group;
        if (v_first < sub + n_sub) {
#pragma unroll
          for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int q = 0; q < OPT; ++q) prefetch_l1(weight_row(j, q) + v_first * kVecWidth);
        }
        for (int i = threadIdx.x; i < TPB * n_sub; i += kGemmThreads) {
          const int tt = i / n_sub, vi = i % n_sub;
          const int64_t t = t0 + tt, h0 = (sub + vi) * kVecWidth;
          uint4 out[4] = {make_uint4(0, 0, 0, 0), make_uint4(0, 0, 0, 0),
                          make_uint4(0, 0, 0, 0), make_uint4(0, 0, 0, 0)};
          if (t < T) {
            float tmix[20];
            load_token_mixes(a, t, tmix);
            post_token_x8<kVec>(a.x + t * H, a.residual + t * 4 * H, h0, H, tmix, tmix + 4, out);
#pragma unroll
            for (int j = 0; j < 4; ++j)
              store_bf16x8<kVec>(a.residual_out + (t * 4 + j) * H, h0, H, out[j]);
          }
#pragma unroll
          for (int j = 0; j < 4; ++j) s_post[tt][j][vi] = out[j];
        }
        __syncthreads();
        for (int64_t v = v_first; v < sub + n_sub; v += VPI) {
          uint4 xs[TPB][4];
#pragma unroll
          for (int tt = 0; tt < TPB; ++tt)
#pragma unroll
            for (int j = 0; j < 4; ++j) xs[tt][j] = s_post[tt][j][v - sub];
          float w[4][OPT][8];
          load_weights(v * kVecWidth, w);
          accumulate(xs, w);
        }
        __syncthreads();  // s_post is rewritten by the next sub-range
      }
    } else {
      for (int64_t v = v_begin + lane_in_group; v < v_end; v += VPI) {
        const int64_t h0 = v * kVecWidth;
        uint4 xs[TPB][4];  // the 4 streams of each token, 8 bf16 channels each
#pragma unroll
        for (int tt = 0; tt < TPB; ++tt) {
          const int64_t t = t0 + tt;
          if (t >= T) {
#pragma unroll
            for (int j = 0; j < 4; ++j) xs[tt][j] = make_uint4(0, 0, 0, 0);
          } else if constexpr (kPostPerGroup) {
            post_token_x8<kVec>(a.x + t * H, a.residual + t * 4 * H, h0, H, mix, mix + 4, xs[tt]);
            if (group == 0) {
#pragma unroll
              for (int j = 0; j < 4; ++j)
                store_bf16x8<kVec>(a.residual_out + (t * 4 + j) * H, h0, H, xs[tt][j]);
            }
          } else {
#pragma unroll
            for (int j = 0; j < 4; ++j)
              xs[tt][j] = load_bf16x8<kVec>(a.residual + (t * 4 + j) * H, h0, H);
          }
        }
        float w[4][OPT][8];
        load_weights(h0, w);
        accumulate(xs, w);
      }
    }

    // Reduce: butterfly inside each warp, then the warps of a group in increasing order.
#pragma unroll
    for (int tt = 0; tt < TPB; ++tt) {
#pragma unroll
      for (int q = 0; q < OPT; ++q) {
        const float s = warp_sum(acc[tt][q]);
        if (lane == 0) s_red[warp][tt][q] = s;
      }
      const float s = warp_sum(sum_sq[tt]);
      if (lane == 0) s_red[warp][tt][OPT] = s;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < TPB * (NOUT + 1); i += kGemmThreads) {
      const int tt = i / (NOUT + 1), o = i % (NOUT + 1);
      const int64_t t = t0 + tt;
      if (t >= T) continue;
      const int g = o < NOUT ? o / OPT : 0;
      const int q = o < NOUT ? o % OPT : OPT;
      float s = 0.0f;
      for (int w = g * kWarpsPerGroup; w < (g + 1) * kWarpsPerGroup; ++w) s += s_red[w][tt][q];
      if constexpr (kEpi == 0) {
        a.partials[(static_cast<int64_t>(blockIdx.x) * T + t) * (NOUT + 1) + o] = s;
      } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
        s_epi.cta[tt][o] = s;
#endif
      }
    }
    if constexpr (kEpi != 0) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      // the streams of the epilogue: the new residual (fused; this CTA wrote its channels
      // above, visible after the cluster barrier) or the input streams
      cluster_epilogue<NOUT, TPB, kWarps, kEpi == 2, kVec>(epi, epi.residual, t0, v_begin * kVecWidth,
                                                           min(H, v_end * kVecWidth), s_epi);
#endif
    }
    __syncthreads();  // s_red is reused by the next token block
  }
  if (kEpi != 0 || !a.early_launch) allow_dependent_launch();
}

template <int NOUT, int G, int TPB, bool kFused, int kEpi>
void launch_variant(const GemmArgs &a, const FinalizeArgs &epi, const GemmConfig &c, bool vec,
                    const LaunchOptions &opt) {
  const int64_t token_blocks = (a.T + TPB - 1) / TPB;
  const dim3 grid(static_cast<unsigned>(c.splits),
                  static_cast<unsigned>(std::min<int64_t>(token_blocks, c.token_ctas)));
  const LaunchOptions o = kEpi ? opt.with_cluster(static_cast<unsigned>(c.splits)) : opt;
  if (vec)
    launch_kernel(prenorm_gemm_kernel<NOUT, G, TPB, kFused, true, kEpi>, grid, dim3(kGemmThreads), o, a, epi);
  else
    launch_kernel(prenorm_gemm_kernel<NOUT, G, TPB, kFused, false, kEpi>, grid, dim3(kGemmThreads), o, a, epi);
}

template <int NOUT, int G, int TPB, bool kFused>
void launch_epilogue_mode(const GemmArgs &a, const FinalizeArgs &epi, const GemmConfig &c, bool vec,
                          const LaunchOptions &opt) {
  if constexpr (NOUT == 24) {
    if (c.cluster) {
      if (epi.norm_weight) return launch_variant<NOUT, G, TPB, kFused, 2>(a, epi, c, vec, opt);
      return launch_variant<NOUT, G, TPB, kFused, 1>(a, epi, c, vec, opt);
    }
  }
  launch_variant<NOUT, G, TPB, kFused, 0>(a, epi, c, vec, opt);
}

template <int NOUT, int G, bool kFused>
void launch_tpb(const GemmArgs &a, const FinalizeArgs &epi, const GemmConfig &c, bool vec,
                const LaunchOptions &opt) {
  switch (c.tokens_per_cta) {
    case 1: return launch_epilogue_mode<NOUT, G, 1, kFused>(a, epi, c, vec, opt);
    case 2: return launch_epilogue_mode<NOUT, G, 2, kFused>(a, epi, c, vec, opt);
    case 4: return launch_epilogue_mode<NOUT, G, 4, kFused>(a, epi, c, vec, opt);
    default:
      fail(MHC_ERROR_NOT_SUPPORTED, "gemm config: tokens_per_cta %d not built (1, 2 or 4)",
           c.tokens_per_cta);
  }
}

}  // namespace

void configure_gemm_cluster_kernels() {
  // Clusters of up to 16 K-splits: beyond the portable size 8, an opt-in per kernel.
  auto allow = [](auto kernel) {
    MHC_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
  };
  auto per_tpb = [&](auto tpb) {
    constexpr int P = decltype(tpb)::value;
    allow(prenorm_gemm_kernel<24, 8, P, false, false, 1>);
    allow(prenorm_gemm_kernel<24, 8, P, false, true, 1>);
    allow(prenorm_gemm_kernel<24, 8, P, true, false, 1>);
    allow(prenorm_gemm_kernel<24, 8, P, true, true, 1>);
    allow(prenorm_gemm_kernel<24, 8, P, false, false, 2>);
    allow(prenorm_gemm_kernel<24, 8, P, false, true, 2>);
    allow(prenorm_gemm_kernel<24, 8, P, true, false, 2>);
    allow(prenorm_gemm_kernel<24, 8, P, true, true, 2>);
  };
  per_tpb(std::integral_constant<int, 1>{});
  per_tpb(std::integral_constant<int, 2>{});
  per_tpb(std::integral_constant<int, 4>{});
}

void launch_prenorm_gemm(int n_out, bool fused, const GemmArgs &a, const GemmConfig &c,
                         const LaunchOptions &opt, const FinalizeArgs &epi) {
  const int64_t n_vec = (a.H + kVecWidth - 1) / kVecWidth;
  GemmArgs args = a;
  args.vectors_per_split = (n_vec + c.splits - 1) / c.splits;
  args.early_launch = c.early_launch && !c.cluster;
  const bool vec = a.H % kVecWidth == 0 && is_aligned16(a.residual) && is_aligned16(a.fn) &&
                   (!fused || (is_aligned16(a.x) && is_aligned16(a.residual_out))) &&
                   (!c.cluster || (is_aligned16(epi.out) &&
                                   (epi.norm_weight == nullptr || is_aligned16(epi.norm_weight))));
  if (c.cluster && (n_out != 24 || c.variant != GemmVariant::kFma || c.splits > 16))
    fail(MHC_ERROR_INTERNAL, "gemm config: cluster mode is the hc_pre FMA kernel, <= 16 splits");
  if (c.variant == GemmVariant::kMma) {
    if (fused)  // fuse_post_into_gemm() never picks it for the boundary
      fail(MHC_ERROR_INTERNAL, "gemm config: the MMA variant is plain hc_pre / hc_head only");
    return launch_prenorm_mma(n_out, a, c, opt);
  }
  if (n_out == 4) {
    if (c.out_groups != 1 || fused)
      fail(MHC_ERROR_NOT_SUPPORTED, "gemm config: hc_head needs 1 output group, unfused");
    return launch_tpb<4, 1, false>(args, epi, c, vec, opt);
  }
  // 8 groups of one warp, 3 outputs per thread: the only grouping the measured table uses
  // (fewer groups need more registers than the 255 a thread has at these tile sizes).
  if (c.out_groups != 8)
    fail(MHC_ERROR_NOT_SUPPORTED, "gemm config: out_groups %d not built (8)", c.out_groups);
  return fused ? launch_tpb<24, 8, true>(args, epi, c, vec, opt) : launch_tpb<24, 8, false>(args, epi, c, vec, opt);
}

}  // namespace mhc::cuda
