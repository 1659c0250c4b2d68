// Tensor-core variant of the split-K prenorm GEMM, for large T (prefill). Same contract and
// partial layout as prenorm_gemm_kernel.cu, selected by GemmConfig::variant.
//
// fp32-class accuracy from bf16 tensor cores: the streams are bf16 already (exact), and each
// fp32 weight is split (by a small kernel, once per call, into the workspace) into three
// bf16 parts hi + mid + lo (24 significant bits), so
// X . fn = X . lo + X . mid + X . hi with exact products and fp32 accumulation.
//
// Orientation: the MMA computes mixes^T = fn x X^T (mma.sync m16n8k16): the 24 outputs are
// the M side (two m-tiles, rows 24..31 zero weights) and the tokens the N side. Then a lane's
// B fragment is two consecutive registers of one token's 16-byte load, and the split kernel
// stores the weight parts in A-fragment order, so both operands go from one 16-byte load
// straight into the MMA (with tokens as the M side, the A fragment interleaves two tokens'
// rows, which cost ~4 register moves per MMA). Per k-step of 32 channels of one stream a
// lane (g = lane/4, c = lane%4) takes channels 8c..8c+7 of its tokens; k-slots (2c, 2c+1,
// 2c+8, 2c+9) of the first MMA are channels 8c..8c+3, of the second 8c+4..8c+7, for both
// operands.
//
// Layout: a CTA of 4 warps owns 128 tokens and one K-split; each warp owns 32 tokens
// (4 n-tiles of 8) and all 24 outputs. The K order is by steps of 64 channels of one stream
// (step = (pair of 32-channel chunks, stream j)), each step two 32-channel sub-steps: a
// split owns whole steps, and a token row's 128 bytes of a step are read together, a whole
// cache line (64-byte halves read at different times cost 35 % of the read bandwidth in a
// microbenchmark of this access pattern on an H200: 2.6 vs 4.0 TB/s; src/cuda/TUNING.md).
// Where a split has >= 2 steps and the inputs are aligned (H % 32 == 0, 16-byte pointers),
// the operands go through a cp.async pipeline in shared memory: per step the CTA copies its
// 128 token rows and the step's 12 KB of weight fragments ahead of the MMAs. Otherwise each
// lane loads its operands straight into registers, one sub-step ahead. Both paths run the
// same MMAs in the same order, so they give the same bits. A sub-step past H (the second
// half of the last step when H % 64 == 32) reads zeros and adds nothing. At these sizes
// hc_post_pre runs as the post kernel followed by this plain hc_pre (measured faster than
// fusing the post into this kernel, src/cuda/TUNING.md), so there is no fused variant.
#include <cuda_runtime.h>

#include "cuda/cuda_check.hpp"
#include "cuda/device_common.cuh"
#include "cuda/kernels.hpp"
#include "cuda/mma_common.cuh"

