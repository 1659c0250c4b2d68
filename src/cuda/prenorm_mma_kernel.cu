// Tensor-core variant of the split-K prenorm GEMM, for large T (prefill). Same contract and
// partial layout as prenorm_gemm_kernel.cu, selected by GemmConfig::variant.
//
// fp32-class accuracy from bf16 tensor cores: the streams are bf16 already (exact), and each
// fp32 weight is split (by a small kernel, once per call, into the workspace) into three
// bf16 parts hi + mid + lo (24 significant bits), so
// X . fn = X . lo + X . mid + X . hi with exact products and fp32 accumulation
// (mma.sync m16n8k16, 9 MMAs per 16x16 tile of tokens x channels for the 24 outputs).
//
// Layout: a CTA of 4 warps owns 128 tokens and one K-split; each warp owns 32 tokens
// (2 m-tiles). Per k-step of 32 channels a lane (g = lane/4, c = lane%4) reads 8 consecutive
// channels 8c..8c+7 of its rows g and g+8 with one 16-byte load each (L1 wavefronts, not
// FLOPs, bound this kernel: wide loads halve them). Those 8 channels feed two MMAs: the
// k-slots (2c, 2c+1, 2c+8, 2c+9) of the first map to channels 8c..8c+3, of the second to
// 8c+4..8c+7, for both A (streams) and B (weight parts). At these sizes hc_post_pre runs as
// the post kernel followed by this plain hc_pre (measured faster than fusing the post into
// this kernel, src/cuda/TUNING.md), so there is no fused variant.
#include <cuda_runtime.h>

#include "cuda/cuda_check.hpp"
#include "cuda/device_common.cuh"
#include "cuda/kernels.hpp"
#include "cuda/mma_common.cuh"

namespace mhc::cuda {
namespace {

constexpr int kMmaWarps = 4;
constexpr int kMmaThreads = kMmaWarps * 32;
constexpr int kMTiles = 2;                                  // m-tiles of 16 tokens per warp
constexpr int kTokensPerWarp = 16 * kMTiles;
constexpr int kTokensPerCta = kTokensPerWarp * kMmaWarps;   // 128
constexpr int kChunk = 32;                                  // channels per k-step
constexpr int kNTiles = 24 / 8;

// Splits fn [24, K] fp32 into three bf16 parts hi + mid + lo, stored as [3][24][K]: once
// per call, so the MMA kernel reads ready B fragments instead of re-splitting per warp.
__global__ void __launch_bounds__(256) split_weights_kernel(const float *fn, uint16_t *parts,
                                                              int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * 256 + threadIdx.x;
  wait_for_prior_grid();
  if (i >= n) return;
  uint16_t p[3];
  split_bf16x3(fn[i], p);
#pragma unroll
  for (int k = 0; k < 3; ++k) parts[k * n + i] = p[k];
}

template <bool kVec>
// At most 168 registers: 3 CTAs (12 warps) per SM.
__global__ void __launch_bounds__(kMmaThreads, 3) prenorm_mma_kernel(const GemmArgs a) {
  const int64_t T = a.T, H = a.H, K = 4 * H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const int split = blockIdx.y;
  const int64_t cta_t0 = static_cast<int64_t>(blockIdx.x) * kTokensPerCta;
  const int64_t n_chunks = (H + kChunk - 1) / kChunk;
  const int64_t chunk_begin = split * a.vectors_per_split;  // here: chunks per split
  const int64_t chunk_end = min(n_chunks, chunk_begin + a.vectors_per_split);

  wait_for_prior_grid();

  // The 4 token rows of this lane: m-tile mt, half r (row g or g + 8).
  int64_t row_t[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) row_t[mt][r] = cta_t0 + warp * kTokensPerWarp + mt * 16 + r * 8 + g;

  float acc[kMTiles][kNTiles][4];
  float sum_sq[kMTiles][2];
  zero_accumulators(acc, sum_sq);

  for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
    const int64_t h = chunk * kChunk + 8 * c;
    uint4 xs[kMTiles][2][4];  // [m-tile][row half][stream]: 8 bf16 channels each
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int64_t t = row_t[mt][r];
        if (t >= T) {
#pragma unroll
          for (int j = 0; j < 4; ++j) xs[mt][r][j] = make_uint4(0, 0, 0, 0);
          continue;
        }
#pragma unroll
        for (int j = 0; j < 4; ++j) xs[mt][r][j] = load_bf16x8<kVec>(a.residual + (t * 4 + j) * H, h, H);
      }

#pragma unroll
    for (int j = 0; j < 4; ++j) {
      uint4 b[kNTiles][3];  // weight part p of output nt*8 + g, channels 8c..8c+7
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
        for (int p = 0; p < 3; ++p)
          b[nt][p] = load_bf16x8<kVec>(
              a.fn_parts + (static_cast<int64_t>(p) * 24 + nt * 8 + g) * K + j * H, h, H);
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        const uint4 &r0 = xs[mt][0][j], &r1 = xs[mt][1][j];
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) mma_bf16x3_step(acc[mt][nt], r0, r1, b[nt]);
        sum_sq[mt][0] = sq_sum_bf16x8(r0, sum_sq[mt][0]);
        sum_sq[mt][1] = sq_sum_bf16x8(r1, sum_sq[mt][1]);
      }
    }
  }

  // Partials (mma_common.cuh has the fragment layout); rows past T are dropped.
  float *part = a.partials + static_cast<int64_t>(split) * T * 25;
  const int64_t warp_t0 = cta_t0 + warp * kTokensPerWarp;
  for_each_partial<24>(acc, sum_sq, [&](int row, int o, float v) {
    const int64_t t = warp_t0 + row;
    if (t < T) part[t * 25 + o] = v;
  });
  allow_dependent_launch();
}

}  // namespace

void launch_split_weights(const float *fn, uint16_t *fn_parts, int64_t H, const LaunchOptions &opt) {
  const int64_t n_weights = 24 * 4 * H;
  launch_kernel(split_weights_kernel, dim3(static_cast<unsigned>((n_weights + 255) / 256)),
                dim3(256), opt, fn, fn_parts, n_weights);
}

void launch_prenorm_mma(const GemmArgs &a, const GemmConfig &c, const LaunchOptions &opt) {
  const int64_t n_chunks = (a.H + kChunk - 1) / kChunk;
  // 16-byte accesses at channel 32*step + 8*lane need whole steps: H % 32 == 0.
  const bool vec = a.H % kChunk == 0 && is_aligned16(a.residual);
  GemmArgs args = a;
  args.vectors_per_split = (n_chunks + c.splits - 1) / c.splits;
  const dim3 grid(static_cast<unsigned>((a.T + kTokensPerCta - 1) / kTokensPerCta),
                  static_cast<unsigned>(c.splits));
  auto kernel = vec ? prenorm_mma_kernel<true> : prenorm_mma_kernel<false>;
  launch_kernel(kernel, grid, dim3(kMmaThreads), opt, args);
}

}  // namespace mhc::cuda
