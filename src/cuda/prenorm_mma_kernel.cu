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
// (2 m-tiles). Per k-step of 32 channels of one stream, a lane (g = lane/4, c = lane%4)
// takes the 8 consecutive channels 8c..8c+7 of its rows g and g+8 as one 16-byte value
// each. Those 8 channels feed two MMAs: the k-slots (2c, 2c+1, 2c+8, 2c+9) of the first map
// to channels 8c..8c+3, of the second to 8c+4..8c+7, for both A (streams) and B (weight
// parts).
//
// Where a split has >= 16 steps and the inputs are aligned (H % 32 == 0, 16-byte pointers),
// the operands go through a 3-stage cp.async pipeline in shared memory: per step the CTA
// copies its 128 token rows and the 72 weight-part rows two steps ahead of the MMAs, so an SM
// keeps ~100 KB of loads in flight without spending registers on them. Otherwise each lane
// loads its fragments straight into registers, one step ahead. Both paths run the same MMAs
// in the same order, so they give the same bits. At these sizes hc_post_pre runs as
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
// The shared-memory pipeline of the aligned path: per stage, one 64-byte row (32 bf16
// channels) per token of the CTA and per weight-part row (3 parts x 24 outputs). A lane's
// 16-byte fragment reads (8 lanes = 2 consecutive rows = 128 bytes) are conflict-free.
constexpr int kStages = 3;
constexpr int kRowBytes = kChunk * 2;
constexpr int kStageRows = kTokensPerCta + 3 * 24;
constexpr int kStageBytes = kStageRows * kRowBytes;
constexpr int kPipeSmemBytes = kStages * kStageBytes;  // 38,400 B
static_assert(kPipeSmemBytes <= 48 * 1024, "within the default dynamic shared memory limit");

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

