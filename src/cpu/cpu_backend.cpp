// The CPU reference backend: a direct, readable transcription of reference/mhc-spec.md.
// fp32 math everywhere, except that the K-long dot products and the sum of squares are
// accumulated in double and rounded once to fp32 (a correctly rounded fp32 GEMM, the best
// oracle for the CUDA kernels). bf16 rounding (nearest even) happens exactly where the spec
// casts. Runs synchronously; the fused boundary is literally post followed by pre, so it is
// bit-identical to the unfused calls by construction.
#include "cpu/cpu_backend.hpp"

#include <cmath>
#include <vector>

#include "common/mhc_math.hpp"
#include "cpu/sinkhorn.hpp"
#include "error.hpp"

namespace mhc::cpu {
namespace {

// raw[o] = sum_k X[k] * fn[o][k] and the sum of X[k]^2 for one token's flattened streams.
void prenorm_gemm_token(const bf16_bits *x_row, const float *fn, int n_out, int64_t K,
                        float *raw, float *sum_sq) {
  double ss = 0.0;
  for (int64_t k = 0; k < K; ++k) {
    const double v = bf16_to_f32(x_row[k]);
    ss += v * v;
  }
  *sum_sq = static_cast<float>(ss);
  for (int o = 0; o < n_out; ++o) {
    const float *w = fn + o * K;
    double acc = 0.0;
    for (int64_t k = 0; k < K; ++k) acc += static_cast<double>(bf16_to_f32(x_row[k])) * w[k];
    raw[o] = static_cast<float>(acc);
  }
}

// out[h] = bf16(sum_j pre_j * R_j[h]) for one token, optionally followed by the fused
// RMSNorm of spec §2.6: sum of squares of the unrounded sums, then bf16(bf16(ol)*rs*w).
void weighted_stream_sum(const bf16_bits *r_tok, const float pre[4], int64_t H,
                         const bf16_bits *norm_weight, float norm_eps, bf16_bits *out,
                         std::vector<float> &scratch) {
  scratch.resize(static_cast<size_t>(H));
  double sumsq = 0.0;
  for (int64_t h = 0; h < H; ++h) {
    const float r[4] = {bf16_to_f32(r_tok[0 * H + h]), bf16_to_f32(r_tok[1 * H + h]),
                        bf16_to_f32(r_tok[2 * H + h]), bf16_to_f32(r_tok[3 * H + h])};
    const float ol = weighted_sum4(pre, r);
    scratch[h] = ol;
    sumsq += static_cast<double>(ol) * ol;
  }
  if (norm_weight == nullptr) {
    for (int64_t h = 0; h < H; ++h) out[h] = f32_to_bf16(scratch[h]);
    return;
  }
  const float rs = inv_rms_f32(static_cast<float>(sumsq), static_cast<float>(H), norm_eps);
  for (int64_t h = 0; h < H; ++h) {
    const float rounded = bf16_to_f32(f32_to_bf16(scratch[h]));
    out[h] = f32_to_bf16(rounded * rs * bf16_to_f32(norm_weight[h]));
  }
}

class CpuBackend final : public Backend {
 public:
  void hc_post(const PostArgs &a) override {
    const int64_t H = a.H;
    for (int64_t t = 0; t < a.T; ++t) {
      const float *post = a.post_mix + t * kHcMult;
      const float *comb = a.comb_mix + t * kHcMult * kHcMult;  // comb[i][j] at i*4 + j
      const bf16_bits *r_tok = a.residual + t * kHcMult * H;
      for (int j = 0; j < kHcMult; ++j) {
        const float col[4] = {comb[0 * 4 + j], comb[1 * 4 + j], comb[2 * 4 + j], comb[3 * 4 + j]};
        bf16_bits *out = a.residual_out + (t * kHcMult + j) * H;
        for (int64_t h = 0; h < H; ++h) {
          const float r[4] = {bf16_to_f32(r_tok[0 * H + h]), bf16_to_f32(r_tok[1 * H + h]),
                              bf16_to_f32(r_tok[2 * H + h]), bf16_to_f32(r_tok[3 * H + h])};
          out[h] = f32_to_bf16(post_element(post[j], bf16_to_f32(a.x[t * H + h]), col, r));
        }
      }
    }
  }

  void hc_pre(const PreArgs &a) override {
    const mhc_hc_params &p = *a.p;
    const int64_t H = a.H, K = kHcMult * H;
    std::vector<float> scratch;
    for (int64_t t = 0; t < a.T; ++t) {
      const bf16_bits *r_tok = a.residual + t * K;
      float raw[kMixes], sum_sq;
      prenorm_gemm_token(r_tok, a.w.fn, kMixes, K, raw, &sum_sq);
      const float inv_rms = inv_rms_f32(sum_sq, static_cast<float>(K), p.rms_eps);
      float mix[kMixes];
      for (int o = 0; o < kMixes; ++o) mix[o] = raw[o] * inv_rms;

      float pre[4];
      for (int j = 0; j < 4; ++j) {
        pre[j] = sigmoid_f32(mix[j] * a.w.scale[0] + a.w.base[j]) + p.pre_eps;
        a.post_mix[t * 4 + j] =
            sigmoid_f32(mix[4 + j] * a.w.scale[1] + a.w.base[4 + j]) * p.post_mult;
      }
      float c[4][4];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
          c[i][j] = mix[8 + 4 * i + j] * a.w.scale[2] + a.w.base[8 + 4 * i + j];
      sinkhorn4(c, p.sinkhorn_iters, p.sinkhorn_eps);
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j) a.comb_mix[t * 16 + 4 * i + j] = c[i][j];

      weighted_stream_sum(r_tok, pre, H, a.w.norm_weight, p.norm_eps, a.layer_input + t * H,
                          scratch);
    }
  }

  void hc_post_pre(const PostPreArgs &a) override {
    hc_post(a.post);
    hc_pre(a.pre);
  }

  void hc_head(const HeadArgs &a) override {
    const int64_t H = a.H, K = kHcMult * H;
    std::vector<float> scratch;
    for (int64_t t = 0; t < a.T; ++t) {
      const bf16_bits *r_tok = a.residual + t * K;
      float raw[kHeadMixes], sum_sq;
      prenorm_gemm_token(r_tok, a.fn, kHeadMixes, K, raw, &sum_sq);
      const float inv_rms = inv_rms_f32(sum_sq, static_cast<float>(K), a.p->rms_eps);
      float pre[4];
      for (int j = 0; j < 4; ++j)
        pre[j] = sigmoid_f32(raw[j] * inv_rms * a.scale[0] + a.base[j]) + a.p->pre_eps;
      weighted_stream_sum(r_tok, pre, H, nullptr, 0.0f, a.out + t * H, scratch);
    }
  }

  size_t workspace_size(int32_t, const mhc_hc_params &, int64_t, int64_t) override { return 0; }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace mhc::cpu
