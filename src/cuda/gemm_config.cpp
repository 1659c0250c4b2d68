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
};

constexpr GemmVariant kFma = GemmVariant::kFma, kMma = GemmVariant::kMma;
constexpr Row kPreTable[] = {
    {1, kFma, 256, 8, 1, 1},
    {16, kFma, 256, 8, 4, 4},
    {128, kFma, 256, 8, 4, 32},
    {512, kMma, 64, 0, 0, 0},
    {INT64_MAX, kMma, 256, 0, 0, 0},
};
constexpr Row kHeadTable[] = {
    {16, kFma, 128, 1, 4, 4},
    {INT64_MAX, kFma, 512, 1, 4, 256},
};

bool g_override_set = false;
GemmConfig g_override{};
std::once_flag g_env_once;

void read_env_override() {
  const char *v = std::getenv("MHC_GEMM_CONFIG");
  if (v == nullptr) return;
  GemmConfig c{};
  int variant = 0;
  if (std::sscanf(v, "%d,%d,%d,%d,%d", &variant, &c.splits, &c.out_groups, &c.tokens_per_cta,
                  &c.token_ctas) == 5) {
    c.variant = variant ? GemmVariant::kMma : GemmVariant::kFma;
    set_gemm_config_override(&c);
  }
}

template <size_t N>
const Row &lookup(const Row (&table)[N], int64_t T) {
  for (const Row &r : table)
    if (T <= r.max_tokens) return r;
  return table[N - 1];
}

}  // namespace

void set_gemm_config_override(const GemmConfig *cfg) {
  g_override_set = cfg != nullptr;
  if (cfg) g_override = *cfg;
}

GemmConfig choose_gemm_config(int n_out, int64_t T, int64_t H, bool batch_invariant) {
  std::call_once(g_env_once, read_env_override);
  const int64_t key = batch_invariant ? INT64_MAX : T;
  const Row &r = n_out == 4 ? lookup(kHeadTable, key) : lookup(kPreTable, key);
  GemmConfig c;
  c.variant = r.variant;
  c.splits = static_cast<int>(std::clamp<int64_t>((H + r.chunk - 1) / r.chunk, 1, kMaxSplits));
  c.out_groups = r.out_groups;
  c.tokens_per_cta = r.tokens_per_cta;
  c.token_ctas = r.token_ctas;
  if (g_override_set && n_out != 4) {
    c.variant = g_override.variant;
    c.splits = std::clamp(g_override.splits, 1, kMaxSplits);
    c.out_groups = g_override.out_groups;
    c.tokens_per_cta = g_override.tokens_per_cta;
    c.token_ctas = g_override.token_ctas;
  }
  return c;
}

bool fuse_post_into_gemm(const GemmConfig &c, int64_t T) {
  return c.variant == GemmVariant::kFma && T <= 16;
}

size_t weight_parts_bytes(int64_t H) {
  return (static_cast<size_t>(3) * 24 * 4 * H * sizeof(uint16_t) + 255) / 256 * 256;
}

size_t gemm_workspace_bytes(int n_out, int64_t T, int64_t H, bool batch_invariant) {
  // Never smaller for a larger T: take the maximum over every bucket boundary <= T.
  auto bytes = [&](int64_t t) {
    const GemmConfig c = choose_gemm_config(n_out, t, H, batch_invariant);
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
