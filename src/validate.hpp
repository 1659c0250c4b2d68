// Argument validation: everything that can be checked before any device work. Each function
// either returns the backend arguments or throws mhc::Error with a message naming the
// argument and the expected and actual value.
#pragma once

#include "context.hpp"
#include "op_args.hpp"

namespace mhc {

constexpr int64_t kMaxHidden = int64_t{1} << 22;   // beyond: NOT_SUPPORTED
constexpr int64_t kMaxTokens = int64_t{1} << 31;   // exclusive bound; beyond: NOT_SUPPORTED

void validate_params(const mhc_hc_params *p);

PreArgs validate_pre(const mhc_context &ctx, const mhc_hc_params *p, const mhc_hc_weights *w,
                     const DLTensor *residual, const DLTensor *post_mix_out,
                     const DLTensor *comb_mix_out, const DLTensor *layer_input_out,
                     void *workspace, size_t workspace_bytes, struct CUstream_st *stream);

PostArgs validate_post(const mhc_context &ctx, const DLTensor *x, const DLTensor *residual,
                       const DLTensor *post_mix, const DLTensor *comb_mix,
                       const DLTensor *residual_out, struct CUstream_st *stream);

PostPreArgs validate_post_pre(const mhc_context &ctx, const mhc_hc_params *p,
                              const mhc_hc_weights *next, const DLTensor *x,
                              const DLTensor *residual, const DLTensor *post_mix,
                              const DLTensor *comb_mix, const DLTensor *residual_out,
                              const DLTensor *post_mix_out, const DLTensor *comb_mix_out,
                              const DLTensor *layer_input_out, void *workspace,
                              size_t workspace_bytes, struct CUstream_st *stream);

HeadArgs validate_head(const mhc_context &ctx, const mhc_hc_params *p, const DLTensor *fn_head,
                       const DLTensor *scale, const DLTensor *base, const DLTensor *residual,
                       const DLTensor *out, void *workspace, size_t workspace_bytes,
                       struct CUstream_st *stream);

// Validates op, p, num_tokens and hidden of mhc_workspace_size.
void validate_workspace_query(int32_t op, const mhc_hc_params *p, int64_t num_tokens,
                              int64_t hidden);

}  // namespace mhc
