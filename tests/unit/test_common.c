/* Unit tests of the shared test helpers (tests/common): if these are wrong, every other test
 * is wrong in the same way, so they are checked against hand-computed values here. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "reference64.h"
#include "test_util.h"

static float f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static void test_bf16_rounding(void **state) {
  (void)state;
  assert_int_equal(mhct_f32_to_bf16(1.0f), 0x3F80);
  assert_int_equal(mhct_f32_to_bf16(-1.5f), 0xBFC0);
  /* ties go to even */
  assert_int_equal(mhct_f32_to_bf16(1.0f + 0x1p-8f), 0x3F80);
  assert_int_equal(mhct_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);
  /* above the tie rounds up */
  assert_int_equal(mhct_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);
  /* NaN of any sign/payload -> 0x7FFF; inf stays inf; overflow rounds to inf */
  assert_int_equal(mhct_f32_to_bf16(NAN), 0x7FFF);
  assert_int_equal(mhct_f32_to_bf16(f32_from_bits(0xFFC00001u)), 0x7FFF);
  assert_int_equal(mhct_f32_to_bf16(f32_from_bits(0x7F800001u)), 0x7FFF);
  assert_int_equal(mhct_f32_to_bf16(INFINITY), 0x7F80);
  assert_int_equal(mhct_f32_to_bf16(-INFINITY), 0xFF80);
  assert_int_equal(mhct_f32_to_bf16(FLT_MAX), 0x7F80);
  assert_int_equal(mhct_f32_to_bf16(f32_from_bits(0x7F7F7FFFu)), 0x7F7F);
  assert_int_equal(mhct_f32_to_bf16(-0.0f), 0x8000);
  assert_int_equal(mhct_f32_to_bf16(f32_from_bits(0x00008000u)), 0x0000); /* subnormal tie */
  assert_int_equal(mhct_f32_to_bf16(f32_from_bits(0x00018000u)), 0x0002);

  /* every non-NaN bf16 survives the round trip through float */
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    if ((b & 0x7FFFu) > 0x7F80u) continue;
    const float f = mhct_bf16_to_f32((uint16_t)b);
    assert_int_equal(mhct_f32_to_bf16(f), b);
    assert_int_equal(mhct_f64_to_bf16((double)f), b);
  }
}

static void test_bf16_from_double(void **state) {
  (void)state;
  /* float64 -> bf16 rounds once: 1 + 2^-8 + 2^-40 is above the tie (-> 1 + 2^-7), while
   * rounding to float first would make it the tie (-> 1.0). */
  assert_int_equal(mhct_f64_to_bf16(1.0 + 0x1p-8 + 0x1p-40), 0x3F81);
  assert_int_equal(mhct_f64_to_bf16(1.0 + 0x1p-8), 0x3F80);
  assert_int_equal(mhct_f64_to_bf16(-(1.0 + 3 * 0x1p-8)), 0xBF82);
  assert_int_equal(mhct_f64_to_bf16(1e300), 0x7F80);
  assert_int_equal(mhct_f64_to_bf16(-1e300), 0xFF80);
  assert_int_equal(mhct_f64_to_bf16(NAN), 0x7FFF);
  assert_int_equal(mhct_f64_to_bf16(1e-300), 0x0000);
  assert_int_equal(mhct_f64_to_bf16(0x1p-133), 0x0001);            /* smallest subnormal */
  assert_int_equal(mhct_f64_to_bf16(0x1p-134), 0x0000);            /* tie to even (zero) */
  assert_int_equal(mhct_f64_to_bf16(0x1p-134 + 0x1p-160), 0x0001); /* above the tie */
  /* largest finite bf16 and the overflow threshold */
  assert_int_equal(mhct_f64_to_bf16(0x1.FEp127), 0x7F7F);
  assert_int_equal(mhct_f64_to_bf16(0x1.FFp127), 0x7F80); /* tie between max and 2^128 */
  /* agrees with the float path for random floats */
  mhct_rng r;
  mhct_rng_seed(&r, 7);
  for (int i = 0; i < 100000; ++i) {
    const uint32_t bits = (uint32_t)mhct_rng_u64(&r);
    const float f = f32_from_bits(bits);
    if (isnan(f)) continue;
    assert_int_equal(mhct_f64_to_bf16((double)f), mhct_f32_to_bf16(f));
  }
}

