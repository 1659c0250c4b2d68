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
// (2 m-tiles). A lane (g = lane/4, c = lane%4) reads 4 consecutive channels h..h+3 of its
// rows g and g+8; the MMA k-slots (2c, 2c+1, 2c+8, 2c+9) are mapped to those 4 channels for
// both A and B, so every load is a contiguous 8-byte (bf16) or 16-byte (fp32) access. The
// fused variant computes hc_post for those 4 channels of all 4 streams in registers, stores
// the rounded residual and feeds the same bf16 values to the same MMAs as the plain variant,
// so hc_post_pre == hc_post + hc_pre bit for bit here too.
#include <cuda_runtime.h>

#include "cuda/cuda_check.hpp"
#include "cuda/device_common.cuh"
#include "cuda/kernels.hpp"

namespace mhc::cuda {
namespace {

constexpr int kMmaWarps = 4;
constexpr int kMmaThreads = kMmaWarps * 32;
constexpr int kMTiles = 2;                                  // m-tiles of 16 tokens per warp
constexpr int kTokensPerWarp = 16 * kMTiles;
constexpr int kTokensPerCta = kTokensPerWarp * kMmaWarps;   // 128
constexpr int kChunk = 16;                                  // channels per k-step
constexpr int kNTiles = 24 / 8;

// 4 bf16 of `row` at channel h (zero beyond H), as two packed 32-bit words.
template <bool kVec>
__device__ __forceinline__ uint2 load_bf16x4(const uint16_t *row, int64_t h, int64_t H) {
  if constexpr (kVec) {
    return *reinterpret_cast<const uint2 *>(row + h);
  } else {
    uint16_t e[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) e[i] = (h + i < H) ? row[h + i] : uint16_t{0};
    return make_uint2(e[0] | (uint32_t(e[1]) << 16), e[2] | (uint32_t(e[3]) << 16));
  }
}

template <bool kVec>
__device__ __forceinline__ void store_bf16x4(uint16_t *row, int64_t h, int64_t H, uint2 u) {
  if constexpr (kVec) {
    *reinterpret_cast<uint2 *>(row + h) = u;
  } else {
#pragma unroll
    for (int i = 0; i < 4; ++i)
      if (h + i < H) row[h + i] = static_cast<uint16_t>((i < 2 ? u.x : u.y) >> (16 * (i % 2)));
  }
}

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  return static_cast<uint32_t>(f32_to_bf16(lo)) | (static_cast<uint32_t>(f32_to_bf16(hi)) << 16);
}

// Splits fn [24, K] fp32 into three bf16 parts hi + mid + lo, stored as [3][24][K]: once
// per call, so the MMA kernel reads ready B fragments instead of re-splitting per warp.
__global__ void __launch_bounds__(256) split_weights_kernel(const float *fn, uint16_t *parts,
                                                              int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * 256 + threadIdx.x;
  wait_for_prior_grid();
  if (i >= n) return;
  float v = fn[i];
#pragma unroll
  for (int p = 0; p < 3; ++p) {
    const uint16_t b = f32_to_bf16(v);
    parts[p * n + i] = b;
    const float part = bf16_to_f32(b);
    // exact: the residual of a rounding to fewer bits; an infinite weight stays in hi
    v = isinf(part) ? 0.0f : v - part;
  }
}

__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], const uint32_t b[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ float sq_sum_bf16x4(uint2 u, float acc) {
  const uint32_t w[2] = {u.x, u.y};
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const float lo = __uint_as_float(w[i] << 16), hi = __uint_as_float(w[i] & 0xffff0000u);
    acc = fma_f32(lo, lo, acc);
    acc = fma_f32(hi, hi, acc);
  }
  return acc;
}

template <bool kFused, bool kVec>
// At most 128 registers: 4 CTAs (16 warps) per SM keep enough loads in flight.
__global__ void __launch_bounds__(kMmaThreads, 4) prenorm_mma_kernel(const GemmArgs a) {
  __shared__ float s_mix[kFused ? kTokensPerCta : 1][20];  // fused: post[4], comb[16]

  const int64_t T = a.T, H = a.H, K = 4 * H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, c = lane % 4;
  const int split = blockIdx.y;
  const int64_t cta_t0 = static_cast<int64_t>(blockIdx.x) * kTokensPerCta;
  const int64_t n_chunks = (H + kChunk - 1) / kChunk;
  const int64_t chunk_begin = split * a.vectors_per_split;  // here: chunks per split
  const int64_t chunk_end = min(n_chunks, chunk_begin + a.vectors_per_split);

  wait_for_prior_grid();

  if constexpr (kFused) {
    for (int i = threadIdx.x; i < kTokensPerCta * 20; i += kMmaThreads) {
      const int tt = i / 20, k = i % 20;
      const int64_t t = cta_t0 + tt;
      float v = 0.0f;
      if (t < T) v = k < 4 ? a.post_mix[t * 4 + k] : a.comb_mix[t * 16 + (k - 4)];
      s_mix[tt][k] = v;
    }
    __syncthreads();
  }

  // The 4 token rows of this lane: m-tile mt, half r (row g or g + 8).
  int64_t row_t[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) row_t[mt][r] = cta_t0 + warp * kTokensPerWarp + mt * 16 + r * 8 + g;

  float acc[kMTiles][kNTiles][4];
  float sum_sq[kMTiles][2];
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt) {
    sum_sq[mt][0] = sum_sq[mt][1] = 0.0f;
#pragma unroll
    for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.0f;
  }

  for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
    const int64_t h = chunk * kChunk + 4 * c;
    uint2 xs[kMTiles][2][4];  // [m-tile][row half][stream]: 4 bf16 channels each
