#include "cuda/gemm_config.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace mhc::cuda {
namespace {

// One row per T bucket (T <= max_tokens). Splits are given for H = 4096 as channels per split
// (`chunk`), so other hidden sizes keep the same work per CTA: splits = ceil(H / chunk).
// Numbers chosen by measurement: src/cuda/TUNING.md has the sweep that justifies them.
struct Row {
  int64_t max_tokens;
  GemmVariant variant;
  int chunk;        // channels per split
  int out_groups;
  int tokens_per_cta;
  int token_ctas;
  int cluster_ctas;  // > 0: the one-pass cluster kernel with clusters of this many CTAs,
                     // where the device and H allow it; else the configuration above
  bool one_kernel;   // FMA: cluster mode (the splits finish the op), where the device allows
  int max_splits = 0;  // > 0: double `chunk` until ceil(H / chunk) <= max_splits
  bool early_launch = false;  // GemmConfig::early_launch
  bool fuse_post = false;     // GemmConfig::fuse_post
  bool cap_splits = false;    // max_splits caps the split count instead of doubling `chunk`
                              // (MMA rows: a split takes ceil(steps / splits) 64-channel
                              // steps, so any count works and H = 7168 gets the same grid)
};

constexpr GemmVariant kFma = GemmVariant::kFma, kMma = GemmVariant::kMma;
constexpr Row kPreTable[] = {
    // decode: split-K pairs (FMA GEMM + finalize); max_splits keeps H = 7168 at 28 / 14 splits
    {2, kFma, 128, 8, 1, 2, 0, false, 32, true, true},
    {4, kFma, 256, 8, 1, 4, 0, false, 0, true, true},
    {8, kFma, 256, 8, 2, 4, 0, false, 0, true, true},
    {16, kFma, 256, 8, 4, 4, 0, false, 0, true, true},
    {32, kFma, 256, 8, 4, 8, 0, false, 16, false, true},
    {64, kFma, 512, 8, 4, 16, 0, false, 0, false, true},
    {128, kMma, 64, 0, 0, 0, 0, false},  // one 64-channel step per split: 64 / 112 splits
    // prefill: two steps per split up to T = 1024 (32 / 56 splits at H = 4096 / 7168: at
    // T = 512, 4 token blocks x 32 = 128 CTAs for 132 SMs), 16 splits above (at H = 7168,
    // 112 steps / 16 = 7 per split; 28 splits of 4 measured slower from T = 2048). At
    // T = 8192, 8 splits measured 1.5 % / 3 % faster with 32-channel steps, but 16 keeps the
    // batch-invariant row, which serves every T, twice as wide for small T.
    {1024, kMma, 128, 0, 0, 0, 0, false},
    {INT64_MAX, kMma, 256, 0, 0, 0, 0, false, 16, false, false, true},
};
constexpr Row kHeadTable[] = {
    {4, kFma, 128, 1, 4, 4, 0, false, 0, true},
    // T = 5..32: 512-channel splits with early launch measured 0.3-2.3 us faster than
    // 128-channel ones on an H200 (4.3-4.9 vs 4.6-5.3 us at H = 4096, 4.5-5.7 vs 4.9-7.2 at
    // 7168: src/cuda/TUNING.md, eighth sweep)
    {32, kFma, 512, 1, 4, 256, 0, false, 0, true},
    {128, kFma, 512, 1, 4, 256, 0, false},
    // the tensor-core pair (4 outputs: one m-tile) from T = 129: two 64-channel steps per
    // split up to T = 1024 (32 / 56 splits at H = 4096 / 7168), at most 32 splits above (28
    // of 4 steps at H = 7168); it replaced the FMA pair (T <= 512) and the one-pass cluster
    // kernel (T > 512), 1.3-2x slower on an H200 (src/cuda/TUNING.md, eighth sweep)
    {1024, kMma, 128, 0, 0, 0, 0, false},
    {INT64_MAX, kMma, 128, 0, 0, 0, 0, false, 32, false, false, true},
};

bool g_override_set[2] = {false, false};  // [hc_pre, hc_head]
GemmConfig g_override[2]{};
std::once_flag g_env_once;

void read_env_override(const char *name, int which) {
  const char *v = std::getenv(name);
  if (v == nullptr) return;
  GemmConfig c{};
  int variant = 0, cluster = 0, early = 0, fuse = 0;
  const int n = std::sscanf(v, "%d,%d,%d,%d,%d,%d,%d,%d", &variant, &c.splits, &c.out_groups,
                            &c.tokens_per_cta, &c.token_ctas, &cluster, &early, &fuse);
  if (n >= 5 && variant >= 0 && variant <= 2) {
    c.variant = static_cast<GemmVariant>(variant);
    c.cluster = cluster != 0;
    c.early_launch = early != 0;
    c.fuse_post = fuse != 0;
    g_override[which] = c;
    g_override_set[which] = true;
  }
}

void read_env_overrides() {
  read_env_override("MHC_GEMM_CONFIG", 0);
  read_env_override("MHC_HEAD_GEMM_CONFIG", 1);
}

bool config_fits(const GemmConfig &c, int n_out, int64_t H, const DeviceCaps &caps) {
  if (c.cluster)  // one-kernel FMA: a cluster of all the splits
    return c.variant == GemmVariant::kFma && n_out == 24 && c.splits <= caps.max_cluster_ctas;
  if (c.variant != GemmVariant::kCluster) return true;  // the split-K kernels take any H
  return c.splits <= caps.max_cluster_ctas && cluster_fits(n_out, c.splits, H);
}

template <size_t N>
const Row &lookup(const Row (&table)[N], int64_t T) {
  for (const Row &r : table)
    if (T <= r.max_tokens) return r;
  return table[N - 1];
}

}  // namespace

