// The validated arguments of each operator, as the backends see them: raw typed pointers of
// dense row-major tensors plus the sizes. Validation (src/validate.cpp) has already checked
// every shape, dtype, device, stride, overlap and the workspace size, so backends only compute.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mhc/mhc.h"

namespace mhc {

constexpr int kHcMult = 4;                           // n: the only supported number of streams
constexpr int kMixes = kHcMult * (kHcMult + 2);      // M = 24 mix logits of hc_pre
constexpr int kHeadMixes = kHcMult;                  // hc_head has n logits

using bf16_bits = uint16_t;  // bf16 stored as its raw bits; arithmetic is always fp32

struct PreWeights {
  const float *fn;             // [M, n*H]
  const float *scale;          // [3]
  const float *base;           // [M]
  const bf16_bits *norm_weight;  // [H] or nullptr
};

struct PreArgs {
  const mhc_hc_params *p;
  int64_t T, H;
  PreWeights w;
  const bf16_bits *residual;  // [T, n, H]
  float *post_mix;            // [T, n]
  float *comb_mix;            // [T, n, n]
  bf16_bits *layer_input;     // [T, H]
  void *workspace;
  size_t workspace_bytes;
  struct CUstream_st *stream;
};

struct PostArgs {
  int64_t T, H;
  const bf16_bits *x;         // [T, H]
  const bf16_bits *residual;  // [T, n, H]
  const float *post_mix;      // [T, n]
  const float *comb_mix;      // [T, n, n]
  bf16_bits *residual_out;    // [T, n, H]
  struct CUstream_st *stream;
};

// The fused boundary: post.residual_out is the residual that pre consumes (pre.residual).
struct PostPreArgs {
  PostArgs post;
  PreArgs pre;
};

struct HeadArgs {
  const mhc_hc_params *p;
  int64_t T, H;
  const float *fn;            // [n, n*H]
  const float *scale;         // [>=1], element 0 used
  const float *base;          // [n]
  const bf16_bits *residual;  // [T, n, H]
  bf16_bits *out;             // [T, H]
  void *workspace;
  size_t workspace_bytes;
  struct CUstream_st *stream;
};

// A backend implements the four operators for validated arguments (T >= 1).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual void hc_pre(const PreArgs &a) = 0;
  virtual void hc_post(const PostArgs &a) = 0;
  virtual void hc_post_pre(const PostPreArgs &a) = 0;
  virtual void hc_head(const HeadArgs &a) = 0;
  // Bytes of device workspace the op needs; 0 for T == 0. Never smaller for a larger T.
  virtual size_t workspace_size(int32_t op, const mhc_hc_params &p, int64_t T, int64_t H) = 0;
};

}  // namespace mhc
