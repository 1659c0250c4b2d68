// Launch configuration of the split-K prenorm GEMM (the first kernel of hc_pre, hc_post_pre
// and hc_head), chosen from an explicit table by (T bucket, H). The split count and the
// output grouping decide the order of the fp32 sums, so hc_pre and hc_post_pre pick from the
// same table (bitwise promise), and with MHC_FLAG_BATCH_INVARIANT the choice ignores T.
// Tokens per CTA only changes which CTA does a token's work, never the arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mhc::cuda {

struct GemmConfig {
  int splits;          // K-splits: CTAs along the hidden dimension (grid.x)
  int out_groups;      // G: thread groups sharing the outputs (24/G outputs per thread)
  int tokens_per_cta;  // TPB: tokens a CTA handles at once (register blocking)
  int token_ctas;      // grid.y cap: CTAs along the tokens (each loops over token blocks)
};

// The configuration for n_out outputs (24 for hc_pre, 4 for hc_head).
GemmConfig choose_gemm_config(int n_out, int64_t T, int64_t H, bool batch_invariant);

// Partial-sum workspace bytes for a configuration: splits * T * (n_out + 1) floats.
size_t gemm_workspace_bytes(int n_out, int64_t T, int64_t H, bool batch_invariant);

// Process-wide override for the bench's tuning mode: MHC_GEMM_CONFIG="splits,groups,tpb,ctas"
// read once (at the first call). Never set in production.
void set_gemm_config_override(const GemmConfig *cfg);

}  // namespace mhc::cuda