static void test_ulps(void **state) {
  (void)state;
  assert_int_equal(mhct_bf16_ulp_distance(0x3F80, 0x3F81), 1);
  assert_int_equal(mhct_bf16_ulp_distance(0x3F81, 0x3F80), 1);
  assert_int_equal(mhct_bf16_ulp_distance(0x0000, 0x8000), 0);
  assert_int_equal(mhct_bf16_ulp_distance(0x0001, 0x8001), 2);
  assert_int_equal(mhct_bf16_ulp_distance(0x3F7F, 0x3F80), 1); /* across a binade */
  assert_int_equal(mhct_bf16_ulp_distance(0x7FFF, 0x7FC0), 0); /* both NaN */
  assert_int_equal(mhct_bf16_ulp_distance(0x7FFF, 0x3F80), INT32_MAX);
  assert_true(mhct_bf16_ulp(1.0) == 0x1p-7);
  assert_true(mhct_bf16_ulp(1.99) == 0x1p-7);
  assert_true(mhct_bf16_ulp(-0.75) == 0x1p-8);
  assert_true(mhct_bf16_ulp(0.0) == 0x1p-133);
}

static void test_rng(void **state) {
  (void)state;
  mhct_rng a, b;
  mhct_rng_seed(&a, 42);
  mhct_rng_seed(&b, 42);
  for (int i = 0; i < 1000; ++i) assert_true(mhct_rng_u64(&a) == mhct_rng_u64(&b));
  /* splitmix64 reference value (first output for seed 0) */
  mhct_rng_seed(&a, 0);
  assert_true(mhct_rng_u64(&a) == 0xE220A8397B1DCDAFull);
  double sum = 0, sum2 = 0, umin = 1, umax = 0;
  const int n = 200000;
  mhct_rng_seed(&a, 1);
  for (int i = 0; i < n; ++i) {
    const double z = mhct_rng_normal(&a);
    sum += z;
    sum2 += z * z;
    const double u = mhct_rng_uniform(&b);
    umin = u < umin ? u : umin;
    umax = u > umax ? u : umax;
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  assert_true(fabs(mean) < 0.01);
  assert_true(fabs(var - 1.0) < 0.02);
  assert_true(umin > 0.0 && umax < 1.0);
  assert_true(mhct_seed_mix(1, 2, 3) != mhct_seed_mix(1, 3, 2));
}

static void test_sinkhorn_reference(void **state) {
  (void)state;
  /* equal logits: the map c -> c / (4c + eps) has the fixed point (1 - eps) / 4 */
  double c[4][4];
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) c[a][b] = 0.3;
  mhcr_sinkhorn(c, 20, 1e-6);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) assert_true(fabs(c[a][b] - (1.0 - 1e-6) / 4.0) < 1e-15);
  /* one iteration, eps 0: softmax then one column normalisation (hand-computed) */
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) c[a][b] = 0.0;
  c[0][0] = log(3.0); /* row 0 softmax: 1/2, 1/6, 1/6, 1/6; other rows 1/4 */
  mhcr_sinkhorn(c, 1, 0.0);
  assert_true(fabs(c[0][0] - 2.0 / 5.0) < 1e-15);
  assert_true(fabs(c[1][0] - 1.0 / 5.0) < 1e-15);
  assert_true(fabs(c[0][1] - 2.0 / 11.0) < 1e-15);
  assert_true(fabs(c[3][3] - 3.0 / 11.0) < 1e-15);
  /* random logits: doubly stochastic after 20 iterations */
  mhct_rng r;
  mhct_rng_seed(&r, 3);
  for (int trial = 0; trial < 100; ++trial) {
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) c[a][b] = mhct_rng_normal(&r);
    mhcr_sinkhorn(c, 20, 1e-6);
    for (int k = 0; k < 4; ++k) {
      const double rs = c[k][0] + c[k][1] + c[k][2] + c[k][3];
      const double cs = c[0][k] + c[1][k] + c[2][k] + c[3][k];
      assert_true(fabs(cs - 1.0) < 1e-5);
      assert_true(fabs(rs - 1.0) < 1e-3);
    }
  }
}

static void test_reference_post(void **state) {
  (void)state;
  /* H = 1: out_j = post_j x + sum_i comb[i][j] r_i */
  const uint16_t x[1] = {mhct_f32_to_bf16(2.0f)};
  const uint16_t res[4] = {mhct_f32_to_bf16(1.0f), mhct_f32_to_bf16(-2.0f),
                           mhct_f32_to_bf16(0.5f), mhct_f32_to_bf16(4.0f)};
  const float post[4] = {1.0f, 0.5f, 0.0f, -1.0f};
  float comb[16];
  for (int i = 0; i < 16; ++i) comb[i] = (float)i; /* comb[i][j] = 4i + j */
  double out[4], err[4];
  mhcr_hc_post(1, 1, x, res, post, comb, out, err);
  const double r[4] = {1.0, -2.0, 0.5, 4.0};
  for (int j = 0; j < 4; ++j) {
    double want = post[j] * 2.0;
    for (int i = 0; i < 4; ++i) want += (4 * i + j) * r[i];
    assert_true(out[j] == want);
    assert_true(err[j] > 0.0 && err[j] < 1e-4);
  }
}

