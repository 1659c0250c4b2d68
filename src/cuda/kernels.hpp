// Host-side interface of the CUDA kernels: argument structs and launchers. Each launcher
// lives in the .cu file of its kernel, next to the kernel's launch configuration.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/cuda_check.hpp"
#include "cuda/gemm_config.hpp"

namespace mhc::cuda {

struct LaunchOptions {
  cudaStream_t stream;
  bool pdl;    // launch this kernel with programmatic stream serialization (sm_90+)
  bool chain;  // the device supports PDL: later kernels of the same op may use it
  unsigned cluster = 0;  // CTAs per thread-block cluster (sm_90+), 0 = no cluster attribute
  LaunchOptions chained() const { return {stream, chain, chain}; }
  LaunchOptions with_cluster(unsigned ctas) const { return {stream, pdl, chain, ctas}; }
};

// cudaLaunchKernelEx of a prepared configuration (grid, block, dynamic shared memory), with
// the PDL and cluster attributes when requested; errors become mhc::Error.
template <class... Params, class... Args>
void launch_kernel_cfg(void (*kernel)(Params...), cudaLaunchConfig_t cfg, const LaunchOptions &opt,
                       Args &&...args) {
  cfg.stream = opt.stream;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (opt.pdl) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (opt.cluster > 0) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = opt.cluster;
    attr[n].val.clusterDim.y = 1;
    attr[n++].val.clusterDim.z = 1;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  MHC_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

// The common case: grid and block only.
template <class... Params, class... Args>
void launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, const LaunchOptions &opt,
                   Args &&...args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  launch_kernel_cfg(kernel, cfg, opt, std::forward<Args>(args)...);
}

// ---- hc_post (post_kernel.cu) ----
struct PostKernelArgs {
  int64_t T, H;
  const uint16_t *x, *residual;
  const float *post_mix, *comb_mix;
  uint16_t *residual_out;
};
void launch_post(const PostKernelArgs &a, const LaunchOptions &opt);

// ---- finalize: mixes, Sinkhorn, weighted stream sum (finalize_kernel.cu) ----
struct FinalizeArgs {
  int64_t T, H;
  int splits;
  const float *partials;     // [splits, T, n_out + 1]
  const uint16_t *residual;  // [T, 4, H] (the new residual for the fused boundary)
  const float *scale, *base;
  const uint16_t *norm_weight;  // [H] or nullptr
  float rms_eps, pre_eps, sinkhorn_eps, post_mult, norm_eps;
  int sinkhorn_iters;
  bool sinkhorn_in_registers;  // the decode form of the Sinkhorn (same bits as the other)
  bool rows_together;          // finalize grid order: a token's channel blocks adjacent
  float *post_mix;       // [T, 4]   (hc_pre only)
  float *comb_mix;       // [T, 4, 4] (hc_pre only)
  uint16_t *out;         // [T, H] layer_input or head output
};
// ---- split-K prenorm GEMM (prenorm_gemm_kernel.cu) ----
struct GemmArgs {
  int64_t T, H;
  const uint16_t *residual;  // plain: the streams; fused: the streams before hc_post
  const float *fn;           // [n_out, 4H]
  float *partials;           // [splits, T, n_out + 1]
  uint16_t *fn_parts;        // MMA variant: bf16x3 split of fn in fragment order (workspace)
  // fused only: hc_post inputs and the new residual it writes
  const uint16_t *x;
  const float *post_mix, *comb_mix;
  uint16_t *residual_out;
  int64_t vectors_per_split;  // set by the launcher
  bool early_launch;          // set by the launcher: GemmConfig::early_launch
};
// In cluster mode (c.cluster) the kernel also finishes the op with `epi` (the finalize's
// arguments; its splits and partials unused): the partials never leave the cluster.
void launch_prenorm_gemm(int n_out, bool fused, const GemmArgs &a, const GemmConfig &c,
                         const LaunchOptions &opt, const FinalizeArgs &epi = {});
// The tensor-core variant (prenorm_mma_kernel.cu); called by launch_prenorm_gemm. It reads
// fn as three bf16 parts, so it launches two kernels: the split of a.fn into a.fn_parts (the
// workspace's weight_parts_bytes(H)) with `opt`, then the GEMM chained to it.
// n_out: 24 (hc_pre) or 4 (hc_head).
void launch_prenorm_mma(int n_out, const GemmArgs &a, const GemmConfig &c, const LaunchOptions &opt);
// Opts the MMA kernel's shared-memory pipeline in to its dynamic shared memory (> 48 KB) on
// the current device.
void configure_mma_kernels();

void launch_finalize(int n_out, const FinalizeArgs &a, const LaunchOptions &opt);

// ---- one-pass GEMM + finalize in thread-block clusters, sm_90+ (prenorm_cluster_kernel.cu) ----
struct ClusterPreArgs {
  FinalizeArgs f;   // everything but the partials (splits and partials unused)
  const float *fn;  // [n_out, 4H]
};
// c.splits = CTAs per cluster (8 or 16); (n_out, H, C) must satisfy cluster_fits().
void launch_prenorm_cluster(int n_out, const ClusterPreArgs &a, const GemmConfig &c,
                            const LaunchOptions &opt);
// Opts the cluster kernels in to their shared memory and cluster sizes on the current
// device; returns the largest cluster size (16 or 8) the device can hold, 0 if none.
int configure_cluster_kernels();
// The same for the one-kernel (cluster mode) variants of the FMA GEMM.
void configure_gemm_cluster_kernels();

}  // namespace mhc::cuda
