// The CUDA backend: turns validated operator arguments into kernel launches on the caller's
// stream. No allocation, no synchronisation, no JIT: every call is graph-capturable.
//
//   hc_post      -> post kernel
//   hc_pre       -> prenorm GEMM (split-K partials) -> finalize (PDL-chained), or at decode
//                   sizes on sm_90+ the GEMM alone, its splits finishing the op in a cluster
//   hc_post_pre  -> fused post + prenorm GEMM       -> finalize (PDL-chained), or where
//                   measured faster, hc_post then hc_pre (identical bits either way)
//   hc_head      -> prenorm GEMM (4 outputs)        -> finalize (4 outputs)
// At prefill sizes (T > 128) the GEMM of hc_pre and hc_head is the tensor-core kernel
// (prenorm_mma_kernel.cu), preceded by the split of fn into its bf16x3 fragments. The
// one-pass cluster kernel (prenorm_cluster_kernel.cu) stays available to the tuning
// overrides only. gemm_config.cpp has the table that decides.
#include <cuda_runtime.h>

#include "context.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/gemm_config.hpp"
#include "cuda/kernels.hpp"
#include "error.hpp"

namespace mhc {
namespace cuda {
namespace {

// Makes the context's device current for the duration of a call, restoring the caller's.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    MHC_CUDA_CHECK(cudaGetDevice(&previous_));
    if (previous_ != device) MHC_CUDA_CHECK(cudaSetDevice(device));
    else previous_ = -1;
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard &) = delete;
  DeviceGuard &operator=(const DeviceGuard &) = delete;

 private:
  int previous_ = -1;
};

bool batch_invariant(const mhc_hc_params &p) { return (p.flags & MHC_FLAG_BATCH_INVARIANT) != 0; }

// Workspace layout: [weight parts of the MMA variant][partial sums].
void place_workspace(void *ws, const GemmConfig &c, int64_t H, GemmArgs *g) {
  char *base = static_cast<char *>(ws);
  if (c.variant == GemmVariant::kMma) {
    g->fn_parts = reinterpret_cast<uint16_t *>(base);
    base += weight_parts_bytes(H);
  }
  g->partials = reinterpret_cast<float *>(base);
}

PostKernelArgs post_kernel_args(const PostArgs &a) {
  return {a.T, a.H, a.x, a.residual, a.post_mix, a.comb_mix, a.residual_out};
}

FinalizeArgs finalize_args(const PreArgs &a, const GemmConfig &c, const float *partials) {
  FinalizeArgs f{};
  f.T = a.T;
  f.H = a.H;
  f.splits = c.splits;
  f.partials = partials;
  f.residual = a.residual;
  f.scale = a.w.scale;
  f.base = a.w.base;
  f.norm_weight = a.w.norm_weight;
  f.rms_eps = a.p->rms_eps;
  f.pre_eps = a.p->pre_eps;
  f.sinkhorn_eps = a.p->sinkhorn_eps;
  f.post_mult = a.p->post_mult;
  f.norm_eps = a.p->norm_eps;
  f.sinkhorn_iters = a.p->sinkhorn_iters;
  f.sinkhorn_in_registers = a.T <= kRegisterSinkhornMaxTokens;
  f.rows_together = finalize_rows_together(c, a.T);
  f.post_mix = a.post_mix;
  f.comb_mix = a.comb_mix;
  f.out = a.layer_input;
  return f;
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, uint32_t flags) : device_(device) {
    int count = 0;
    MHC_CUDA_CHECK(cudaGetDeviceCount(&count));
    if (device >= count)
      fail(MHC_ERROR_INVALID_ARGUMENT, "cfg->device_id: %d, but only %d CUDA device(s) exist",
           device, count);
    cudaDeviceProp prop{};
    MHC_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    if (prop.major < 8)
      fail(MHC_ERROR_NOT_SUPPORTED, "device %d (%s) is sm_%d%d; libmhc needs sm_80 or newer",
           device, prop.name, prop.major, prop.minor);
    has_pdl_ = prop.major >= 9;
    user_pdl_ = has_pdl_ && (flags & MHC_CONTEXT_FLAG_PDL);
    DeviceGuard guard(device_);
    // Per context, not once per process: the opt-ins are attributes of the device's
    // context, which a cudaDeviceReset() between two contexts would have dropped.
    configure_mma_kernels();
    if (prop.major >= 9) {
      caps_.max_cluster_ctas = configure_cluster_kernels();
      if (caps_.max_cluster_ctas >= 16) configure_gemm_cluster_kernels();
    }
  }