static void test_reference_pre_simple(void **state) {
  (void)state;
  /* fn = 0, base = 0: pre = 0.5 + pre_eps, post = 0.5 * post_mult, comb = (1 - eps)/4 */
  mhc_hc_params p = MHC_HC_PARAMS_INIT;
  const int64_t H = 2;
  float fn[24 * 8], scale[3] = {1, 1, 1}, base[24];
  memset(fn, 0, sizeof fn);
  memset(base, 0, sizeof base);
  uint16_t res[8];
  for (int k = 0; k < 8; ++k) res[k] = mhct_f32_to_bf16((float)(k + 1));
  double post[4], comb[16], pre[4], li[2], li_err[2];
  mhcr_pre_out o;
  memset(&o, 0, sizeof o);
  o.post_mix = post;
  o.comb_mix = comb;
  o.pre = pre;
  o.layer_input = li;
  o.layer_input_err = li_err;
  mhcr_hc_pre(&p, 1, H, res, fn, scale, base, NULL, 0.0, NULL, &o);
  for (int j = 0; j < 4; ++j) {
    assert_true(fabs(pre[j] - (0.5 + (double)p.pre_eps)) < 1e-15);
    assert_true(fabs(post[j] - 1.0) < 1e-15);
  }
  for (int i = 0; i < 16; ++i) assert_true(fabs(comb[i] - (1.0 - (double)p.sinkhorn_eps) / 4) < 1e-12);
  /* li[h] = pre * (r0 + r1 + r2 + r3): h=0: 1+3+5+7 = 16, h=1: 2+4+6+8 = 20 */
  assert_true(fabs(li[0] - 16 * pre[0]) < 1e-12);
  assert_true(fabs(li[1] - 20 * pre[0]) < 1e-12);
}

static void test_compare(void **state) {
  (void)state;
  mhct_cmp r;
  char line[512];
  const float got[4] = {1.0f, 2.0f, 3.0f, 4.5f};
  const double exp[4] = {1.0, 2.0001, 3.0, 4.0};
  assert_false(mhct_cmp_f32_f64(&r, "f32", got, exp, 4, 1e-4, 1e-5));
  assert_int_equal(r.n_bad, 1);
  assert_int_equal(r.worst_index, 3);
  assert_int_equal(r.bad_index, 3);
  assert_true(r.worst_got == 4.5 && r.worst_expected == 4.0);
  puts(mhct_cmp_line(&r, line, sizeof line));

  /* bf16: 1 ulp passes, 2 ulps fail unless the budget covers them */
  const uint16_t g[3] = {0x3F81, 0x3F82, 0x3F80};
  const double e[3] = {1.0, 1.0, 1.0};
  assert_true(mhct_cmp_bf16_f64(&r, "bf16 1ulp", g, e, NULL, 1, 1));
  assert_false(mhct_cmp_bf16_f64(&r, "bf16 2ulp", g, e, NULL, 3, 1));
  assert_int_equal(r.max_ulps, 2);
  assert_int_equal(r.worst_index, 1);
  assert_int_equal(r.n_inexact, 2);
  const double budget[3] = {0.0, 0x1p-7 * 1.5, 0.0};
  assert_true(mhct_cmp_bf16_f64(&r, "bf16 budget", g, e, budget, 3, 1));
  assert_int_equal(r.n_budget, 1);
  const uint16_t eb[3] = {0x3F80, 0x3F80, 0x3F80};
  assert_false(mhct_cmp_bf16_bf16(&r, "bf16 vs bf16", g, eb, NULL, 3, 1));
  assert_true(mhct_cmp_bf16_bf16(&r, "bf16 vs bf16", g, eb, NULL, 3, 2));
  assert_false(mhct_cmp_bits(&r, "bits", g, eb, 3, 2));
  assert_int_equal(r.n_bad, 2);
  assert_int_equal(r.bad_index, 0);
  puts(mhct_cmp_line(&r, line, sizeof line));

  /* the parallel path gives the same answer as a serial scan */
  const size_t n = (size_t)1 << 20;
  uint16_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  assert_non_null(a);
  assert_non_null(b);
  for (size_t i = 0; i < n; ++i) a[i] = b[i] = (uint16_t)(0x3F80 + (i % 64));
  b[12345] += 3;
  b[777777] += 3;
  b[900000] += 1;
  assert_false(mhct_cmp_bf16_bf16(&r, "big", a, b, NULL, n, 1));
  assert_int_equal(r.n_bad, 2);
  assert_int_equal(r.bad_index, 12345);
  assert_int_equal(r.worst_index, 12345);
  assert_int_equal(r.n_inexact, 3);
  free(a);
  free(b);
}