namespace mhc::cuda {
namespace {

constexpr int kMmaWarps = 4;
constexpr int kMmaThreads = kMmaWarps * 32;
constexpr int kNTiles = 4;                                  // n-tiles of 8 tokens per warp
constexpr int kTokensPerWarp = 8 * kNTiles;
constexpr int kTokensPerCta = kTokensPerWarp * kMmaWarps;   // 128
constexpr int kChunk = 32;                                  // channels per sub-step
constexpr int kStepChannels = kMmaStepChannels;             // channels per step: 64
constexpr int kSubSteps = kStepChannels / kChunk;           // 2
// NOUT outputs (24: hc_pre, 4: hc_head) take m-tiles of 16 rows (2 / 1; rows past NOUT are
// zero weights). Weight fragments of one sub-step: [m-tile][part][half][lane] x 16 bytes,
// where half 0 feeds the lane's channels 8c..8c+3 and half 1 8c+4..8c+7 (the split kernel
// writes this order); a step's two sub-steps follow each other.
template <int NOUT>
constexpr int out_tiles() { return (NOUT + 15) / 16; }
template <int NOUT>
constexpr int frags_per_sub() { return out_tiles<NOUT>() * 3 * 2 * 32; }  // uint4s: 6 / 3 KB
static_assert(kSubSteps * frags_per_sub<24>() * 16 == kMmaFragBytesPerStep, "the workspace size (gemm_config.cpp)");
// The shared-memory pipeline of the aligned path: per stage (one step), one 128-byte row (64
// bf16 channels) per token of the CTA, then the step's weight fragments. In a row, the
// 64-byte halves (sub-steps) swap places on odd rows, so a quarter-warp's 16-byte reads (two
// consecutive rows, same sub-step) hit 32 different banks; fragment reads are 128
// consecutive bytes per 8 lanes. Two stages: 56 KB, four CTAs per SM (228 KB), 64 KB of
// streams in flight per SM, as many as the 3-stage pipeline of 32-channel steps had.
constexpr int kStages = 2;
constexpr int kRowBytes = kStepChannels * 2;
constexpr int kTokenBytes = kTokensPerCta * kRowBytes;
template <int NOUT>
constexpr int stage_bytes() { return kTokenBytes + kSubSteps * frags_per_sub<NOUT>() * 16; }
template <int NOUT>
constexpr int pipe_smem_bytes() { return kStages * stage_bytes<NOUT>(); }  // 57,344 B for 24
constexpr int kPipeCtasPerSm = kStages == 2 ? 4 : 2;

// Sub-step u of the global order (steps of 64 channels by (pair, stream), then halves):
// its stream and first channel.
__device__ __forceinline__ int sub_stream(int64_t u) { return static_cast<int>(u / kSubSteps % 4); }
__device__ __forceinline__ int64_t sub_channel(int64_t u) {
  return (u / (4 * kSubSteps) * kSubSteps + u % kSubSteps) * kChunk;
}

// Splits fn [NOUT, K] fp32 into three bf16 parts hi + mid + lo, stored as A fragments in the
// global sub-step order, so a split's steps are contiguous. Thread (sub-step, m-tile, half,
// lane) splits its 8 weights (outputs o and o + 8, 4 channels each) and writes one fragment
// per part. Channels >= H and outputs >= NOUT are zero weights. n_threads: the workspace's
// fragments / 3 parts (weight_parts_bytes sizes them).
template <int NOUT>
__global__ void __launch_bounds__(256) split_weights_kernel(const float *fn, uint4 *frags, int64_t H,
                                                              int64_t n_threads) {
  constexpr int kOutTiles = out_tiles<NOUT>();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * 256 + threadIdx.x;
  wait_for_prior_grid();
  if (i >= n_threads) return;
  const int lane = static_cast<int>(i % 32), half = static_cast<int>(i / 32 % 2);
  const int mt = static_cast<int>(i / 64 % kOutTiles);
  const int64_t u = i / (64 * kOutTiles);
  const int j = sub_stream(u);
  const int g = lane / 4, c = lane % 4;
  const int64_t h0 = sub_channel(u) + 8 * c + 4 * half;
  // fragment word w: rows (o, o + 8, o, o + 8), channel pairs (h0, h0, h0 + 2, h0 + 2)
  uint32_t words[3][4];
#pragma unroll
  for (int w = 0; w < 4; ++w) {
    const int o = mt * 16 + g + 8 * (w % 2);
    const int64_t h = h0 + 2 * (w / 2);
    uint16_t lo[3] = {0, 0, 0}, hi[3] = {0, 0, 0};
    if (o < NOUT && h < H) split_bf16x3(fn[o * 4 * H + j * H + h], lo);
    if (o < NOUT && h + 1 < H) split_bf16x3(fn[o * 4 * H + j * H + h + 1], hi);
#pragma unroll
    for (int p = 0; p < 3; ++p) words[p][w] = lo[p] | (static_cast<uint32_t>(hi[p]) << 16);
  }
#pragma unroll
  for (int p = 0; p < 3; ++p)
    frags[((u * kOutTiles + mt) * 3 + p) * 64 + half * 32 + lane] =
        make_uint4(words[p][0], words[p][1], words[p][2], words[p][3]);
}

// acc += fn fragments (m16 x k16, A) x one token's channels (k16 x n8, B: two registers).
__device__ __forceinline__ void mma_bf16_a4(float c[4], const uint4 &a, uint32_t b0, uint32_t b1) {
  const uint32_t av[4] = {a.x, a.y, a.z, a.w}, bv[2] = {b0, b1};
  mma_bf16(c, av, bv);
}

// kPipe (needs kVec): the shared-memory pipeline, at most 128 registers at 4 CTAs per SM.
// Register path: its one-sub-step prefetch of both operands needs ~200 registers: 2 CTAs per
// SM (it serves T <= 128, whose grids have about that many CTAs per SM, and unaligned inputs).
template <int NOUT, bool kVec, bool kPipe>
__global__ void __launch_bounds__(kMmaThreads, kPipe ? kPipeCtasPerSm : 2) prenorm_mma_kernel(const GemmArgs a) {
  static_assert(kVec || !kPipe, "the pipeline copies 16-byte pieces");
  constexpr int kOutTiles = out_tiles<NOUT>(), kFragsPerSub = frags_per_sub<NOUT>();
  constexpr int kStageBytes = stage_bytes<NOUT>();
  const int64_t T = a.T, H = a.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  // 1-D grid, split fastest: the CTAs resident at once cover whole token rows of a compact
  // token range (all splits of a block together), not a few channels of every token. Token
  // blocks go in descending order: the kernel before us (the post, or the previous op's
  // finalize) went ascending, so what it touched last is still in L2 when we start, and the
  // finalize after us (ascending) starts on what we read last.
  const int64_t n_blocks = (T + kTokensPerCta - 1) / kTokensPerCta;
  const int n_splits = static_cast<int>(gridDim.x / n_blocks);
  const int split = static_cast<int>(blockIdx.x % n_splits);
  const int64_t cta_t0 = (n_blocks - 1 - blockIdx.x / n_splits) * kTokensPerCta;
  const int64_t n_pairs = (H + kStepChannels - 1) / kStepChannels;  // 64-channel columns
  const int64_t pair_begin = split * a.vectors_per_split;           // here: pairs per split
  const int64_t pair_end = min(n_pairs, pair_begin + a.vectors_per_split);
  const int n_steps = 4 * static_cast<int>(max(int64_t{0}, pair_end - pair_begin));
  const int64_t u_begin = pair_begin * 4 * kSubSteps;  // the split's first global sub-step
  // this split's weight fragments: sub-step u at w_frags + u * kFragsPerSub
  const uint4 *w_frags = reinterpret_cast<const uint4 *>(a.fn_parts) + u_begin * kFragsPerSub;

  wait_for_prior_grid();

  float acc[kOutTiles][kNTiles][4];
  float sum_sq[kNTiles];
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt) {
    sum_sq[nt] = 0.0f;
#pragma unroll
    for (int mt = 0; mt < kOutTiles; ++mt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.0f;
  }

  // One sub-step: per output element the parts go small first, each as channels 8c..8c+3
  // then 8c+4..8c+7, in the same order on both paths. xs[nt]: the lane's 8 channels of token
  // nt * 8 + g; w[mt][p][half]: weight fragments.
  auto mma_step = [&](const uint4(&xs)[kNTiles], const uint4(&w)[kOutTiles][3][2]) {
#pragma unroll
    for (int mt = 0; mt < kOutTiles; ++mt)
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
        for (int p = 2; p >= 0; --p) {
          mma_bf16_a4(acc[mt][nt], w[mt][p][0], xs[nt].x, xs[nt].y);
          mma_bf16_a4(acc[mt][nt], w[mt][p][1], xs[nt].z, xs[nt].w);
        }
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt) sum_sq[nt] = sq_sum_bf16x8(xs[nt], sum_sq[nt]);
  };
  // the lane's token of n-tile nt
  auto token_of = [&](int nt) { return cta_t0 + warp * kTokensPerWarp + nt * 8 + g; };

