/* CPU backend on tiny inputs whose results are known by hand (exactly, or from a one-line
 * formula): the transposed comb, bf16 rounding (nearest even, one rounding), the RMS over all
 * n*H values, which scale/base/fn row feeds which gate, the comb index mapping, Sinkhorn
 * fixed points, the fused RMSNorm's two roundings (spec §2.6) and hc_head. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "reference64.h"
#include "test_util.h"

static uint16_t *bf(const mhct_tensor *t) { return (uint16_t *)mhct_tensor_ptr(t); }
static float *f32(const mhct_tensor *t) { return (float *)mhct_tensor_ptr(t); }
static uint16_t B(double v) { return mhct_f64_to_bf16(v); }
static double D(uint16_t b) { return (double)mhct_bf16_to_f32(b); }

/* A zeroed T=1 problem of hidden size H with exact parameters (no eps unless a test sets it). */
static void tiny(mhct_problem *pb, int64_t H) {
  assert_int_equal(mhct_problem_alloc(pb, kDLCPU, 1, H, 0), 0);
  pb->params.rms_eps = 0.0f;
  pb->params.pre_eps = 0.0f;
  pb->params.sinkhorn_eps = 0.0f;
  pb->params.norm_eps = 0.0f;
  pb->params.post_mult = 2.0f;
}

static void run(const mhct_problem *pb, int32_t op, int with_norm) {
  const mhct_call c = mhct_problem_call(pb, op, with_norm);
  const mhc_status_t st = mhct_call_run(mhct_shared_cpu_ctx, &c);
  if (st != MHC_SUCCESS)
    fail_msg("%s: %s: %s", mhct_op_name(op), mhc_status_string(st), mhc_last_error_message());
}

#define assert_bf16(got, want_double)                                                       \
  do {                                                                                      \
    const uint16_t g_ = (got), w_ = B(want_double);                                         \
    if (g_ != w_)                                                                           \
      fail_msg("%s = 0x%04X (%.9g), want 0x%04X (%.9g from %.12g)", #got, g_, D(g_), w_, D(w_), \
               (double)(want_double));                                                      \
  } while (0)