// kPipe (needs kVec): the shared-memory pipeline, at most 102 registers: 5 CTAs per SM.
// Register path: at most 168 registers (its one-step prefetch needs them), 3 CTAs per SM.
template <bool kVec, bool kPipe>
__global__ void __launch_bounds__(kMmaThreads, kPipe ? 5 : 3) prenorm_mma_kernel(const GemmArgs a) {
  static_assert(kVec || !kPipe, "the pipeline copies 16-byte pieces");
  const int64_t T = a.T, H = a.H, K = 4 * H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const int split = blockIdx.y;
  const int64_t cta_t0 = static_cast<int64_t>(blockIdx.x) * kTokensPerCta;
  const int64_t n_chunks = (H + kChunk - 1) / kChunk;
  const int64_t chunk_begin = split * a.vectors_per_split;  // here: chunks per split
  const int64_t chunk_end = min(n_chunks, chunk_begin + a.vectors_per_split);

  wait_for_prior_grid();

  float acc[kMTiles][kNTiles][4];
  float sum_sq[kMTiles][2];
  zero_accumulators(acc, sum_sq);

  // Step s = (chunk s / 4, stream s % 4) of this split; per step and m-tile, a lane's rows
  // g and g + 8 (8 channels each) and its weight fragments feed mma_bf16x3_step, in the
  // same order on both paths.
  const int64_t n_steps = 4 * (chunk_end - chunk_begin);
  auto mma_step = [&](const uint4(&xs)[kMTiles][2], const uint4(&b)[kNTiles][3]) {
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt) {
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) mma_bf16x3_step(acc[mt][nt], xs[mt][0], xs[mt][1], b[nt]);
      sum_sq[mt][0] = sq_sum_bf16x8(xs[mt][0], sum_sq[mt][0]);
      sum_sq[mt][1] = sq_sum_bf16x8(xs[mt][1], sum_sq[mt][1]);
    }
  };
  if constexpr (kPipe) {
    extern __shared__ uint4 s_pipe[];
    char *pipe = reinterpret_cast<char *>(s_pipe);
    // Thread i copies the 16-byte pieces i, i + 128, ... of every stage (4 pieces a row).
    // A piece's source is base + j * H + h0 for step (chunk, j) in both operands (token row t:
    // residual + 4tH; weight-part row w: fn_parts + wK), so the bases are computed once.
    constexpr int kPieces = kStageRows * 4;
    constexpr int kPiecesPerThread = (kPieces + kMmaThreads - 1) / kMmaThreads;
    const uint16_t *src_base[kPiecesPerThread];
    unsigned valid_mask = 0;  // bit k: piece k is a row to copy (not past T, not past the stage)
#pragma unroll
    for (int k = 0; k < kPiecesPerThread; ++k) {
      const int i = threadIdx.x + k * kMmaThreads, row = i / 4, piece = i % 4;
      bool valid = i < kPieces;
      if (row < kTokensPerCta) {
        const int64_t t = cta_t0 + row;
        valid = valid && t < T;
        src_base[k] = a.residual + (valid ? t : 0) * 4 * H + piece * 8;  // past T: mapped, unread
      } else {
        src_base[k] = a.fn_parts + static_cast<int64_t>(valid ? row - kTokensPerCta : 0) * K + piece * 8;
      }
      valid_mask |= valid ? 1u << k : 0u;
    }
    auto issue = [&](int64_t s, int buf) {
      const int64_t offset = (s % 4) * H + (chunk_begin + s / 4) * kChunk;
      char *stage = pipe + buf * kStageBytes;
#pragma unroll
      for (int k = 0; k < kPiecesPerThread; ++k) {
        const int i = threadIdx.x + k * kMmaThreads;
        if (i < kPieces) cp_async16(stage + i * 16, src_base[k] + offset, (valid_mask >> k) & 1u);
      }
    };
#pragma unroll
    for (int st = 0; st < kStages - 1; ++st) {
      if (st < n_steps) issue(st, st);
      cp_async_commit();
    }
    for (int64_t s = 0; s < n_steps; ++s) {
      cp_async_wait<kStages - 2>();  // this thread's copies of step s have landed
      __syncthreads();               // everyone's have; and everyone is done with step s - 1
      if (s + kStages - 1 < n_steps) issue(s + kStages - 1, static_cast<int>((s + kStages - 1) % kStages));
      cp_async_commit();
      const char *stage = pipe + (s % kStages) * kStageBytes;
      uint4 xs[kMTiles][2], b[kNTiles][3];
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r)
          xs[mt][r] = *reinterpret_cast<const uint4 *>(
              stage + (warp * kTokensPerWarp + mt * 16 + r * 8 + g) * kRowBytes + c * 16);
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
        for (int p = 0; p < 3; ++p)
          b[nt][p] = *reinterpret_cast<const uint4 *>(stage + (kTokensPerCta + p * 24 + nt * 8 + g) * kRowBytes + c * 16);
      mma_step(xs, b);
    }
    cp_async_wait<0>();
  } else {
    // The loads of step s + 1 (streams from HBM, weight parts from L2) are issued before the
    // MMAs of step s, so each warp always has a step's loads in flight.
    // The 4 token rows of this lane: m-tile mt, half r (row g or g + 8).
    int64_t row_t[kMTiles][2];
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) row_t[mt][r] = cta_t0 + warp * kTokensPerWarp + mt * 16 + r * 8 + g;
    auto load_step = [&](int64_t s, uint4(&xs)[kMTiles][2], uint4(&b)[kNTiles][3]) {
      const int j = static_cast<int>(s % 4);
      const int64_t h = (chunk_begin + s / 4) * kChunk + 8 * c;
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const int64_t t = row_t[mt][r];
          xs[mt][r] = t < T ? load_bf16x8<kVec>(a.residual + (t * 4 + j) * H, h, H) : make_uint4(0, 0, 0, 0);
        }
      // weight part p of output nt*8 + g, channels 8c..8c+7 of stream j
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
        for (int p = 0; p < 3; ++p)
          b[nt][p] = load_bf16x8<kVec>(a.fn_parts + (static_cast<int64_t>(p) * 24 + nt * 8 + g) * K + j * H, h, H);
    };
    uint4 xs[kMTiles][2], b[kNTiles][3];
    if (n_steps > 0) load_step(0, xs, b);
    for (int64_t s = 0; s < n_steps; ++s) {
      uint4 xs_next[kMTiles][2], b_next[kNTiles][3];
      const bool more = s + 1 < n_steps;
      if (more) load_step(s + 1, xs_next, b_next);
      mma_step(xs, b);
      if (more) {
#pragma unroll
        for (int mt = 0; mt < kMTiles; ++mt) xs[mt][0] = xs_next[mt][0], xs[mt][1] = xs_next[mt][1];
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
          for (int p = 0; p < 3; ++p) b[nt][p] = b_next[nt][p];
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
  // The pipeline where a split has >= 16 steps (the T > 512 rows of the table: 32 steps);
  // with the 8 steps of 64-channel splits its prologue and per-step barrier measured slower
  // than the register path at H = 4096 (src/cuda/TUNING.md). Same bits either way.
  const bool pipe = vec && 4 * args.vectors_per_split >= 16;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>((a.T + kTokensPerCta - 1) / kTokensPerCta), static_cast<unsigned>(c.splits));
  cfg.blockDim = dim3(kMmaThreads);
  cfg.dynamicSmemBytes = pipe ? kPipeSmemBytes : 0;
  launch_kernel_cfg(pipe ? prenorm_mma_kernel<true, true>
                         : vec ? prenorm_mma_kernel<true, false> : prenorm_mma_kernel<false, false>,
                    cfg, opt, args);
}

}  // namespace mhc::cuda