  if constexpr (kPipe) {
    extern __shared__ uint4 s_pipe[];
    char *pipe = reinterpret_cast<char *>(s_pipe);
    // Thread i copies token pieces i + 128k (row i / 8 + 16k, 16-byte piece i % 8 of the
    // row's 128 bytes: sub-step q = piece / 4) and fragment pieces i + 128k of every stage.
    // Token row r of step (pair, j) comes from residual + (t0 + r) * 4H + j * H + pair * 64;
    // rows past T and a sub-step past H are zero-filled (src mapped, unread).
    constexpr int kTokenPieces = kTokenBytes / 16 / kMmaThreads;  // 8
    constexpr int kRowStride = kMmaThreads / 8;                   // rows between a thread's pieces
    constexpr int kFragPieces = kSubSteps * kFragsPerSub / kMmaThreads;  // 6 / 3
    const int piece = threadIdx.x % 8, q = piece / 4, row0 = threadIdx.x / 8;
    const int dst_piece = ((q ^ (row0 & 1)) * 4 + piece % 4);  // kRowStride is even: same parity
    const int64_t t0 = cta_t0 + row0;
    const uint16_t *src0 = a.residual + (t0 < T ? t0 : 0) * 4 * H + piece * 8;
    const int64_t rows_left = (T - t0 + kRowStride - 1) / kRowStride;  // pieces k with t < T
    const int rows_valid = rows_left <= 0 ? 0 : static_cast<int>(min(rows_left, int64_t{kTokenPieces}));
    const uint4 *frag_src = w_frags + threadIdx.x;
    auto issue = [&](int s, int buf) {
      const int64_t pair = pair_begin + s / 4;
      const int64_t offset = (s % 4) * H + pair * kStepChannels;
      const bool in_h = (pair * kSubSteps + q) * kChunk < H;
      char *stage = pipe + buf * kStageBytes;
#pragma unroll
      for (int k = 0; k < kTokenPieces; ++k) {
        const bool valid = in_h && k < rows_valid;
        const uint16_t *src = src0 + (valid ? offset + static_cast<int64_t>(k) * kRowStride * 4 * H : 0);
        cp_async16(stage + ((row0 + k * kRowStride) * 8 + dst_piece) * 16, src, valid);
      }
      const uint4 *src = frag_src + static_cast<int64_t>(s) * kSubSteps * kFragsPerSub;
#pragma unroll
      for (int k = 0; k < kFragPieces; ++k)
        cp_async16(stage + kTokenBytes + (threadIdx.x + k * kMmaThreads) * 16, src + k * kMmaThreads, true);
    };
#pragma unroll
    for (int st = 0; st < kStages - 1; ++st) {
      if (st < n_steps) issue(st, st);
      cp_async_commit();
    }
    int buf = 0;  // stage of step s
    for (int s = 0; s < n_steps; ++s) {
      cp_async_wait<kStages - 2>();  // this thread's copies of step s have landed
      __syncthreads();               // everyone's have; and everyone is done with step s - 1
      const int issue_buf = buf == 0 ? kStages - 1 : buf - 1;  // (s + kStages - 1) % kStages
      if (s + kStages - 1 < n_steps) issue(s + kStages - 1, issue_buf);
      cp_async_commit();
      const char *stage = pipe + buf * kStageBytes;
      buf = buf == kStages - 1 ? 0 : buf + 1;
#pragma unroll
      for (int sq = 0; sq < kSubSteps; ++sq) {
        uint4 xs[kNTiles], w[kOutTiles][3][2];
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) {
          const int r = warp * kTokensPerWarp + nt * 8 + g;
          xs[nt] = *reinterpret_cast<const uint4 *>(stage + (r * 8 + (sq ^ (g & 1)) * 4 + c) * 16);
        }
        const uint4 *frag = reinterpret_cast<const uint4 *>(stage + kTokenBytes) + sq * kFragsPerSub + lane;
#pragma unroll
        for (int mt = 0; mt < kOutTiles; ++mt)
#pragma unroll
          for (int p = 0; p < 3; ++p)
#pragma unroll
            for (int hf = 0; hf < 2; ++hf) w[mt][p][hf] = frag[((mt * 3 + p) * 2 + hf) * 32];
        mma_step(xs, w);
      }
    }
    cp_async_wait<0>();
  } else {
    // The loads of sub-step u + 1 (streams from HBM, weight fragments from L2) are issued
    // before the MMAs of sub-step u, so each warp always has a sub-step's loads in flight.
    const int n_subs = n_steps * kSubSteps;
    auto load_step = [&](int u, uint4(&xs)[kNTiles], uint4(&w)[kOutTiles][3][2]) {
      const int j = sub_stream(u_begin + u);
      const int64_t h = sub_channel(u_begin + u) + 8 * c;
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
        const int64_t t = token_of(nt);
        xs[nt] = t < T && h < H ? load_bf16x8<kVec>(a.residual + (t * 4 + j) * H, h, H) : make_uint4(0, 0, 0, 0);
      }
      const uint4 *frag = w_frags + static_cast<int64_t>(u) * kFragsPerSub + lane;
#pragma unroll
      for (int mt = 0; mt < kOutTiles; ++mt)
#pragma unroll
        for (int p = 0; p < 3; ++p)
#pragma unroll
          for (int hf = 0; hf < 2; ++hf) w[mt][p][hf] = __ldg(frag + ((mt * 3 + p) * 2 + hf) * 32);
    };
    uint4 xs[kNTiles], w[kOutTiles][3][2];
    if (n_subs > 0) load_step(0, xs, w);
    for (int u = 0; u < n_subs; ++u) {
      uint4 xs_next[kNTiles], w_next[kOutTiles][3][2];
      const bool more = u + 1 < n_subs;
      if (more) load_step(u + 1, xs_next, w_next);
      mma_step(xs, w);
      if (more) {
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) xs[nt] = xs_next[nt];
#pragma unroll
        for (int mt = 0; mt < kOutTiles; ++mt)
#pragma unroll
          for (int p = 0; p < 3; ++p) w[mt][p][0] = w_next[mt][p][0], w[mt][p][1] = w_next[mt][p][1];
      }
    }
  }

  // Partials: C fragment element e of (m-tile mt, n-tile nt) is output mt * 16 + g + 8 * (e / 2)
  // of token nt * 8 + 2c + e % 2; the sum of squares of token nt * 8 + g is combined over the
  // row's 4 lanes by butterfly and written by lane c == 0. Tokens past T are dropped.
  float *part = a.partials + static_cast<int64_t>(split) * T * (NOUT + 1);
  const int64_t warp_t0 = cta_t0 + warp * kTokensPerWarp;
