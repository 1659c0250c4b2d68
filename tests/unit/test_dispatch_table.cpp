/* The CUDA dispatch table (src/cuda/gemm_config.cpp) checked on the CPU, for every T bucket,
 * many hidden sizes, both output counts, with and without MHC_FLAG_BATCH_INVARIANT and for
 * devices without clusters, with clusters of 8 and of 16: a configuration is only ever chosen
 * where its kernel can run it, batch invariance makes the choice independent of T, and the
 * workspace size covers the chosen configuration and never shrinks as T grows.
 *
 * gemm_config.cpp is plain C++ and is compiled into this test; the one thing it asks of the
 * CUDA side, cluster_fits() (the shared-memory budget of the one-pass cluster kernel), is
 * replaced by a stand-in predicate below, and the test checks that a cluster-kernel choice
 * was one the predicate allowed. */
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include <cmocka.h>
}

#include "cuda/gemm_config.hpp"

namespace mhc::cuda {
// Stand-in: cluster sizes 8 or 16, whole 32-channel steps per CTA, fn slice <= 160 KiB.
bool cluster_fits(int n_out, int cluster_ctas, int64_t H) {
  if (cluster_ctas != 8 && cluster_ctas != 16) return false;
  if (H % (static_cast<int64_t>(cluster_ctas) * 32) != 0) return false;
  return static_cast<int64_t>(n_out) * 4 * (H / cluster_ctas) * 4 <= 160 * 1024;
}
}  // namespace mhc::cuda

using mhc::cuda::DeviceCaps;
using mhc::cuda::GemmConfig;
using mhc::cuda::GemmVariant;

