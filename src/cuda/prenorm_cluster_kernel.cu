// One-pass hc_pre / hc_head for large T on sm_90+: GEMM, reduction, gates and weighted sum
// of a block of tokens in one kernel, so the streams come from HBM once (the split-K GEMM +
// finalize pair reads them twice: the finalize cannot start a token before every K-split
// of it is done, and by then the token has left L2).
// Not chosen by the dispatch table any more: the tensor-core pair with 64-channel steps
// measured 1.3-2x faster for hc_head at T >= 512 (src/cuda/TUNING.md, eighth sweep); it
// stays a tuning option (variant 2 of MHC_GEMM_CONFIG / MHC_HEAD_GEMM_CONFIG).
//
// A thread-block cluster of C CTAs works on blocks of kTokens = 32 tokens; CTA `rank` owns
// the channels [rank * H/C, (rank + 1) * H/C) of all 4 streams, and keeps its slice of fn
// in shared memory (fp32) for the whole kernel: clusters are persistent (as many as fit at
// once), so fn is read from L2 once per CTA, not once per token block.
// Per token block:
//  1. GEMM: the 16 warps split the CTA's (stream, 32-channel) steps round-robin; each warp
//     runs every token of the block through bf16x3 tensor-core MMAs (mma_common.cuh), the
//     fp32 weights split in registers. Warp partials are reduced in shared memory in a
//     fixed order.
//  2. The cluster epilogue (cluster_common.cuh): exchange of the CTA partials through
//     distributed shared memory, gates, weighted sum of the CTA's channels re-reading the
//     streams it just read (L2 hits: the clusters in flight hold about 132 / C * 32 * 8H
//     bytes), post_mix and comb_mix by the CTA that owns the token.
// Every token's arithmetic depends only on (H, C): the same bits whatever T, which token
// block or cluster it falls in, or the pointers' alignment (the element-wise path is the
// same math).
#include <cuda_runtime.h>

#include <mutex>

#include "cuda/cluster_common.cuh"
#include "cuda/cuda_check.hpp"
#include "cuda/device_common.cuh"
#include "cuda/kernels.hpp"
#include "cuda/mix_epilogue.cuh"
#include "cuda/mma_common.cuh"

namespace mhc::cuda {
namespace {

constexpr int kMTiles = 2;                  // m-tiles of 16 tokens per warp
constexpr int kWarps = 32 / kMTiles;        // register file: 32 x 255 registers per lane
constexpr int kThreads = kWarps * 32;
constexpr int kTokens = 16 * kMTiles;       // tokens per block
constexpr int kChunk = 32;                  // channels per GEMM step (4 lanes x 8)
constexpr int kFnPad = 4;                   // floats after each fn row: conflict-free LDS.128
constexpr int kMaxSmemPerCta = 232448;      // sm_90 opt-in maximum (227 KiB)

// Static shared memory of the kernel (warp partials + epilogue), for the budget check.
constexpr size_t static_smem_bytes(int n_out) {
  return sizeof(float) * ((kWarps / 2) * kTokens * (n_out + 1) + 2 * kTokens * (n_out + 1) + kTokens * 4 + kTokens);
}
// Dynamic shared memory: the CTA's fn slice, [n_out][4 * H/C + pad] fp32.
size_t fn_smem_bytes(int n_out, int64_t H, int C) {
  return sizeof(float) * static_cast<size_t>(n_out) * static_cast<size_t>(4 * (H / C) + kFnPad);
}

template <int NOUT, bool kNorm, int C, bool kVec>
__global__ void __launch_bounds__(kThreads, 1) cluster_pre_kernel(const ClusterPreArgs args) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  constexpr int MT = kMTiles;
  constexpr int NT = (NOUT + 7) / 8;  // n-tiles of 8 outputs
  constexpr int NP = NOUT + 1;        // outputs + sum of squares
  static_assert(kTokens % kWarps == 0, "whole tokens per warp");

  extern __shared__ float4 s_dyn[];
  float *s_fn = reinterpret_cast<float *>(s_dyn);  // [NOUT][fn_stride]
  __shared__ float s_red[kWarps / 2][kTokens][NP];  // warp partials
  __shared__ ClusterEpilogueSmem<NOUT, kTokens> s_epi;

