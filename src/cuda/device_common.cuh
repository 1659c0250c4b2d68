// Device helpers shared by every mhc kernel: 8-channel bf16 / fp32 vector access (one
// 16-byte load, or an element-wise path with bounds for any hidden size and any alignment,
// which produces the same values in the same order), packing, and warp reductions.
#pragma once

#include <cuda_bf16.h>
#include <cstdint>

#include "common/mhc_math.hpp"

namespace mhc::cuda {

constexpr int kVecWidth = 8;  // channels per vector: 16 bytes of bf16, 32 bytes of fp32

__device__ __forceinline__ void unpack_bf16x8(const uint4 &u, float f[8]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}

__device__ __forceinline__ uint4 pack_bf16x8(const float f[8]) {
  uint32_t w[4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
    w[i] = static_cast<uint32_t>(f32_to_bf16(f[2 * i])) |
           (static_cast<uint32_t>(f32_to_bf16(f[2 * i + 1])) << 16);
  return make_uint4(w[0], w[1], w[2], w[3]);
}

// 8 bf16 of `row` starting at channel h0; channels >= H read as zero (element-wise path).
template <bool kVec>
__device__ __forceinline__ uint4 load_bf16x8(const uint16_t *row, int64_t h0, int64_t H) {
  if constexpr (kVec) {
    return *reinterpret_cast<const uint4 *>(row + h0);
  } else {
    uint16_t e[8];
#pragma unroll
    for (int i = 0; i < 8; ++i) e[i] = (h0 + i < H) ? row[h0 + i] : uint16_t{0};
    return make_uint4(e[0] | (uint32_t(e[1]) << 16), e[2] | (uint32_t(e[3]) << 16),
                      e[4] | (uint32_t(e[5]) << 16), e[6] | (uint32_t(e[7]) << 16));
  }
}

template <bool kVec>
__device__ __forceinline__ void store_bf16x8(uint16_t *row, int64_t h0, int64_t H, const uint4 &u) {
  if constexpr (kVec) {
    *reinterpret_cast<uint4 *>(row + h0) = u;
  } else {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 8; ++i)
      if (h0 + i < H) row[h0 + i] = static_cast<uint16_t>(w[i / 2] >> (16 * (i % 2)));
  }
}

// 8 fp32 weights through the read-only path; channels >= H read as zero.
template <bool kVec>
__device__ __forceinline__ void load_f32x8(const float *row, int64_t h0, int64_t H, float f[8]) {
  if constexpr (kVec) {
    const float4 a = __ldg(reinterpret_cast<const float4 *>(row + h0));
    const float4 b = __ldg(reinterpret_cast<const float4 *>(row + h0) + 1);
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w;
    f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
  } else {
#pragma unroll
    for (int i = 0; i < 8; ++i) f[i] = (h0 + i < H) ? __ldg(row + h0 + i) : 0.0f;
  }
}

// hc_post of one token for the 8 channels h0..h0+7 and all 4 destination streams, each
// rounded to bf16: out[j] = bf16(post[j] * x + sum_i comb[i*4 + j] * residual_i). post and
// comb may live in registers or shared memory. The post kernel and both fused boundary
// kernels call this one routine, which is what makes their residuals bit-identical.
template <bool kVec>
__device__ __forceinline__ void post_token_x8(const uint16_t *x_row, const uint16_t *r_tok,
                                              int64_t h0, int64_t H, const float *post,
                                              const float *comb, uint4 out[4]) {
  float xf[8], r[4][8];
  unpack_bf16x8(load_bf16x8<kVec>(x_row, h0, H), xf);
#pragma unroll
  for (int i = 0; i < 4; ++i) unpack_bf16x8(load_bf16x8<kVec>(r_tok + i * H, h0, H), r[i]);
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const float col[4] = {comb[0 * 4 + j], comb[1 * 4 + j], comb[2 * 4 + j], comb[3 * 4 + j]};
    float o[8];
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const float re[4] = {r[0][e], r[1][e], r[2][e], r[3][e]};
      o[e] = post_element(post[j], xf[e], col, re);
    }
    out[j] = pack_bf16x8(o);
  }
}

// Butterfly sum over the 32 lanes: every lane gets the same, deterministic result.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Starts moving the 128-byte line of p into L1 without holding a register (p must be a valid
// address: a fault on it is not suppressed).
__device__ __forceinline__ void prefetch_l1(const void *p) {
  asm volatile("prefetch.global.L1 [%0];" ::"l"(p));
}

// Programmatic dependent launch: wait until the preceding kernel's writes are visible.
// A no-op when the kernel was launched without the PDL attribute or before sm_90.
__device__ __forceinline__ void wait_for_prior_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Lets the next PDL-launched kernel on the stream start its prologue.
__device__ __forceinline__ void allow_dependent_launch() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Asynchronous 16-byte global -> shared copy (sm_80+), bypassing L1; with `valid` false the
// 16 shared bytes are zero-filled and `src` (which must still be a mapped address) is not read.
__device__ __forceinline__ void cp_async16(void *smem_dst, const void *src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem_dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0) : "memory");
#endif
}
// Closes the group of cp.async copies issued by this thread since the last commit.
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
#endif
}

inline bool is_aligned16(const void *p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace mhc::cuda