static void count_range(void *ctx, int64_t b, int64_t e) {
  int *hits = (int *)ctx;
  for (int64_t i = b; i < e; ++i) hits[i]++; /* disjoint ranges: no race */
}

static void test_threads_and_views(void **state) {
  (void)state;
  int hits[1000];
  memset(hits, 0, sizeof hits);
  mhct_parallel_for(1000, 7, count_range, hits);
  for (int i = 0; i < 1000; ++i) assert_int_equal(hits[i], 1);
  mhct_parallel_for(3, 16, count_range, hits);
  assert_int_equal(hits[2], 2);

  mhct_tensor t, v;
  const int64_t shape[3] = {5, 4, 3};
  assert_int_equal(mhct_tensor_alloc_ex(&t, kDLCPU, MHCT_BF16, 3, shape, 6, 10), 0);
  assert_int_equal(t.dl.byte_offset, 6);
  assert_true(t.dl.shape == t.shape);
  assert_int_equal(mhct_tensor_nbytes(&t), 5 * 4 * 3 * 2);
  mhct_tensor_view_rows(&v, &t, 2, 3);
  assert_true(v.dl.shape == v.shape);
  assert_int_equal(v.shape[0], 3);
  assert_int_equal(v.dl.byte_offset, 6 + 2 * 12 * 2);
  assert_null(v.alloc);
  assert_ptr_equal(mhct_tensor_ptr(&v), (char *)t.dl.data + 6 + 48);
  mhct_tensor_set_dense_strides(&v);
  assert_int_equal(v.strides[0], 12);
  assert_int_equal(v.strides[2], 1);
  mhct_tensor_free(&t);
  assert_null(t.alloc);
}

static void test_problem_prefix(void **state) {
  (void)state;
  /* a problem of T tokens is the prefix of the same problem with more tokens */
  mhct_problem a, b;
  assert_int_equal(mhct_problem_alloc(&a, kDLCPU, 3, 16, 0), 0);
  assert_int_equal(mhct_problem_alloc(&b, kDLCPU, 9, 16, 0), 0);
  mhct_problem_fill(&a, MHCT_INPUTS_MODEL, 11);
  mhct_problem_fill(&b, MHCT_INPUTS_MODEL, 11);
  assert_memory_equal(mhct_tensor_ptr(&a.residual), mhct_tensor_ptr(&b.residual),
                      mhct_tensor_nbytes(&a.residual));
  assert_memory_equal(mhct_tensor_ptr(&a.comb_mix), mhct_tensor_ptr(&b.comb_mix),
                      mhct_tensor_nbytes(&a.comb_mix));
  assert_memory_equal(mhct_tensor_ptr(&a.fn), mhct_tensor_ptr(&b.fn), mhct_tensor_nbytes(&a.fn));
  assert_true(a.params.post_mult == 2.0f);
  /* model-like inputs: post in (0, 2), comb columns sum to ~1 */
  const float *post = (const float *)mhct_tensor_ptr(&b.post_mix);
  const float *comb = (const float *)mhct_tensor_ptr(&b.comb_mix);
  for (int i = 0; i < 9 * 4; ++i) assert_true(post[i] > 0.0f && post[i] < 2.0f);
  for (int t = 0; t < 9; ++t)
    for (int c = 0; c < 4; ++c) {
      double s = 0;
      for (int r = 0; r < 4; ++r) s += comb[t * 16 + r * 4 + c];
      assert_true(fabs(s - 1.0) < 1e-5);
    }
  mhct_problem_fill(&a, MHCT_INPUTS_VLLM, 11);
  assert_true(a.params.post_mult == 1.0f);
  mhct_problem_free(&a);
  mhct_problem_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bf16_rounding),      cmocka_unit_test(test_bf16_from_double),
      cmocka_unit_test(test_ulps),               cmocka_unit_test(test_rng),
      cmocka_unit_test(test_sinkhorn_reference), cmocka_unit_test(test_reference_post),
      cmocka_unit_test(test_reference_pre_simple), cmocka_unit_test(test_compare),
      cmocka_unit_test(test_threads_and_views),  cmocka_unit_test(test_problem_prefix),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
