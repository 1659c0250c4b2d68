// hc_post: out[t, j, h] = bf16(post[t, j] * x[t, h] + sum_i comb[t, i, j] * residual[t, i, h]).
// Pure streaming: one thread per (token, 8-channel vector), 16-byte loads and stores. The
// element formula is post_element() of common/mhc_math.hpp, the same one the fused boundary
// kernel evaluates in registers, which is what makes the two bit-identical.
#include "cuda/device_common.cuh"
#include "cuda/kernels.hpp"

namespace mhc::cuda {
namespace {

constexpr int kPostThreads = 256;

template <bool kVec>
__global__ void __launch_bounds__(kPostThreads) post_kernel(const PostKernelArgs a) {
  const int64_t H = a.H;
  const int64_t n_vec = (H + kVecWidth - 1) / kVecWidth;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kPostThreads + threadIdx.x;
  wait_for_prior_grid();
  if (i >= a.T * n_vec) return;
  const int64_t t = i / n_vec, h0 = (i % n_vec) * kVecWidth;

  float post[4], comb[16];
#pragma unroll
  for (int k = 0; k < 4; ++k) post[k] = __ldg(a.post_mix + t * 4 + k);
#pragma unroll
  for (int k = 0; k < 16; ++k) comb[k] = __ldg(a.comb_mix + t * 16 + k);

  uint4 out[4];
  post_token_x8<kVec>(a.x + t * H, a.residual + t * 4 * H, h0, H, post, comb, out);
#pragma unroll
  for (int j = 0; j < 4; ++j) store_bf16x8<kVec>(a.residual_out + (t * 4 + j) * H, h0, H, out[j]);
}

}  // namespace

void launch_post(const PostKernelArgs &a, const LaunchOptions &opt) {
  const int64_t n_vec = (a.H + kVecWidth - 1) / kVecWidth;
  const int64_t threads = a.T * n_vec;
  const dim3 grid(static_cast<unsigned>((threads + kPostThreads - 1) / kPostThreads));
  const bool vec = a.H % kVecWidth == 0 && is_aligned16(a.x) && is_aligned16(a.residual) &&
                   is_aligned16(a.residual_out);
  if (vec)
    launch_kernel(post_kernel<true>, grid, dim3(kPostThreads), opt, a);
  else
    launch_kernel(post_kernel<false>, grid, dim3(kPostThreads), opt, a);
}

}  // namespace mhc::cuda
