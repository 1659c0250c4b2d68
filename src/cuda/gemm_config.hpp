// Launch configuration of the split-K prenorm GEMM (the first kernel of hc_pre, hc_post_pre
// and hc_head), chosen from an explicit table by (T bucket, H). The split count and the
// output grouping decide the order of the fp32 sums, so hc_pre and hc_post_pre pick from the
// same table (bitwise promise), and with MHC_FLAG_BATCH_INVARIANT the choice ignores T.
// Tokens per CTA only changes which CTA does a token's work, never the arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>

namespace mhc::cuda {

// The finalize kernel stages one token's partials in shared memory: splits never exceed this.
constexpr int kMaxSplits = 256;

enum class GemmVariant : int { kFma = 0, kMma = 1, kCluster = 2 };

// What the device offers the dispatch: thread-block clusters (sm_90+) of up to this many CTAs
// (0: none, 8, or 16).
struct DeviceCaps {
  int max_cluster_ctas;
};

struct GemmConfig {
  GemmVariant variant; // CUDA-core FMA (decode sizes) or bf16x3 tensor cores (prefill sizes)
  int splits;          // K-splits: CTAs along the hidden dimension (grid.x); kCluster: CTAs per cluster
  int out_groups;      // G: thread groups sharing the outputs (24/G outputs per thread)
  int tokens_per_cta;  // TPB: tokens a CTA handles at once (register blocking)
  int token_ctas;      // FMA: grid.y cap, CTAs along the tokens (each loops over blocks)
  bool cluster = false; // FMA: the splits of a token block form a cluster and finish the op
                        // themselves (one kernel, no finalize; sm_90+, splits <= 16)
  bool early_launch = false;  // FMA split-K: the finalize may launch (PDL) when the GEMM
                              // starts rather than when it ends; faster for some grids,
                              // slower for others (TUNING.md), so it is a table field
  bool fuse_post = false;  // FMA: hc_post_pre computes the post inside the GEMM (one kernel
                           // + finalize) instead of the post kernel then hc_pre; same bits
};

// The Sinkhorn runs in its register form up to this many tokens, in its lane form above
// (mix_epilogue.cuh; same bits): on an H200 the register form is faster while few tokens'
// warps share an SM (hc_pre T <= 128 by 0.1-0.4 us) and slower at T = 512 (by 0.2-0.8 us).
constexpr int64_t kRegisterSinkhornMaxTokens = 128;

// From this many tokens the finalize walks whole token rows in ascending order, after the
// tensor-core GEMM walked them descending (FinalizeArgs::rows_together; same bits).
constexpr int64_t kRowsTogetherMinTokens = 1025;
inline bool finalize_rows_together(const GemmConfig &c, int64_t T) {
  return c.variant == GemmVariant::kMma && T >= kRowsTogetherMinTokens;
}

// The configuration for n_out outputs (24 for hc_pre, 4 for hc_head).
GemmConfig choose_gemm_config(int n_out, int64_t T, int64_t H, bool batch_invariant,
                              const DeviceCaps &caps);

// Whether the one-pass cluster kernel (prenorm_cluster_kernel.cu) takes (n_out, H) with
// clusters of this many CTAs: whole 32-channel steps per CTA, fn slice in shared memory.
bool cluster_fits(int n_out, int cluster_ctas, int64_t H);

// The MMA variant's bf16x3 split of fn, stored by prenorm_mma_kernel.cu in the MMA's fragment
// order: per k-step (64 channels of one stream, two sub-steps of 32) 12 KB -- per sub-step 2
// m-tiles of 16 outputs (24 used) x 3 parts x 2 halves x 32 lanes x 16 bytes.
constexpr int kMmaStepChannels = 64;
constexpr int kMmaFragBytesPerStep = 2 * 2 * 3 * 2 * 32 * 16;
// Its workspace bytes (a multiple of 16); it precedes the partials in the workspace.
size_t weight_parts_bytes(int64_t H);

// Workspace bytes (weight parts of the MMA variant, then the partial sums) for a configuration: splits * T * (n_out + 1) floats.
size_t gemm_workspace_bytes(int n_out, int64_t T, int64_t H, bool batch_invariant,
                            const DeviceCaps &caps);

// hc_post_pre runs as one fused kernel (+ finalize unless in cluster mode) only where that
// measured faster than the post kernel followed by hc_pre (GemmConfig::fuse_post, or the
// cluster mode, which always fuses); both give the same bits.
bool fuse_post_into_gemm(const GemmConfig &c);

// Process-wide overrides for the bench's tuning mode, read once (at the first call):
// MHC_GEMM_CONFIG (hc_pre, hc_post_pre) and MHC_HEAD_GEMM_CONFIG (hc_head), each
// "variant,splits,groups,tpb,ctas[,cluster[,early_launch[,fuse_post]]]" with variant 0 = FMA
// (cluster = 1: its one-kernel mode), 1 = MMA, 2 = one-pass cluster kernel (splits = CTAs per
// cluster). An override that cannot handle H is ignored. Never set in production.

}  // namespace mhc::cuda