#pragma unroll
  for (int nt = 0; nt < kNTiles; ++nt) {
    float q = sum_sq[nt];
    q += __shfl_xor_sync(0xffffffffu, q, 1);
    q += __shfl_xor_sync(0xffffffffu, q, 2);
    if (c == 0 && token_of(nt) < T) part[token_of(nt) * (NOUT + 1) + NOUT] = q;
#pragma unroll
    for (int mt = 0; mt < kOutTiles; ++mt)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int o = mt * 16 + g + 8 * (e / 2);
        const int64_t t = warp_t0 + nt * 8 + 2 * c + e % 2;
        if (o < NOUT && t < T) part[t * (NOUT + 1) + o] = acc[mt][nt][e];
      }
  }
  allow_dependent_launch();
}

// The fn split into the workspace (weight_parts_bytes(H), sized for 24 outputs; 4 use the
// first half), then the GEMM, chained to it.
template <int NOUT>
void launch_mma(const GemmArgs &a, const GemmConfig &c, const LaunchOptions &opt) {
  const int64_t split_threads = static_cast<int64_t>(weight_parts_bytes(a.H) / kMmaFragBytesPerStep) *
                                kSubSteps * out_tiles<NOUT>() * 64;
  launch_kernel(split_weights_kernel<NOUT>, dim3(static_cast<unsigned>((split_threads + 255) / 256)), dim3(256),
                opt, a.fn, reinterpret_cast<uint4 *>(a.fn_parts), a.H, split_threads);
  const int64_t n_pairs = (a.H + kStepChannels - 1) / kStepChannels;
  // 16-byte accesses at channel 32*sub-step + 8*lane need whole sub-steps: H % 32 == 0.
  const bool vec = a.H % kChunk == 0 && is_aligned16(a.residual);
  GemmArgs args = a;
  args.vectors_per_split = (n_pairs + c.splits - 1) / c.splits;
  // The pipeline where a split has >= 2 steps (the T > 128 rows of the table); with the one
  // step of 64-channel splits its prologue and per-step barrier measured slower than the
  // register path at H = 4096 (src/cuda/TUNING.md). Same bits either way.
  const bool pipe = vec && args.vectors_per_split >= 2;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>((a.T + kTokensPerCta - 1) / kTokensPerCta * c.splits));
  cfg.blockDim = dim3(kMmaThreads);
  cfg.dynamicSmemBytes = pipe ? pipe_smem_bytes<NOUT>() : 0;
  launch_kernel_cfg(pipe ? prenorm_mma_kernel<NOUT, true, true>
                         : vec ? prenorm_mma_kernel<NOUT, true, false> : prenorm_mma_kernel<NOUT, false, false>,
                    cfg, opt.chained(), args);
}

}  // namespace

void configure_mma_kernels() {
  // The pipeline's two 28 KB stages exceed the default 48 KB of dynamic shared memory.
  MHC_CUDA_CHECK(cudaFuncSetAttribute(prenorm_mma_kernel<24, true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      pipe_smem_bytes<24>()));
  MHC_CUDA_CHECK(cudaFuncSetAttribute(prenorm_mma_kernel<4, true, true>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      pipe_smem_bytes<4>()));
}

void launch_prenorm_mma(int n_out, const GemmArgs &a, const GemmConfig &c, const LaunchOptions &opt) {
  if (n_out == 24) return launch_mma<24>(a, c, opt);
  launch_mma<4>(a, c, opt);
}

}  // namespace mhc::cuda