#define assert_close(got, want, rel)                                                        \
  do {                                                                                      \
    const double g_ = (got), w_ = (want);                                                   \
    if (!(fabs(g_ - w_) <= (rel) * fabs(w_)))                                               \
      fail_msg("%s = %.9g, want %.9g (rel tol %g)", #got, g_, w_, (double)(rel));           \
  } while (0)

/* ---------------------------------------------------------------------------------------- */
/* hc_post                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Identity comb: out_j = post_j * x + r_j; all values exact in bf16. */
static void test_post_identity(void **state) {
  (void)state;
  mhct_problem pb;
  tiny(&pb, 2);
  const double x[2] = {1.5, -2.0};
  const double r[4][2] = {{1, 2}, {2, -3}, {-3, 0.25}, {0.25, 8}};
  const float post[4] = {0.5f, 1.0f, 2.0f, 0.0f};
  for (int h = 0; h < 2; ++h) bf(&pb.x)[h] = B(x[h]);
  for (int j = 0; j < 4; ++j) {
    for (int h = 0; h < 2; ++h) bf(&pb.residual)[j * 2 + h] = B(r[j][h]);
    f32(&pb.post_mix)[j] = post[j];
    f32(&pb.comb_mix)[j * 4 + j] = 1.0f;
  }
  run(&pb, MHC_OP_HC_POST, 0);
  const double want[4][2] = {{1.75, 1.0}, {3.5, -5.0}, {0.0, -3.75}, {0.25, 8.0}};
  for (int j = 0; j < 4; ++j)
    for (int h = 0; h < 2; ++h) assert_bf16(bf(&pb.residual_out)[j * 2 + h], want[j][h]);
  mhct_problem_free(&pb);
}

/* comb is applied transposed: out_j = sum_i comb[i][j] r_i. With comb[i][(i+1)%4] = 1,
 * destination j receives source (j+3)%4 (the untransposed product would give (j+1)%4). */
static void test_post_comb_transposed(void **state) {
  (void)state;
  mhct_problem pb;
  tiny(&pb, 1);
  for (int i = 0; i < 4; ++i) {
    bf(&pb.residual)[i] = B(10.0 + i);
    f32(&pb.comb_mix)[i * 4 + (i + 1) % 4] = 1.0f;
  }
  bf(&pb.x)[0] = B(100.0); /* post = 0: x must not leak in */
  run(&pb, MHC_OP_HC_POST, 0);
  for (int j = 0; j < 4; ++j) assert_bf16(bf(&pb.residual_out)[j], 10.0 + (j + 3) % 4);
  mhct_problem_free(&pb);
}

/* One fp32 sum, one round-to-nearest-even at the store. */
static void test_post_rounding(void **state) {
  (void)state;
  struct {
    float comb0, comb1;
    double r0, r1, x, post;
    uint16_t want;
    const char *what;
  } cases[] = {
      {0x1p-8f, 0, 1, 0, 1, 1, 0x3F80, "1 + 2^-8: tie -> even (1.0)"},
      {3 * 0x1p-8f, 0, 1, 0, 1, 1, 0x3F82, "1 + 3*2^-8: tie -> even (1 + 2^-6)"},
      {0x1p-9f + 0x1p-21f, 0x1p-9f + 0x1p-21f, 1, 1, 1, 1, 0x3F81,
       "1 + 2^-8 + 2^-20: above the tie (per-term bf16 rounding would give 1.0)"},
      {-1.0f, 0x1p-10f, 1000, 1, 1000, 1, 0x3A80, "1000 - 1000 + 2^-10: no bf16 intermediate"},
      /* bf16 spacing is 2 in [256, 512): 257.5 lies between 256 and 258 */
      {0.25f, 0.25f, 3, 3, 256, 1, B(258.0), "256 + 1.5 -> 258"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
    mhct_problem pb;
    tiny(&pb, 1);
    bf(&pb.x)[0] = B(cases[k].x);
    f32(&pb.post_mix)[0] = (float)cases[k].post;
    bf(&pb.residual)[0] = B(cases[k].r0);
    bf(&pb.residual)[1] = B(cases[k].r1);
    f32(&pb.comb_mix)[0 * 4 + 0] = cases[k].comb0;
    f32(&pb.comb_mix)[1 * 4 + 0] = cases[k].comb1;
    run(&pb, MHC_OP_HC_POST, 0);
    const uint16_t got = bf(&pb.residual_out)[0];
    if (got != cases[k].want)
      fail_msg("%s: got 0x%04X (%.9g), want 0x%04X (%.9g)", cases[k].what, got, D(got),
               cases[k].want, D(cases[k].want));
    mhct_problem_free(&pb);
  }
}

/* ---------------------------------------------------------------------------------------- */
/* hc_pre                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* fn = 0 and base = 0: every logit is 0, so pre = 0.5 + pre_eps, post = 0.5 * post_mult and
 * comb is Sinkhorn of equal logits: exactly 1/4 with eps = 0, else the fixed point
 * (1 - eps) / 4 of c -> c / (4c + eps). */
static void test_pre_equal_logits(void **state) {
  (void)state;
  for (int with_eps = 0; with_eps < 2; ++with_eps) {
    mhct_problem pb;
    tiny(&pb, 1);
    for (int j = 0; j < 4; ++j) bf(&pb.residual)[j] = B(j + 1.0); /* 1, 2, 3, 4 */
    f32(&pb.scale)[0] = f32(&pb.scale)[1] = f32(&pb.scale)[2] = 0.7f;
    if (with_eps) {
      pb.params.sinkhorn_eps = 1e-6f;
      pb.params.pre_eps = 1e-6f;
      pb.params.rms_eps = 1e-6f;
    }
    run(&pb, MHC_OP_HC_PRE, 0);
    for (int j = 0; j < 4; ++j) assert_true(f32(&pb.post_mix_out)[j] == 1.0f);
    const double eps = (double)pb.params.sinkhorn_eps;
    for (int i = 0; i < 16; ++i) {
      const double c = f32(&pb.comb_mix_out)[i];
      if (!with_eps)
        assert_true(c == 0.25);
      else if (fabs(c - (1.0 - eps) / 4.0) > 1e-7)
        fail_msg("comb[%d] = %.10g, want %.10g", i, c, (1.0 - eps) / 4.0);
    }
    /* layer_input = bf16((0.5 + pre_eps) * 10): 5.00001 -> 5.0 */
    assert_bf16(bf(&pb.layer_input_out)[0], 5.0);
    mhct_problem_free(&pb);
  }
}

/* The RMS is taken over all 4H values (mean, no weight), the mixes use scale[0] for the 4 pre
 * logits, scale[1] for the 4 post logits, scale[2] for the 16 comb logits, base per logit,
 * and logit 8 + 4a + c is comb[a][c]. Residual all 2 and rms_eps 0 give inv_rms = 1/2 for any
 * H; fn[o][k] = m_o / (4H) then makes mix_o = m_o exactly. */
static void test_pre_mix_layout(void **state) {
  (void)state;
  const int64_t Hs[2] = {1, 4};
  for (int hi = 0; hi < 2; ++hi) {
    const int64_t H = Hs[hi];
    mhct_problem pb;
    tiny(&pb, H);
    for (int64_t k = 0; k < 4 * H; ++k) bf(&pb.residual)[k] = B(2.0);
    double m[24] = {0};
    m[0] = m[1] = m[2] = m[3] = 1.0; /* pre logits: scale[0] = 0 cancels them */
    m[4] = 0.0;
    m[5] = 1.0;
    m[6] = -1.0;
    m[7] = 2.0;
    m[8 + 4 * 1 + 2] = 16.0; /* comb[1][2] */
    for (int o = 0; o < 24; ++o)
      for (int64_t k = 0; k < 4 * H; ++k) f32(&pb.fn)[o * 4 * H + k] = (float)(m[o] / (4.0 * H));
    f32(&pb.scale)[0] = 0.0f;
    f32(&pb.scale)[1] = 0.5f;
    f32(&pb.scale)[2] = 1.0f;
    f32(&pb.base)[6] = 0.5f;
    f32(&pb.base)[7] = -1.0f;
    run(&pb, MHC_OP_HC_PRE, 0);
    /* post: z = m * 0.5 + base = {0, 0.5, 0, 0} -> 2 sigmoid(z) */
    assert_true(f32(&pb.post_mix_out)[0] == 1.0f);
    assert_close(f32(&pb.post_mix_out)[1], 2.0 / (1.0 + exp(-0.5)), 1e-6);
    assert_true(f32(&pb.post_mix_out)[2] == 1.0f);
    assert_true(f32(&pb.post_mix_out)[3] == 1.0f);
    /* pre = sigmoid(1 * 0 + 0) = 0.5 (a wrong scale would move it): li = 0.5 * 4 * 2 = 4 */
    for (int64_t h = 0; h < H; ++h) assert_bf16(bf(&pb.layer_input_out)[h], 4.0);
    /* comb: logit 16 at [1][2] only. Sinkhorn converges slowly towards the permutation-like
     * limit (1 at [1][2], 0 in its row and column, 1/3 elsewhere): after 20 iterations
     * [1][2] is ~0.964; the exact value is the float64 Sinkhorn of these logits. */
    const float *c = f32(&pb.comb_mix_out);
    double logits[4][4] = {{0}};
    logits[1][2] = 16.0;
    mhcr_sinkhorn(logits, 20, 0.0);
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) {
        const double v = c[a * 4 + b], want = logits[a][b];
        if (fabs(v - want) > 1e-5 + 1e-4 * fabs(want))
          fail_msg("H=%lld comb[%d][%d] = %.8g, want %.8g", (long long)H, a, b, v, want);
        if (a == 1 || b == 2) assert_true(v <= c[1 * 4 + 2]);
      }
    assert_true(c[1 * 4 + 2] > 0.95f);
    mhct_problem_free(&pb);
  }
}

/* fn column k = j*H + h multiplies stream j, channel h. H = 2, only stream 2 channel 1 is
 * nonzero (4): sum of squares 16 over 8 values -> inv_rms = 1/sqrt(2). */
static void test_pre_fn_columns(void **state) {
  (void)state;
  mhct_problem pb;
  tiny(&pb, 2);
  bf(&pb.residual)[2 * 2 + 1] = B(4.0);
  f32(&pb.fn)[4 * 8 + (2 * 2 + 1)] = 1.0f; /* post logit 0 sees stream 2, channel 1 */
  f32(&pb.fn)[5 * 8 + (1 * 2 + 0)] = 1.0f; /* post logit 1 sees stream 1, channel 0 (zero) */
  f32(&pb.fn)[6 * 8 + (1 * 2 + 2)] = 1.0f; /* post logit 2: k = 4 = stream 2, channel 0 */
  f32(&pb.scale)[1] = 1.0f;
  run(&pb, MHC_OP_HC_PRE, 0);
  assert_close(f32(&pb.post_mix_out)[0], 2.0 / (1.0 + exp(-4.0 / sqrt(2.0))), 1e-6);
  assert_true(f32(&pb.post_mix_out)[1] == 1.0f);
  assert_true(f32(&pb.post_mix_out)[2] == 1.0f);
  /* pre = 0.5: li[h] = 0.5 * sum_j r_j[h] = {0, 2} */
  assert_bf16(bf(&pb.layer_input_out)[0], 0.0);
  assert_bf16(bf(&pb.layer_input_out)[1], 2.0);
  mhct_problem_free(&pb);
}

/* One Sinkhorn iteration with eps = 0 is softmax then one column normalisation. Row 0 logits
 * {ln 3, 0, 0, 0} -> {1/2, 1/6, 1/6, 1/6}; rows 1..3 -> 1/4. Columns: 2/5 | 1/5 and
 * 2/11 | 3/11. More iterations move towards doubly stochastic. */
static void test_pre_sinkhorn_one_iteration(void **state) {
  (void)state;
  mhct_problem pb;
  tiny(&pb, 1);
  for (int j = 0; j < 4; ++j) bf(&pb.residual)[j] = B(1.0);
  f32(&pb.base)[8] = (float)log(3.0);
  pb.params.sinkhorn_iters = 1;
  run(&pb, MHC_OP_HC_PRE, 0);
  const float *c = f32(&pb.comb_mix_out);
  assert_close(c[0], 2.0 / 5.0, 1e-6);
  for (int a = 1; a < 4; ++a) assert_close(c[a * 4], 1.0 / 5.0, 1e-6);
  for (int b = 1; b < 4; ++b) {
    assert_close(c[b], 2.0 / 11.0, 1e-6);
    for (int a = 1; a < 4; ++a) assert_close(c[a * 4 + b], 3.0 / 11.0, 1e-6);
  }
  /* 20 iterations: rows and columns sum to 1 */
  pb.params.sinkhorn_iters = 20;
  run(&pb, MHC_OP_HC_PRE, 0);
  for (int k = 0; k < 4; ++k) {
    double rs = 0, cs = 0;
    for (int i = 0; i < 4; ++i) {
      rs += c[k * 4 + i];
      cs += c[i * 4 + k];
    }
    assert_close(cs, 1.0, 1e-6);
    assert_close(rs, 1.0, 1e-4);
  }
  mhct_problem_free(&pb);
}

/* pre_eps and post_mult are applied where the spec says: pre = sigmoid + pre_eps,
 * post = sigmoid * post_mult. */
static void test_pre_eps_and_post_mult(void **state) {
  (void)state;
  mhct_problem pb;
  tiny(&pb, 1);
  const double r[4] = {1.0, 2.0, 3.0, 4.5};
  for (int j = 0; j < 4; ++j) bf(&pb.residual)[j] = B(r[j]);
  pb.params.pre_eps = 0.5f; /* pre = 0.5 + 0.5 = 1: li = sum r = 10.5 */
  pb.params.post_mult = 3.0f;
  run(&pb, MHC_OP_HC_PRE, 0);
  assert_bf16(bf(&pb.layer_input_out)[0], 10.5);
  for (int j = 0; j < 4; ++j) assert_true(f32(&pb.post_mix_out)[j] == 1.5f);
  mhct_problem_free(&pb);
}

/* An all-zero residual (sum of squares 0) with the default rms_eps stays finite. */
static void test_pre_zero_residual(void **state) {
  (void)state;
  mhct_problem pb;
  assert_int_equal(mhct_problem_alloc(&pb, kDLCPU, 2, 16, 0), 0);
  mhct_problem_fill(&pb, MHCT_INPUTS_MODEL, 3);
  memset(mhct_tensor_ptr(&pb.residual), 0, mhct_tensor_nbytes(&pb.residual));
  run(&pb, MHC_OP_HC_PRE, 1);
  for (int i = 0; i < 8; ++i) assert_true(isfinite(f32(&pb.post_mix_out)[i]));
  for (int i = 0; i < 32; ++i) assert_true(isfinite(f32(&pb.comb_mix_out)[i]));
  for (int i = 0; i < 32; ++i) assert_int_equal(bf(&pb.layer_input_out)[i] & 0x7FFF, 0);
  mhct_problem_free(&pb);
}

/* Fused RMSNorm (spec §2.6): ol = sum_j pre_j r_j; rs = rsqrt(mean(ol^2) + norm_eps) from the
 * UNROUNDED ol; out = bf16(bf16(ol) * rs * w). */
static void test_pre_norm_simple(void **state) {
  (void)state;
  mhct_problem pb;
  tiny(&pb, 2);
  for (int j = 0; j < 4; ++j) {
    bf(&pb.residual)[j * 2 + 0] = B(1.5); /* ol[0] = 0.5 * 6 = 3 */
    bf(&pb.residual)[j * 2 + 1] = B(2.0); /* ol[1] = 0.5 * 8 = 4 */
  }
  bf(&pb.norm_weight)[0] = B(1.0);
  bf(&pb.norm_weight)[1] = B(2.0);
  run(&pb, MHC_OP_HC_PRE, 1);
  const double rs = 1.0 / sqrt(12.5);
  assert_bf16(bf(&pb.layer_input_out)[0], 3.0 * rs);       /* 0.8485 -> 0.84765625 */
  assert_bf16(bf(&pb.layer_input_out)[1], 4.0 * rs * 2.0); /* 2.2627 -> 2.265625 */
  mhct_problem_free(&pb);
}

/* The two roundings of §2.6 are observable: ol = 1 + 2^-8 - 2^-12 rounds to bf16(ol) = 1, and
 * rs = 1/ol, so out = bf16(w / ol), whereas normalising the unrounded ol would give w. */
static void test_pre_norm_double_rounding(void **state) {
  (void)state;
  mhct_problem pb;
  const int64_t H = 4;
  tiny(&pb, H);
  const double ol = 1.0 + 0x1p-8 - 0x1p-12;
  const double w[4] = {1.0, 1.5, 1.75, -2.0};
  for (int64_t h = 0; h < H; ++h) {
    bf(&pb.residual)[0 * H + h] = B(2.0);
    bf(&pb.residual)[1 * H + h] = B(0.9375 * 0x1p-7); /* 0.5 * (2 + this) = ol */
    bf(&pb.norm_weight)[h] = B(w[h]);
  }
  run(&pb, MHC_OP_HC_PRE, 0);
  for (int64_t h = 0; h < H; ++h) assert_bf16(bf(&pb.layer_input_out)[h], 1.0); /* bf16(ol) */
  run(&pb, MHC_OP_HC_PRE, 1);
  for (int64_t h = 0; h < H; ++h) {
    assert_true(B(w[h] / ol) != B(w[h])); /* the case discriminates */
    assert_bf16(bf(&pb.layer_input_out)[h], w[h] / ol);
  }
  mhct_problem_free(&pb);
}

/* ---------------------------------------------------------------------------------------- */
/* hc_head                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Residual all 2, rms_eps 0: inv_rms = 1/2; fn_head rows all 0.25 -> raw 2, mix 1;
 * pre = sigmoid(1 * scale[0] + base) + pre_eps; out = bf16(2 * sum pre). scale may have more
 * than one element: only element 0 is used. */
static void test_head(void **state) {
  (void)state;
  mhct_problem pb;
  tiny(&pb, 1);
  for (int j = 0; j < 4; ++j) bf(&pb.residual)[j] = B(2.0);
  for (int k = 0; k < 16; ++k) f32(&pb.fn_head)[k] = 0.25f;
  const float base[4] = {0.0f, -1.0f, 1.0f, 0.0f};
  for (int j = 0; j < 4; ++j) f32(&pb.base_head)[j] = base[j];
  f32(&pb.scale_head)[0] = 1.0f;
  double want = 0.0;
  for (int j = 0; j < 4; ++j) want += 2.0 / (1.0 + exp(-(1.0 + base[j])));
  run(&pb, MHC_OP_HC_HEAD, 0);
  assert_bf16(bf(&pb.out)[0], want); /* 5.6858 -> 5.6875 */

  /* scale [3] = {1, 99, 99}: same result */
  mhct_tensor s3;
  const int64_t shape[1] = {3};
  assert_int_equal(mhct_tensor_alloc(&s3, kDLCPU, MHCT_F32, 1, shape), 0);
  f32(&s3)[0] = 1.0f;
  f32(&s3)[1] = f32(&s3)[2] = 99.0f;
  mhct_call c = mhct_problem_call(&pb, MHC_OP_HC_HEAD, 0);
  c.scale_head = &s3;
  bf(&pb.out)[0] = 0;
  assert_int_equal(mhct_call_run(mhct_shared_cpu_ctx, &c), MHC_SUCCESS);
  assert_bf16(bf(&pb.out)[0], want);

  /* pre_eps is added to the head gates too: pre_eps 0.25 adds 0.25 * 8 = 2 */
  pb.params.pre_eps = 0.25f;
  run(&pb, MHC_OP_HC_HEAD, 0);
  assert_bf16(bf(&pb.out)[0], want + 2.0);
  mhct_tensor_free(&s3);
  mhct_problem_free(&pb);
}

/* ---------------------------------------------------------------------------------------- */
/* hc_post_pre                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* Identity comb and post = 0: the new residual is the old one, and the pre half sees it. */
static void test_post_pre_identity(void **state) {
  (void)state;
  mhct_problem pb;
  tiny(&pb, 2);
  for (int j = 0; j < 4; ++j) {
    f32(&pb.comb_mix)[j * 4 + j] = 1.0f;
    for (int h = 0; h < 2; ++h) bf(&pb.residual)[j * 2 + h] = B(0.5 * (j + 1) + h);
  }
  bf(&pb.x)[0] = B(7.0);
  bf(&pb.x)[1] = B(-7.0);
  run(&pb, MHC_OP_HC_POST_PRE, 0);
  assert_memory_equal(mhct_tensor_ptr(&pb.residual_out), mhct_tensor_ptr(&pb.residual),
                      mhct_tensor_nbytes(&pb.residual));
  /* pre = 0.5: li[h] = 0.5 * sum_j (0.5 (j + 1) + h) = 0.5 * (5 + 4h) */
  assert_bf16(bf(&pb.layer_input_out)[0], 2.5);
  assert_bf16(bf(&pb.layer_input_out)[1], 4.5);
  for (int j = 0; j < 4; ++j) assert_true(f32(&pb.post_mix_out)[j] == 1.0f);
  mhct_problem_free(&pb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_post_identity),
      cmocka_unit_test(test_post_comb_transposed),
      cmocka_unit_test(test_post_rounding),
      cmocka_unit_test(test_pre_equal_logits),
      cmocka_unit_test(test_pre_mix_layout),
      cmocka_unit_test(test_pre_fn_columns),
      cmocka_unit_test(test_pre_sinkhorn_one_iteration),
      cmocka_unit_test(test_pre_eps_and_post_mult),
      cmocka_unit_test(test_pre_zero_residual),
      cmocka_unit_test(test_pre_norm_simple),
      cmocka_unit_test(test_pre_norm_double_rounding),
      cmocka_unit_test(test_head),
      cmocka_unit_test(test_post_pre_identity),
  };
  return cmocka_run_group_tests(tests, mhct_setup_cpu_context, mhct_teardown_cpu_context);
}