  void hc_post(const PostArgs &a) override {
    DeviceGuard guard(device_);
    launch_post(post_kernel_args(a), first_launch(a.stream));
  }

  void hc_pre(const PreArgs &a) override {
    DeviceGuard guard(device_);
    const GemmConfig c = choose_gemm_config(24, a.T, a.H, batch_invariant(*a.p), caps_);
    run_pre(a, c, nullptr);
  }

  void hc_post_pre(const PostPreArgs &a) override {
    DeviceGuard guard(device_);
    const PreArgs &pre = a.pre;
    const GemmConfig c = choose_gemm_config(24, pre.T, pre.H, batch_invariant(*pre.p), caps_);
    if (!fuse_post_into_gemm(c)) {  // same bits, measured faster at this size
      run_pre(pre, c, &a.post);
      return;
    }
    GemmArgs g{};
    g.T = pre.T;
    g.H = pre.H;
    g.residual = a.post.residual;
    g.fn = pre.w.fn;
    place_workspace(pre.workspace, c, pre.H, &g);
    g.x = a.post.x;
    g.post_mix = a.post.post_mix;
    g.comb_mix = a.post.comb_mix;
    g.residual_out = a.post.residual_out;
    const FinalizeArgs f = finalize_args(pre, c, g.partials);
    const LaunchOptions opt = first_launch(pre.stream);
    launch_prenorm_gemm(24, true, g, c, opt, f);
    if (!c.cluster) launch_finalize(24, f, opt.chained());
  }

  void hc_head(const HeadArgs &a) override {
    DeviceGuard guard(device_);
    const GemmConfig c = choose_gemm_config(4, a.T, a.H, batch_invariant(*a.p), caps_);
    FinalizeArgs f{};
    f.T = a.T;
    f.H = a.H;
    f.splits = c.splits;
    f.residual = a.residual;
    f.scale = a.scale;
    f.base = a.base;
    f.rms_eps = a.p->rms_eps;
    f.pre_eps = a.p->pre_eps;
    f.out = a.out;
    const LaunchOptions opt = first_launch(a.stream);
    if (c.variant == GemmVariant::kCluster) {
      launch_prenorm_cluster(4, {f, a.fn}, c, opt);
      return;
    }
    GemmArgs g{};
    g.T = a.T;
    g.H = a.H;
    g.residual = a.residual;
    g.fn = a.fn;
    place_workspace(a.workspace, c, a.H, &g);
    launch_prenorm_gemm(4, false, g, c, opt);
    f.partials = g.partials;
    f.rows_together = finalize_rows_together(c, a.T);
    launch_finalize(4, f, opt.chained());
  }

  size_t workspace_size(int32_t op, const mhc_hc_params &p, int64_t T, int64_t H) override {
    if (op == MHC_OP_HC_POST || T == 0) return 0;
    return gemm_workspace_bytes(op == MHC_OP_HC_HEAD ? 4 : 24, T, H, batch_invariant(p), caps_);
  }

 private:
  // The first kernel of an op uses PDL only on request; the later ones chain on sm_90+.
  LaunchOptions first_launch(cudaStream_t stream) const { return {stream, user_pdl_, has_pdl_}; }

  // hc_pre, after the post kernel of `post` when given (the unfused boundary).
  void run_pre(const PreArgs &a, const GemmConfig &c, const PostArgs *post) {
    LaunchOptions opt = first_launch(a.stream);
    if (post != nullptr) {
      launch_post(post_kernel_args(*post), opt);
      opt = opt.chained();
    }
    if (c.variant == GemmVariant::kCluster) {
      launch_prenorm_cluster(24, {finalize_args(a, c, nullptr), a.w.fn}, c, opt);
      return;
    }
    GemmArgs g{};
    g.T = a.T;
    g.H = a.H;
    g.residual = a.residual;
    g.fn = a.w.fn;
    place_workspace(a.workspace, c, a.H, &g);
    const FinalizeArgs f = finalize_args(a, c, g.partials);
    launch_prenorm_gemm(24, false, g, c, opt, f);
    if (!c.cluster) launch_finalize(24, f, opt.chained());
  }

  int device_;
  bool has_pdl_ = false;   // chain our own second kernel with PDL (sm_90+)
  bool user_pdl_ = false;  // also the first kernel (MHC_CONTEXT_FLAG_PDL)
  DeviceCaps caps_{0};     // thread-block clusters: none before sm_90
};

}  // namespace
}  // namespace cuda

std::unique_ptr<Backend> make_cuda_backend(int device_id, uint32_t flags) {
  return std::make_unique<cuda::CudaBackend>(device_id, flags);
}

}  // namespace mhc