GemmConfig choose_gemm_config(int n_out, int64_t T, int64_t H, bool batch_invariant,
                              const DeviceCaps &caps) {
  std::call_once(g_env_once, read_env_overrides);
  const int64_t key = batch_invariant ? INT64_MAX : T;
  const Row &r = n_out == 4 ? lookup(kHeadTable, key) : lookup(kPreTable, key);
  GemmConfig c;
  c.variant = r.variant;
  int64_t chunk = r.chunk;
  while (!r.cap_splits && r.max_splits > 0 && (H + chunk - 1) / chunk > r.max_splits) chunk *= 2;
  int64_t splits = (H + chunk - 1) / chunk;
  if (r.cap_splits) splits = std::min<int64_t>(splits, r.max_splits);
  c.splits = static_cast<int>(std::clamp<int64_t>(splits, 1, kMaxSplits));
  c.out_groups = r.out_groups;
  c.tokens_per_cta = r.tokens_per_cta;
  c.token_ctas = r.token_ctas;
  c.early_launch = r.early_launch;
  c.fuse_post = r.fuse_post;
  // every split of the row in one cluster, where they fit (else the split-K pair)
  if (r.one_kernel && n_out == 24 && c.splits <= caps.max_cluster_ctas) c.cluster = true;
  if (r.cluster_ctas > 0) {
    const GemmConfig cl{GemmVariant::kCluster, r.cluster_ctas, 0, 0, 0, false};
    const GemmConfig cl8{GemmVariant::kCluster, 8, 0, 0, 0, false};
    if (config_fits(cl, n_out, H, caps)) c = cl;
    else if (r.cluster_ctas == 16 && config_fits(cl8, n_out, H, caps)) c = cl8;
  }
  const int which = n_out == 4 ? 1 : 0;
  if (g_override_set[which]) {
    GemmConfig o = g_override[which];
    o.splits = std::clamp(o.splits, 1, kMaxSplits);
    if (config_fits(o, n_out, H, caps)) c = o;
  }
  return c;
}

bool fuse_post_into_gemm(const GemmConfig &c) {
  return c.variant == GemmVariant::kFma && (c.fuse_post || c.cluster);
}

size_t weight_parts_bytes(int64_t H) {
  const int64_t steps = 4 * ((H + kMmaStepChannels - 1) / kMmaStepChannels);
  return static_cast<size_t>(steps) * kMmaFragBytesPerStep;
}

size_t gemm_workspace_bytes(int n_out, int64_t T, int64_t H, bool batch_invariant,
                            const DeviceCaps &caps) {
  // Never smaller for a larger T: take the maximum over every bucket boundary <= T.
  auto bytes = [&](int64_t t) -> size_t {
    const GemmConfig c = choose_gemm_config(n_out, t, H, batch_invariant, caps);
    if (c.variant == GemmVariant::kCluster || c.cluster) return 0;  // partials stay on chip
    const size_t parts = c.variant == GemmVariant::kMma ? weight_parts_bytes(H) : 0;
    return parts + static_cast<size_t>(c.splits) * static_cast<size_t>(t) * (n_out + 1) * sizeof(float);
  };
  size_t best = T > 0 ? bytes(T) : 0;
  const Row *begin = n_out == 4 ? kHeadTable : kPreTable;
  const size_t n = n_out == 4 ? sizeof kHeadTable / sizeof(Row) : sizeof kPreTable / sizeof(Row);
  for (size_t i = 0; i < n; ++i)
    if (begin[i].max_tokens < T) best = std::max(best, bytes(begin[i].max_tokens));
  return best;
}

}  // namespace mhc::cuda