  const FinalizeArgs &a = args.f;
  const int64_t T = a.T, H = a.H, K = 4 * H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const unsigned rank = blockIdx.x % C;
  const int64_t Hc = H / C;
  const int64_t h_begin = rank * Hc;
  const int64_t fn_stride = 4 * Hc + kFnPad;
  const int steps_per_stream = static_cast<int>(Hc / kChunk);
  const int n_steps = 4 * steps_per_stream;
  const int64_t n_vec = Hc / kVecWidth;
  const int64_t n_blocks = (T + kTokens - 1) / kTokens;
  const int64_t n_clusters = gridDim.x / C;

  wait_for_prior_grid();

  // fn slice -> shared memory: row o, stream j, channel h -> s_fn[o * fn_stride + j * Hc + h]
  for (int64_t i = threadIdx.x; i < NOUT * 4 * n_vec; i += kThreads) {
    const int64_t o = i / (4 * n_vec), rem = i % (4 * n_vec), j = rem / n_vec, v = rem % n_vec;
    float w[8];
    load_f32x8<kVec>(args.fn + o * K + j * H + h_begin, v * kVecWidth, Hc, w);
    float *dst = s_fn + o * fn_stride + j * Hc + v * kVecWidth;
    reinterpret_cast<float4 *>(dst)[0] = make_float4(w[0], w[1], w[2], w[3]);
    reinterpret_cast<float4 *>(dst)[1] = make_float4(w[4], w[5], w[6], w[7]);
  }
  __syncthreads();

  for (int64_t blk = blockIdx.x / C; blk < n_blocks; blk += n_clusters) {
    const int64_t t0 = blk * kTokens;

    // ---- 1. GEMM over this CTA's channels, all tokens of the block ----
    float acc[MT][NT][4];
    float sq[MT][2];
    zero_accumulators(acc, sq);
    // Step s = (stream j, 32 channels); the next step's streams are loaded before this
    // step's MMAs, so the HBM stream keeps going while the tensor cores work.
    auto load_step = [&](int s, uint4(&xs)[MT][2]) {
      const int j = s / steps_per_stream;
      const int64_t h = h_begin + static_cast<int64_t>(s % steps_per_stream) * kChunk + 8 * c;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int64_t t = t0 + mt * 16 + r * 8 + g;
          xs[mt][r] = t < T ? load_bf16x8<kVec>(a.residual + (t * 4 + j) * H, h, H) : make_uint4(0, 0, 0, 0);
        }
    };
    uint4 xs[MT][2];
    if (warp < n_steps) load_step(warp, xs);
    for (int s = warp; s < n_steps; s += kWarps) {
      const int j = s / steps_per_stream;
      const int64_t hl = static_cast<int64_t>(s % steps_per_stream) * kChunk + 8 * c;  // CTA-local
      const bool more = s + kWarps < n_steps;
      uint4 next[MT][2];
      if (more) load_step(s + kWarps, next);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const int o = nt * 8 + g;
        float w[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (o < NOUT) {
          const float4 *src = reinterpret_cast<const float4 *>(s_fn + o * fn_stride + j * Hc + hl);
          const float4 w0 = src[0], w1 = src[1];
          w[0] = w0.x; w[1] = w0.y; w[2] = w0.z; w[3] = w0.w;
          w[4] = w1.x; w[5] = w1.y; w[6] = w1.z; w[7] = w1.w;
        }
        uint4 parts[3];
        split_bf16x3_x8(w, parts);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) mma_bf16x3_step(acc[mt][nt], xs[mt][0], xs[mt][1], parts);
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        sq[mt][0] = sq_sum_bf16x8(xs[mt][0], sq[mt][0]);
        sq[mt][1] = sq_sum_bf16x8(xs[mt][1], sq[mt][1]);
        if (more) xs[mt][0] = next[mt][0], xs[mt][1] = next[mt][1];
      }
    }