namespace {

std::vector<int64_t> token_counts() {
  std::vector<int64_t> ts;
  for (int64_t t = 1; t <= 130; ++t) ts.push_back(t);
  for (int64_t t : {255, 256, 257, 511, 512, 513, 1000, 2047, 2048, 2049, 4096, 8192, 65536,
                    1 << 20})
    ts.push_back(t);
  return ts;
}

const int64_t kHidden[] = {1, 7, 8, 64, 100, 256, 1000, 1280, 2048, 2560, 4096, 4096 + 64,
                           5120, 7168, 8192, 12288, 16384, 65536};
const DeviceCaps kCaps[] = {{0}, {8}, {16}};

bool same(const GemmConfig &a, const GemmConfig &b) {
  return a.variant == b.variant && a.splits == b.splits && a.out_groups == b.out_groups &&
         a.tokens_per_cta == b.tokens_per_cta && a.token_ctas == b.token_ctas &&
         a.cluster == b.cluster && a.early_launch == b.early_launch && a.fuse_post == b.fuse_post;
}

void describe(char *buf, size_t n, int n_out, int64_t T, int64_t H, bool bi, const DeviceCaps &caps,
              const GemmConfig &c) {
  std::snprintf(buf, n,
                "n_out %d T %lld H %lld bi %d clusters %d: variant %d splits %d groups %d tpb %d "
                "ctas %d cluster %d early %d fuse %d",
                n_out, static_cast<long long>(T), static_cast<long long>(H), bi ? 1 : 0,
                caps.max_cluster_ctas, static_cast<int>(c.variant), c.splits, c.out_groups,
                c.tokens_per_cta, c.token_ctas, c.cluster ? 1 : 0, c.early_launch ? 1 : 0,
                c.fuse_post ? 1 : 0);
}

// What a kernel can run: the checks the launchers would otherwise fail with.
const char *unrunnable(const GemmConfig &c, int n_out, int64_t H, const DeviceCaps &caps) {
  if (c.splits < 1 || c.splits > mhc::cuda::kMaxSplits) return "splits outside [1, kMaxSplits]";
  switch (c.variant) {
    case GemmVariant::kFma:
      if (c.tokens_per_cta != 1 && c.tokens_per_cta != 2 && c.tokens_per_cta != 4)
        return "tokens_per_cta not built (1, 2, 4)";
      if (c.token_ctas < 1) return "no token CTAs";
      if (c.out_groups != (n_out == 24 ? 8 : 1)) return "output grouping not built";
      if (c.cluster && (n_out != 24 || c.splits > caps.max_cluster_ctas))
        return "one-kernel cluster mode where clusters cannot hold the splits";
      if (c.cluster && c.early_launch) return "early launch in the one-kernel mode (no finalize)";
      return nullptr;
    case GemmVariant::kMma:
      if (n_out != 24 && n_out != 4) return "tensor-core variant built for 24 and 4 outputs only";
      if (c.early_launch) return "early launch on the tensor-core path";
      return nullptr;
    case GemmVariant::kCluster:
      if (c.splits > caps.max_cluster_ctas) return "cluster kernel larger than the device allows";
      if (!mhc::cuda::cluster_fits(n_out, c.splits, H)) return "cluster kernel for an H it cannot hold";
      return nullptr;
  }
  return "unknown variant";
}

size_t bytes_needed(const GemmConfig &c, int n_out, int64_t T, int64_t H) {
  if (c.variant == GemmVariant::kCluster || c.cluster) return 0;
  const size_t parts = c.variant == GemmVariant::kMma ? mhc::cuda::weight_parts_bytes(H) : 0;
  return parts + static_cast<size_t>(c.splits) * static_cast<size_t>(T) * (n_out + 1) * sizeof(float);
}

void check_all(int n_out) {
  int failures = 0;
  char what[256];
  const std::vector<int64_t> ts = token_counts();
  for (const DeviceCaps &caps : kCaps)
    for (int64_t H : kHidden)
      for (int bi = 0; bi <= 1; ++bi) {
        const GemmConfig first = mhc::cuda::choose_gemm_config(n_out, ts.front(), H, bi, caps);
        size_t prev_ws = 0;
        for (int64_t T : ts) {
          const GemmConfig c = mhc::cuda::choose_gemm_config(n_out, T, H, bi, caps);
          describe(what, sizeof what, n_out, T, H, bi, caps, c);
          if (const char *why = unrunnable(c, n_out, H, caps)) {
            std::printf("FAIL %s: %s\n", what, why);
            ++failures;
          }
          if (bi && !same(c, first)) {
            std::printf("FAIL %s: batch-invariant choice depends on T\n", what);
            ++failures;
          }
          if (mhc::cuda::fuse_post_into_gemm(c) && c.variant != GemmVariant::kFma) {
            std::printf("FAIL %s: boundary fused into a non-FMA kernel\n", what);
            ++failures;
          }
          const size_t ws = mhc::cuda::gemm_workspace_bytes(n_out, T, H, bi, caps);
          if (ws < bytes_needed(c, n_out, T, H)) {
            std::printf("FAIL %s: workspace %zu < %zu needed\n", what, ws, bytes_needed(c, n_out, T, H));
            ++failures;
          }
          if (ws < prev_ws) {
            std::printf("FAIL %s: workspace %zu shrank from %zu at a smaller T\n", what, ws, prev_ws);
            ++failures;
          }
          prev_ws = ws;
        }
        if (mhc::cuda::gemm_workspace_bytes(n_out, 0, H, bi, caps) != 0) {
          std::printf("FAIL n_out %d H %lld: workspace at T = 0 is not 0\n", n_out,
                      static_cast<long long>(H));
          ++failures;
        }
      }
  std::printf("dispatch n_out=%d: %zu T x %zu H x 2 flags x 3 devices checked, %d failure(s)\n",
              n_out, ts.size(), sizeof kHidden / sizeof kHidden[0], failures);
  if (failures) fail_msg("%d dispatch check(s) failed", failures);
}

void test_hc_pre_table(void **) { check_all(24); }
void test_hc_head_table(void **) { check_all(4); }

// The decode rows measured fastest as split-K pairs, the prefill rows as tensor-core pairs
// (hc_head's from T = 129): the table says what the README's "what runs" says.
void test_documented_paths(void **) {
  const DeviceCaps h200{16};
  for (int64_t H : {4096, 7168}) {
    for (int64_t T : {1, 2, 4, 8, 16, 32, 64}) {
      const GemmConfig c = mhc::cuda::choose_gemm_config(24, T, H, false, h200);
      assert_int_equal(static_cast<int>(c.variant), static_cast<int>(GemmVariant::kFma));
      assert_false(c.cluster);
      assert_int_equal(c.early_launch, T <= 16);
      assert_true(mhc::cuda::fuse_post_into_gemm(c));  // every FMA row fuses
    }
    for (int64_t T : {65, 128, 512, 2048, 8192}) {
      const GemmConfig c = mhc::cuda::choose_gemm_config(24, T, H, false, h200);
      assert_int_equal(static_cast<int>(c.variant), static_cast<int>(GemmVariant::kMma));
      assert_false(mhc::cuda::fuse_post_into_gemm(c));
    }
    // hc_head: FMA pairs up to T = 128, the tensor-core pair above (the cluster kernel only
    // through the tuning override)
    for (int64_t T : {1, 16, 128})
      assert_int_equal(static_cast<int>(mhc::cuda::choose_gemm_config(4, T, H, false, h200).variant),
                       static_cast<int>(GemmVariant::kFma));
    for (int64_t T : {129, 512, 8192})
      assert_int_equal(static_cast<int>(mhc::cuda::choose_gemm_config(4, T, H, false, h200).variant),
                       static_cast<int>(GemmVariant::kMma));
  }
  // H = 7168 keeps 28 splits at T <= 2 (max_splits) and 14 at T = 32 / 64
  assert_int_equal(mhc::cuda::choose_gemm_config(24, 1, 7168, false, h200).splits, 28);
  assert_int_equal(mhc::cuda::choose_gemm_config(24, 1, 4096, false, h200).splits, 32);
  assert_int_equal(mhc::cuda::choose_gemm_config(24, 32, 7168, false, h200).splits, 14);
  assert_int_equal(mhc::cuda::choose_gemm_config(24, 64, 4096, false, h200).splits, 8);
  assert_int_equal(mhc::cuda::choose_gemm_config(24, 64, 7168, false, h200).splits, 14);
  // prefill: two 64-channel steps per split up to T = 1024 (32 / 56 splits), then at most 16
  // splits (hc_head: at most 32)
  assert_int_equal(mhc::cuda::choose_gemm_config(24, 512, 4096, false, h200).splits, 32);
  assert_int_equal(mhc::cuda::choose_gemm_config(24, 1024, 7168, false, h200).splits, 56);
  assert_int_equal(mhc::cuda::choose_gemm_config(4, 512, 7168, false, h200).splits, 56);
  assert_int_equal(mhc::cuda::choose_gemm_config(4, 8192, 4096, false, h200).splits, 32);
  assert_int_equal(mhc::cuda::choose_gemm_config(4, 8192, 7168, false, h200).splits, 32);
  for (int64_t H : {4096, 7168}) {
    assert_int_equal(mhc::cuda::choose_gemm_config(24, 2048, H, false, h200).splits, 16);
    assert_int_equal(mhc::cuda::choose_gemm_config(24, 8192, H, false, h200).splits, 16);
    assert_int_equal(mhc::cuda::choose_gemm_config(24, 1, H, true, h200).splits, 16);
  }
  // a hidden size below the cap keeps one split per 256 channels
  assert_int_equal(mhc::cuda::choose_gemm_config(24, 8192, 1000, false, h200).splits, 4);
}

}  // namespace

int main() {
  // the tuning overrides must not steer this test
  unsetenv("MHC_GEMM_CONFIG");
  unsetenv("MHC_HEAD_GEMM_CONFIG");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hc_pre_table),
      cmocka_unit_test(test_hc_head_table),
      cmocka_unit_test(test_documented_paths),
  };
  return cmocka_run_group_tests(tests, nullptr, nullptr);
}
