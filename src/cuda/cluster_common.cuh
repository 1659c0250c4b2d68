// Thread-block cluster primitives (sm_90+) shared by the one-kernel hc_pre variants, and
// their common epilogue: once every CTA of a cluster holds its partial sums for a block of
// tokens (dot products + sum of squares over its channel slice), exchange them through
// distributed shared memory in a fixed rank order, compute the gates, write the
// pre-weighted stream sum of this CTA's channels, and let the owning CTA of each token
// write its post_mix and comb_mix. No atomics: every CTA reduces the same values in the
// same order, so all of them hold identical sums.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/device_common.cuh"
#include "cuda/kernels.hpp"
#include "cuda/mix_epilogue.cuh"

namespace mhc::cuda {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// Full barrier of every thread of every CTA in the cluster; orders shared and global memory
// at cluster scope (release before, acquire after).
__device__ __forceinline__ void cluster_sync_all() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;" ::: "memory");
}
// The two halves of cluster_sync_all, for work between them.
__device__ __forceinline__ void cluster_arrive() {
  asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
  asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
__device__ __forceinline__ unsigned cluster_rank() {
  unsigned r;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
  return r;
}
__device__ __forceinline__ unsigned cluster_size() {
  unsigned n;
  asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(n));
  return n;
}
// Reads a float at the same shared-memory address in CTA `rank` of the cluster.
__device__ __forceinline__ float load_remote(const float *local, unsigned rank) {
  const unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(local));
  unsigned remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(addr), "r"(rank));
  float v;
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(remote) : "memory");
  return v;
}

// Shared memory of the epilogue for ROWS tokens.
template <int NOUT, int ROWS>
struct ClusterEpilogueSmem {
  float cta[ROWS][NOUT + 1];  // this CTA's partials: written by the caller, read cluster-wide
  float sum[ROWS][NOUT + 1];  // the cluster sums
  float pre[ROWS][4];
  float sq[ROWS];             // norm: this CTA's share of each token's sum(out^2)
};