    // Warp partials -> s_red (mma_common.cuh has the fragment layout). The upper half of
    // the warps store, the lower half add theirs: s_red[w] = p_w + p_(w+W/2).
    auto put_partials = [&](float(*dst)[NP], bool add) {
      for_each_partial<NOUT>(acc, sq, [&](int row, int o, float v) {
        dst[row][o] = add ? v + dst[row][o] : v;
      });
    };
    if (warp >= kWarps / 2) put_partials(s_red[warp - kWarps / 2], false);
    __syncthreads();
    if (warp < kWarps / 2) put_partials(s_red[warp], true);
    __syncthreads();
    // (The previous block's epilogue ended with every CTA done reading s_epi.)
    for (int i = threadIdx.x; i < kTokens * NP; i += kThreads) {
      const int row = i / NP, o = i % NP;
      float v[kWarps / 2];
#pragma unroll
      for (int w = 0; w < kWarps / 2; ++w) v[w] = s_red[w][row][o];
      // fixed pairwise tree over the warp pairs
#pragma unroll
      for (int width = kWarps / 4; width >= 1; width /= 2)
#pragma unroll
        for (int w = 0; w < width; ++w) v[w] = v[2 * w] + v[2 * w + 1];
      s_epi.cta[row][o] = v[0];
    }
    cluster_epilogue<NOUT, kTokens, kWarps, kNorm, kVec>(a, a.residual, t0, h_begin, h_begin + Hc, s_epi);
  }
  allow_dependent_launch();
#endif
}

// cudaOccupancyMaxActiveClusters for clusters of C CTAs of `kernel` (kThreads threads,
// `smem` bytes of dynamic shared memory each) on the current device.
cudaError_t max_active_clusters(const void *kernel, int C, size_t smem, int *clusters) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(C);
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = C;
  attr.val.clusterDim.y = attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cudaOccupancyMaxActiveClusters(clusters, kernel, &cfg);
}

// How many clusters of `kernel` fit on the current device at once: the persistent grid.
// Asked once per (device, kernel, shared memory size) and cached; never zero (a cluster
// that cannot be resident was excluded when the context was created).
int resident_clusters(const void *kernel, int C, size_t smem) {
  struct Entry {
    int device;
    const void *kernel;
    size_t smem;
    int clusters;
  };
  static std::mutex mu;
  static Entry cache[64];
  static int n_cached = 0;
  int device = 0;
  MHC_CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mu);
  for (int i = 0; i < n_cached; ++i)
    if (cache[i].device == device && cache[i].kernel == kernel && cache[i].smem == smem) return cache[i].clusters;
  int clusters = 0;
  // The first call may come while the caller's stream is being captured into a graph: the
  // query enqueues nothing, so let it through whatever the thread's capture mode is.
  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  (void)cudaThreadExchangeStreamCaptureMode(&mode);
  const cudaError_t err = max_active_clusters(kernel, C, smem, &clusters);
  (void)cudaThreadExchangeStreamCaptureMode(&mode);
  MHC_CUDA_CHECK(err);
  clusters = std::max(clusters, 1);
  if (n_cached < 64) cache[n_cached++] = {device, kernel, smem, clusters};
  return clusters;
}

template <int NOUT, bool kNorm, int C, bool kVec>
void launch_one(const ClusterPreArgs &a, const LaunchOptions &opt) {
  auto kernel = cluster_pre_kernel<NOUT, kNorm, C, kVec>;
  const size_t smem = fn_smem_bytes(NOUT, a.f.H, C);
  const int64_t blocks = (a.f.T + kTokens - 1) / kTokens;
  const int64_t clusters = std::min<int64_t>(blocks, resident_clusters(reinterpret_cast<const void *>(kernel), C, smem));
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(clusters * C));
  cfg.blockDim = dim3(kThreads);
  cfg.dynamicSmemBytes = smem;
  launch_kernel_cfg(kernel, cfg, opt.with_cluster(C), a);
}

template <int NOUT, bool kNorm, int C>
void launch_aligned_or_not(const ClusterPreArgs &a, bool vec, const LaunchOptions &opt) {
  if (vec) launch_one<NOUT, kNorm, C, true>(a, opt);
  else launch_one<NOUT, kNorm, C, false>(a, opt);
}

