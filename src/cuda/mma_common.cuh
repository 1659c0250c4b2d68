// Device code shared by the two tensor-core (bf16x3) prenorm kernels: the MMA itself, the
// three-way bf16 split of an fp32 weight, and the 8-channel step that feeds one lane's 8
// consecutive channels to two m16n8k16 MMAs.
//
// fp32-class accuracy from bf16 tensor cores: the streams are bf16 (exact), and each fp32
// weight w is split into bf16 parts hi + mid + lo (24 significant bits), so
// X . w = X . lo + X . mid + X . hi with exact products and fp32 accumulation.
//
// Fragment mapping (mma.sync m16n8k16, lane = 4g + c): a lane holds the 8 consecutive
// channels 8c..8c+7 of its rows g and g + 8. The k-slots (2c, 2c+1, 2c+8, 2c+9) of the first
// MMA map to channels 8c..8c+3 and of the second to 8c+4..8c+7, for both A (streams) and B
// (weight parts of output column g). Any fixed permutation of k is the same dot product.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/device_common.cuh"

namespace mhc::cuda {

__device__ __forceinline__ void mma_bf16(float c[4], const uint32_t a[4], const uint32_t b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// Sum of squares of 8 bf16 channels, accumulated in channel order.
__device__ __forceinline__ float sq_sum_bf16x8(const uint4 &u, float acc) {
  float f[8];
  unpack_bf16x8(u, f);
#pragma unroll
  for (int e = 0; e < 8; ++e) acc = fma_f32(f[e], f[e], acc);
  return acc;
}

// One fp32 weight as three bf16 parts, hi first. Each part is the rounding of what the
// previous ones left (an exact subtraction); an infinite weight (or one that rounds to
// infinity) stays in hi and leaves zero parts, so it propagates as one infinity.
__device__ __forceinline__ void split_bf16x3(float v, uint16_t parts[3]) {
#pragma unroll
  for (int p = 0; p < 3; ++p) {
    parts[p] = f32_to_bf16(v);
    const float part = bf16_to_f32(parts[p]);
    v = isinf(part) ? 0.0f : v - part;
  }
}

// 8 consecutive fp32 weights -> parts[p] holds part p of the 8 as packed bf16x8.
__device__ __forceinline__ void split_bf16x3_x8(const float w[8], uint4 parts[3]) {
  uint32_t packed[3][4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    uint16_t lo[3], hi[3];
    split_bf16x3(w[2 * i], lo);
    split_bf16x3(w[2 * i + 1], hi);
#pragma unroll
    for (int p = 0; p < 3; ++p) packed[p][i] = lo[p] | (static_cast<uint32_t>(hi[p]) << 16);
  }
#pragma unroll
  for (int p = 0; p < 3; ++p) parts[p] = make_uint4(packed[p][0], packed[p][1], packed[p][2], packed[p][3]);
}

// Zero accumulators of MT m-tiles x NT n-tiles and the per-row sums of squares.
template <int MT, int NT>
__device__ __forceinline__ void zero_accumulators(float (&acc)[MT][NT][4], float (&sq)[MT][2]) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    sq[mt][0] = sq[mt][1] = 0.0f;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[mt][nt][i] = 0.0f;
  }
}

// Hands every value a lane holds after its k-loop to f(row, o, v): row = mt*16 + r*8 + g is
// the token row within the warp's MT m-tiles; o < NOUT is output o (C fragment element
// 2r + e of n-tile nt is row r*8 + g, output nt*8 + 2c + e), o == NOUT the row's sum of
// squares (the 4 lanes of a row combined by butterfly; passed by lane c == 0 only).
// Every lane must call it (shuffles).
template <int NOUT, int MT, int NT, class F>
__device__ __forceinline__ void for_each_partial(const float (&acc)[MT][NT][4],
                                                 const float (&sq)[MT][2], F &&f) {
  const int lane = threadIdx.x % 32, g = lane / 4, c = lane % 4;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float q = sq[mt][r];
      q += __shfl_xor_sync(0xffffffffu, q, 1);
      q += __shfl_xor_sync(0xffffffffu, q, 2);
      const int row = mt * 16 + r * 8 + g;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int o = nt * 8 + 2 * c + e;
          if (o < NOUT) f(row, o, acc[mt][nt][2 * r + e]);
        }
      if (c == 0) f(row, NOUT, q);
    }
}

// acc += rows (r0: row g, r1: row g + 8) x the three weight parts of one output column,
// over the lane's 8 channels: 6 MMAs, the small parts first.
__device__ __forceinline__ void mma_bf16x3_step(float acc[4], const uint4 &r0, const uint4 &r1,
                                                const uint4 parts[3]) {
  const uint32_t a_lo[4] = {r0.x, r1.x, r0.y, r1.y};  // channels 8c..8c+3
  const uint32_t a_hi[4] = {r0.z, r1.z, r0.w, r1.w};  // channels 8c+4..8c+7
#pragma unroll
  for (int p = 2; p >= 0; --p) {
    const uint32_t b_lo[2] = {parts[p].x, parts[p].y}, b_hi[2] = {parts[p].z, parts[p].w};
    mma_bf16(acc, a_lo, b_lo);
    mma_bf16(acc, a_hi, b_hi);
  }
}

}  // namespace mhc::cuda