#pragma unroll
    for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int64_t t = row_t[mt][r];
        if (t >= T) {
#pragma unroll
          for (int j = 0; j < 4; ++j) xs[mt][r][j] = make_uint2(0, 0);
          continue;
        }
        if constexpr (kFused) {
          const int tt = static_cast<int>(t - cta_t0);
          float xf[4], rv[4][4];
          const uint2 xu = load_bf16x4<kVec>(a.x + t * H, h, H);
          xf[0] = __uint_as_float(xu.x << 16); xf[1] = __uint_as_float(xu.x & 0xffff0000u);
          xf[2] = __uint_as_float(xu.y << 16); xf[3] = __uint_as_float(xu.y & 0xffff0000u);
#pragma unroll
          for (int i = 0; i < 4; ++i) {
            const uint2 ru = load_bf16x4<kVec>(a.residual + (t * 4 + i) * H, h, H);
            rv[i][0] = __uint_as_float(ru.x << 16); rv[i][1] = __uint_as_float(ru.x & 0xffff0000u);
            rv[i][2] = __uint_as_float(ru.y << 16); rv[i][3] = __uint_as_float(ru.y & 0xffff0000u);
          }
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const float col[4] = {s_mix[tt][4 + 0 * 4 + j], s_mix[tt][4 + 1 * 4 + j],
                                  s_mix[tt][4 + 2 * 4 + j], s_mix[tt][4 + 3 * 4 + j]};
            float out[4];
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const float re[4] = {rv[0][e], rv[1][e], rv[2][e], rv[3][e]};
              out[e] = post_element(s_mix[tt][j], xf[e], col, re);
            }
            xs[mt][r][j] = make_uint2(pack_bf16x2(out[0], out[1]), pack_bf16x2(out[2], out[3]));
            store_bf16x4<kVec>(a.residual_out + (t * 4 + j) * H, h, H, xs[mt][r][j]);
          }
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) xs[mt][r][j] = load_bf16x4<kVec>(a.residual + (t * 4 + j) * H, h, H);
        }
      }

#pragma unroll
    for (int j = 0; j < 4; ++j) {
      uint32_t b[kNTiles][3][2];
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt)
#pragma unroll
        for (int p = 0; p < 3; ++p) {
          const uint2 u = load_bf16x4<kVec>(
              a.fn_parts + (static_cast<int64_t>(p) * 24 + nt * 8 + g) * K + j * H, h, H);
          b[nt][p][0] = u.x;
          b[nt][p][1] = u.y;
        }
#pragma unroll
      for (int mt = 0; mt < kMTiles; ++mt) {
        const uint32_t afrag[4] = {xs[mt][0][j].x, xs[mt][1][j].x, xs[mt][0][j].y, xs[mt][1][j].y};
#pragma unroll
        for (int nt = 0; nt < kNTiles; ++nt) {
          mma_bf16(acc[mt][nt], afrag, b[nt][2]);  // small parts first
          mma_bf16(acc[mt][nt], afrag, b[nt][1]);
          mma_bf16(acc[mt][nt], afrag, b[nt][0]);
        }
        sum_sq[mt][0] = sq_sum_bf16x4(xs[mt][0][j], sum_sq[mt][0]);
        sum_sq[mt][1] = sq_sum_bf16x4(xs[mt][1][j], sum_sq[mt][1]);
      }
    }
  }

  // Partials: C fragment element i of n-tile nt is row (i < 2 ? g : g + 8), output
  // nt*8 + 2c + (i % 2). Squares: the 4 lanes of a row combine by butterfly.
  float *part = a.partials + static_cast<int64_t>(split) * T * 25;
#pragma unroll
  for (int mt = 0; mt < kMTiles; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float s = sum_sq[mt][r];
      s += __shfl_xor_sync(0xffffffffu, s, 1);
      s += __shfl_xor_sync(0xffffffffu, s, 2);
      const int64_t t = row_t[mt][r];
      if (t >= T) continue;
#pragma unroll
      for (int nt = 0; nt < kNTiles; ++nt) {
        part[t * 25 + nt * 8 + 2 * c] = acc[mt][nt][2 * r];
        part[t * 25 + nt * 8 + 2 * c + 1] = acc[mt][nt][2 * r + 1];
      }
      if (c == 0) part[t * 25 + 24] = s;
    }
  allow_dependent_launch();
}

}  // namespace

void launch_prenorm_mma(bool fused, const GemmArgs &a, const GemmConfig &c,
                        const LaunchOptions &opt) {
  const int64_t n_chunks = (a.H + kChunk - 1) / kChunk;
  const int64_t n_weights = 24 * 4 * a.H;
  launch_kernel(split_weights_kernel, dim3(static_cast<unsigned>((n_weights + 255) / 256)),
                dim3(256), opt, a.fn, a.fn_parts, n_weights);
  // 8-byte accesses at channel 16*chunk + 4*lane need whole chunks: H % 16 == 0.
  const bool vec = a.H % kChunk == 0 && is_aligned16(a.residual) &&
                   (!fused || (is_aligned16(a.x) && is_aligned16(a.residual_out)));
  GemmArgs args = a;
  args.vectors_per_split = (n_chunks + c.splits - 1) / c.splits;
  const dim3 grid(static_cast<unsigned>((a.T + kTokensPerCta - 1) / kTokensPerCta),
                  static_cast<unsigned>(c.splits));
  auto kernel = fused ? (vec ? prenorm_mma_kernel<true, true> : prenorm_mma_kernel<true, false>)
                      : (vec ? prenorm_mma_kernel<false, true> : prenorm_mma_kernel<false, false>);
  launch_kernel(kernel, grid, dim3(kMmaThreads), opt.chained(), args);
}

}  // namespace mhc::cuda