// The epilogue for the tokens t0 .. t0 + ROWS - 1 (those < T). Call with every thread of
// the CTA (WARPS warps) after s.cta is complete; `streams` are the [T, 4, H] values the
// partials were computed from; this CTA writes out[t][h_begin, h_end). Ends with the
// cluster's CTAs done reading each other's shared memory, so s may be reused at once.
template <int NOUT, int ROWS, int WARPS, bool kNorm, bool kVec>
__device__ __forceinline__ void cluster_epilogue(const FinalizeArgs &a, const uint16_t *streams,
                                                 int64_t t0, int64_t h_begin, int64_t h_end,
                                                 ClusterEpilogueSmem<NOUT, ROWS> &s) {
  constexpr int NP = NOUT + 1;
  constexpr int kRowsPerWarp = (ROWS + WARPS - 1) / WARPS;
  const int64_t T = a.T, H = a.H;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const unsigned rank = cluster_rank(), n_ranks = cluster_size();

  // 1. exchange: every CTA sums the CTA partials in rank order
  cluster_sync_all();
  for (int i = threadIdx.x; i < ROWS * NP; i += WARPS * 32) {
    float v[16];
#pragma unroll
    for (int r = 0; r < 16; ++r) v[r] = r < static_cast<int>(n_ranks) ? load_remote(&s.cta[0][0] + i, r) : 0.0f;
    float sum = 0.0f;
#pragma unroll
    for (int r = 0; r < 16; ++r)
      if (r < static_cast<int>(n_ranks)) sum += v[r];
    s.sum[i / NP][i % NP] = sum;
  }
  // s.cta must stay until every CTA has read it: arrive now, wait at the end (with a norm,
  // the second exchange's full barrier covers it).
  if constexpr (!kNorm) cluster_arrive();
  __syncthreads();

  // 2. pre gates of every token
#pragma unroll
  for (int k = 0; k < kRowsPerWarp; ++k) {
    const int row = warp + WARPS * k;
    if (row >= ROWS || t0 + row >= T) break;
    const float mix = lane_mix<NOUT>(a, lane <= NOUT ? s.sum[row][lane] : 0.0f);
    if (lane < 4) s.pre[row][lane] = pre_gate(a, mix, lane);
  }
  __syncthreads();

  // post_mix and comb_mix of the tokens this CTA owns (row mod cluster size == rank): the
  // k-th owned token on warp WARPS - 1 - k, so with few tokens the Sinkhorn's dependent
  // chain runs beside the weighted sum of the low warps (warp-uniform).
  auto owned_mixes = [&]() {
    if constexpr (NOUT == 24) {
      for (int row = static_cast<int>(rank), k = 0; row < ROWS; row += static_cast<int>(n_ranks), ++k) {
        if (t0 + row >= T) break;
        if (warp != WARPS - 1 - k % WARPS) continue;
        write_post_and_comb(a, t0 + row, lane_mix<NOUT>(a, lane <= NOUT ? s.sum[row][lane] : 0.0f));
      }
    }
  };
  if constexpr (!kNorm) owned_mixes();

  // 3. weighted sum of this CTA's channels; a warp per token, lanes along the channels
  const int64_t n_vec = (h_end - h_begin + kVecWidth - 1) / kVecWidth;
  auto pre_of = [&](int row, float pre[4]) {
#pragma unroll
    for (int i = 0; i < 4; ++i) pre[i] = s.pre[row][i];
  };
  auto load_streams = [&](int row, int64_t h0, uint4 r[4]) {
    const int64_t t = t0 + row;
#pragma unroll
    for (int j = 0; j < 4; ++j)
      r[j] = row < ROWS && t < T ? load_bf16x8<kVec>(streams + (t * 4 + j) * H, h0, H) : make_uint4(0, 0, 0, 0);
  };
  if constexpr (!kNorm) {
    constexpr int kBatch = kRowsPerWarp < 4 ? kRowsPerWarp : 4;  // tokens with loads in flight
    for (int64_t v = lane; v < n_vec; v += 32) {
      const int64_t h0 = h_begin + v * kVecWidth;
#pragma unroll
      for (int kb = 0; kb < kRowsPerWarp; kb += kBatch) {
        uint4 r[kBatch][4];
#pragma unroll
        for (int k = 0; k < kBatch; ++k) load_streams(warp + WARPS * (kb + k), h0, r[k]);
#pragma unroll
        for (int k = 0; k < kBatch; ++k) {
          const int row = warp + WARPS * (kb + k);
          if (row >= ROWS || t0 + row >= T) break;
          float pre[4], ol[8];
          pre_of(row, pre);
          weighted_sum_bf16x8(r[k], pre, ol);
          store_bf16x8<kVec>(a.out + (t0 + row) * H, h0, H, pack_bf16x8(ol));
        }
      }
    }
  } else {
    // pass 1: this CTA's share of each token's sum of squares (unrounded sums, spec §2.6)
#pragma unroll
    for (int k = 0; k < kRowsPerWarp; ++k) {
      const int row = warp + WARPS * k;
      if (row >= ROWS) break;
      float q = 0.0f;
      if (t0 + row < T)
        for (int64_t v = lane; v < n_vec; v += 32) {
          float pre[4], ol[8];
          uint4 r[4];
          pre_of(row, pre);
          load_streams(row, h_begin + v * kVecWidth, r);
          weighted_sum_bf16x8(r, pre, ol);
#pragma unroll
          for (int e = 0; e < 8; ++e) q = fma_f32(ol[e], ol[e], q);
        }
      q = warp_sum(q);
      if (lane == 0) s.sq[row] = q;
    }
    cluster_sync_all();  // s.sq visible cluster-wide; every CTA is done reading s.cta
#pragma unroll
    for (int k = 0; k < kRowsPerWarp; ++k) {
      const int row = warp + WARPS * k;
      if (row >= ROWS || t0 + row >= T) break;
      float total = 0.0f;
      for (unsigned r = 0; r < n_ranks; ++r) total += load_remote(&s.sq[row], r);
      const float rs = inv_rms_f32(total, static_cast<float>(H), a.norm_eps);
      for (int64_t v = lane; v < n_vec; v += 32) {
        const int64_t h0 = h_begin + v * kVecWidth;
        float pre[4], ol[8];
        uint4 r[4];
        pre_of(row, pre);
        load_streams(row, h0, r);
        weighted_sum_bf16x8(r, pre, ol);
        store_bf16x8<kVec>(a.out + (t0 + row) * H, h0, H, normed_x8(ol, rs, load_bf16x8<kVec>(a.norm_weight, h0, H)));
      }
    }
    cluster_arrive();  // done reading s.sq
  }

  if constexpr (kNorm) owned_mixes();
  cluster_wait();  // no CTA reuses s before all have read this block's values
}
#endif

}  // namespace mhc::cuda