template <int C>
void launch_cluster_size(int n_out, const ClusterPreArgs &a, bool vec, const LaunchOptions &opt) {
  if (n_out == 4) return launch_aligned_or_not<4, false, C>(a, vec, opt);
  if (a.f.norm_weight) return launch_aligned_or_not<24, true, C>(a, vec, opt);
  launch_aligned_or_not<24, false, C>(a, vec, opt);
}

// Calls f(kernel, C) for every instantiation with clusters of C CTAs.
template <int C, class F>
void for_each_kernel_of_size(F &f) {
  auto call = [&](auto kernel) { f(reinterpret_cast<const void *>(kernel), C); };
  call(cluster_pre_kernel<4, false, C, true>);
  call(cluster_pre_kernel<4, false, C, false>);
  call(cluster_pre_kernel<24, false, C, true>);
  call(cluster_pre_kernel<24, false, C, false>);
  call(cluster_pre_kernel<24, true, C, true>);
  call(cluster_pre_kernel<24, true, C, false>);
}

// Calls f(kernel, C) for every instantiation.
template <class F>
void for_each_kernel(F &&f) {
  for_each_kernel_of_size<8>(f);
  for_each_kernel_of_size<16>(f);
}

}  // namespace

bool cluster_fits(int n_out, int cluster_ctas, int64_t H) {
  if (cluster_ctas != 8 && cluster_ctas != 16) return false;
  if (H % (static_cast<int64_t>(cluster_ctas) * kChunk) != 0) return false;  // whole steps
  return fn_smem_bytes(n_out, H, cluster_ctas) + static_smem_bytes(n_out) <= kMaxSmemPerCta;
}

void launch_prenorm_cluster(int n_out, const ClusterPreArgs &a, const GemmConfig &c,
                            const LaunchOptions &opt) {
  const bool vec = is_aligned16(a.f.residual) && is_aligned16(a.f.out) && is_aligned16(a.fn) &&
                   (a.f.norm_weight == nullptr || is_aligned16(a.f.norm_weight));
  if (c.splits == 16) return launch_cluster_size<16>(n_out, a, vec, opt);
  launch_cluster_size<8>(n_out, a, vec, opt);
}

int configure_cluster_kernels() {
  // The budget of cluster_fits() is the sm_90 opt-in maximum; a device that offers less
  // (a later architecture running the PTX) gets no cluster paths rather than a failure.
  int device = 0, optin = 0;
  MHC_CUDA_CHECK(cudaGetDevice(&device));
  MHC_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  if (optin < kMaxSmemPerCta) return 0;
  // Every kernel may take up to the whole opt-in shared memory for its fn slice; clusters of
  // 16 CTAs are beyond the portable size 8 and need their own opt-in.
  bool ok = true;
  for_each_kernel([&ok](const void *kernel, int C) {
    ok = ok && cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    kMaxSmemPerCta - static_cast<int>(static_smem_bytes(24))) == cudaSuccess;
    if (C == 16)
      ok = ok && cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) == cudaSuccess;
  });
  if (!ok) {
    (void)cudaGetLastError();  // not sticky; clear it and run the split-K paths
    return 0;
  }
  // Can one cluster of the largest configuration be resident at all (whole GPCs free, no
  // MIG slice too small)? Asked here, so the call path never meets an unlaunchable cluster.
  int largest = 0;
  for (int C : {16, 8}) {
    int clusters = 0;
    const void *kernel = C == 16 ? reinterpret_cast<const void *>(cluster_pre_kernel<24, true, 16, false>)
                                 : reinterpret_cast<const void *>(cluster_pre_kernel<24, true, 8, false>);
    if (max_active_clusters(kernel, C, kMaxSmemPerCta - static_smem_bytes(24), &clusters) != cudaSuccess) {
      (void)cudaGetLastError();  // the query's error is not sticky; clear it
      continue;
    }
    if (clusters > 0) {
      largest = C;
      break;
    }
  }
  return largest;
}

}  // namespace mhc::cuda
