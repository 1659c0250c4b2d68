/*
 * Numerical hazards (CPU backend; with --cuda the CUDA backend, ctest label gpu).
 *
 *  - NaN, +Inf and -Inf in each input (residual, x, fn, post_mix, comb_mix, scale, base,
 *    norm_weight, and the hc_head weights), one test per input: every output element must be
 *    NaN / +Inf / -Inf / finite exactly where the spec's math, evaluated in float64 by
 *    tests/common/reference64.c, puts them; finite elements must be close to the reference.
 *    The special value sits in token 1 only: the other tokens must stay finite and correct.
 *  - An all-zero residual (RMS 0): rms_eps keeps every output finite; with rms_eps = 0 the
 *    spec's math gives 0 * inf = NaN and so must the library.
 *  - bf16 extremes through hc_post: largest finite 0x7F7F, overflow to infinity, smallest
 *    subnormal 0x0001 with ties to even, negative zero, exact cancellation.
 *  - Determinism: 100 runs of every op give identical bits (and, on the CPU backend, the same
 *    bits when the tokens are split over threads).
 * Every op call must return, never hang or crash.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compare.h"
#include "hardening.h"
#include "reference64.h"
#include "test_util.h"

/* How many output elements were checked, and how many of them had to be NaN / +-Inf. */
static size_t g_checked, g_nonfinite;

#define OP_POST MHC_OP_HC_POST
#define OP_PRE MHC_OP_HC_PRE
#define OP_POST_PRE MHC_OP_HC_POST_PRE
#define OP_HEAD MHC_OP_HC_HEAD

static void failf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fail();
}

/* ---------------------------------------------------------------------------------------- */
/* Class-and-value comparison against the float64 reference                                 */
/* ---------------------------------------------------------------------------------------- */

/* A finite result must be within this of the finite reference (loose: this test is about
 * where non-finite values go; accuracy is tests/unit's job). */
static int close_enough(double got, double ref) {
  return fabs(got - ref) <= 1.0 / 64.0 * fabs(ref) + 1e-5;
}

static void expect_bf16(const char *what, const uint16_t *got, const double *ref, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const int want = hz_class_bf16(mhct_f64_to_bf16(ref[i]));
    const int have = hz_class_bf16(got[i]);
    ++g_checked;
    g_nonfinite += want != HZ_FINITE;
    if (want != have)
      failf("%s[%zu]: got %s (0x%04x), the spec's math gives %s (%g)", what, i,
            hz_class_name(have), got[i], hz_class_name(want), ref[i]);
    if (want == HZ_FINITE && !close_enough(mhct_bf16_to_f32(got[i]), ref[i]))
      failf("%s[%zu]: got %g, the reference is %g", what, i, (double)mhct_bf16_to_f32(got[i]),
            ref[i]);
  }
}

static void expect_f32(const char *what, const float *got, const double *ref, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const int want = hz_class_f32((float)ref[i]);
    const int have = hz_class_f32(got[i]);
    ++g_checked;
    g_nonfinite += want != HZ_FINITE;
    if (want != have)
      failf("%s[%zu]: got %s (%g), the spec's math gives %s (%g)", what, i, hz_class_name(have),
            (double)got[i], hz_class_name(want), ref[i]);
    if (want == HZ_FINITE && !close_enough(got[i], ref[i]))
      failf("%s[%zu]: got %g, the reference is %g", what, i, (double)got[i], ref[i]);
  }
}

/* Tokens other than `special_token` must be entirely finite in every output. */
static void expect_other_tokens_finite(const mhct_problem *h, int32_t op, int64_t special_token) {
  const int64_t T = h->T, H = h->H;
  for (int64_t t = 0; t < T; ++t) {
    if (t == special_token) continue;
    if (op == OP_POST || op == OP_POST_PRE) {
      const uint16_t *r = (const uint16_t *)mhct_tensor_ptr(&h->residual_out);
      for (int64_t k = 0; k < 4 * H; ++k)
        if (hz_class_bf16(r[t * 4 * H + k]) != HZ_FINITE)
          failf("residual_out: token %lld is not finite (the special value is in token %lld)",
                (long long)t, (long long)special_token);
    }
    if (op == OP_PRE || op == OP_POST_PRE) {
      const float *pm = (const float *)mhct_tensor_ptr(&h->post_mix_out);
      const float *cm = (const float *)mhct_tensor_ptr(&h->comb_mix_out);
      const uint16_t *li = (const uint16_t *)mhct_tensor_ptr(&h->layer_input_out);
      for (int k = 0; k < 4; ++k)
        if (!isfinite(pm[t * 4 + k])) failf("post_mix_out: token %lld not finite", (long long)t);
      for (int k = 0; k < 16; ++k)
        if (!isfinite(cm[t * 16 + k])) failf("comb_mix_out: token %lld not finite", (long long)t);
      for (int64_t k = 0; k < H; ++k)
        if (hz_class_bf16(li[t * H + k]) != HZ_FINITE)
          failf("layer_input_out: token %lld not finite", (long long)t);
    }
    if (op == OP_HEAD) {
      const uint16_t *o = (const uint16_t *)mhct_tensor_ptr(&h->out);
      for (int64_t k = 0; k < H; ++k)
        if (hz_class_bf16(o[t * H + k]) != HZ_FINITE)
          failf("out: token %lld not finite", (long long)t);
    }
  }
}

/* hc_pre reference on (residual) with h's weights, compared with the library's outputs. */
static void check_pre_outputs(const mhct_problem *h, const uint16_t *residual, int with_norm,
                              const char *what) {
  const int64_t T = h->T, H = h->H;
  double *pm = malloc(sizeof(double) * (size_t)(T * 4));
  double *cm = malloc(sizeof(double) * (size_t)(T * 16));
  double *li = malloc(sizeof(double) * (size_t)(T * H));
  mhcr_pre_out o;
  memset(&o, 0, sizeof o);
  o.post_mix = pm;
  o.comb_mix = cm;
  if (with_norm) o.layer_input_norm = li;
  else o.layer_input = li;
  mhcr_hc_pre(&h->params, T, H, residual, (const float *)mhct_tensor_ptr(&h->fn),
              (const float *)mhct_tensor_ptr(&h->scale), (const float *)mhct_tensor_ptr(&h->base),
              with_norm ? (const uint16_t *)mhct_tensor_ptr(&h->norm_weight) : NULL, 1e-6, NULL,
              &o);
  char name[160];
  snprintf(name, sizeof name, "%s: post_mix_out", what);
  expect_f32(name, (const float *)mhct_tensor_ptr(&h->post_mix_out), pm, (size_t)(T * 4));
  snprintf(name, sizeof name, "%s: comb_mix_out", what);
  expect_f32(name, (const float *)mhct_tensor_ptr(&h->comb_mix_out), cm, (size_t)(T * 16));
  snprintf(name, sizeof name, "%s: layer_input_out", what);
  expect_bf16(name, (const uint16_t *)mhct_tensor_ptr(&h->layer_input_out), li, (size_t)(T * H));
  free(pm);
  free(cm);
  free(li);
}

/* Runs `op` on the backend under test with h's inputs and checks every output against the
 * float64 reference of the same inputs. */
static void run_and_check(mhct_problem *h, mhct_problem *d, int32_t op, int with_norm,
                          int64_t special_token, const char *what) {
  assert_int_equal(hz_problem_upload(d, h), 0);
  mhct_tensor *outs[5] = HZ_OUTPUT_TENSORS(d);
  for (int i = 0; i < 5; ++i) assert_int_equal(mhct_tensor_fill_bytes(outs[i], 0x5A), 0);
  const mhc_status_t st = hz_run(hz_shared_ctx, d, op, with_norm, NULL);
  if (st != MHC_SUCCESS)
    failf("%s: %s failed: %s: %s", what, mhct_op_name(op), mhc_status_string(st),
          mhc_last_error_message());
  assert_int_equal(hz_problem_download(h, d), 0);
  const int64_t T = h->T, H = h->H;
  char name[160];
  if (op == OP_POST || op == OP_POST_PRE) {
    double *ref = malloc(sizeof(double) * (size_t)(T * 4 * H));
    mhcr_hc_post(T, H, (const uint16_t *)mhct_tensor_ptr(&h->x),
                 (const uint16_t *)mhct_tensor_ptr(&h->residual),
                 (const float *)mhct_tensor_ptr(&h->post_mix),
                 (const float *)mhct_tensor_ptr(&h->comb_mix), ref, NULL);
    snprintf(name, sizeof name, "%s: %s residual_out", what, mhct_op_name(op));
    expect_bf16(name, (const uint16_t *)mhct_tensor_ptr(&h->residual_out), ref,
                (size_t)(T * 4 * H));
    free(ref);
  }
  if (op == OP_PRE) {
    snprintf(name, sizeof name, "%s: hc_pre%s", what, with_norm ? "+norm" : "");
    check_pre_outputs(h, (const uint16_t *)mhct_tensor_ptr(&h->residual), with_norm, name);
  }
  if (op == OP_POST_PRE) { /* pre of the bf16 residual the library stored */
    snprintf(name, sizeof name, "%s: hc_post_pre%s", what, with_norm ? "+norm" : "");
    check_pre_outputs(h, (const uint16_t *)mhct_tensor_ptr(&h->residual_out), with_norm, name);
  }
  if (op == OP_HEAD) {
    double *ref = malloc(sizeof(double) * (size_t)(T * H));
    mhcr_hc_head(&h->params, T, H, (const uint16_t *)mhct_tensor_ptr(&h->residual),
                 (const float *)mhct_tensor_ptr(&h->fn_head),
                 (const float *)mhct_tensor_ptr(&h->scale_head),
                 (const float *)mhct_tensor_ptr(&h->base_head), 1e-6, NULL, ref, NULL);
    snprintf(name, sizeof name, "%s: hc_head out", what);
    expect_bf16(name, (const uint16_t *)mhct_tensor_ptr(&h->out), ref, (size_t)(T * H));
    free(ref);
  }
  if (special_token >= 0) expect_other_tokens_finite(h, op, special_token);
}

/* ---------------------------------------------------------------------------------------- */
/* NaN / Inf in each input                                                                  */
/* ---------------------------------------------------------------------------------------- */

static const float kSpecials[3] = {NAN, INFINITY, -INFINITY};
static const char *kSpecialNames[3] = {"NaN", "+Inf", "-Inf"};

/* Two shapes: vectorisable (H % 8 == 0) and odd. Token 1 carries the special value. */
static const int64_t kShapes[2][2] = {{3, 64}, {2, 13}};

typedef void (*inject_fn)(mhct_problem *h, float v, int variant);

/* Runs every listed op for every special value, shape and variant of the injection. */
static void special_case(const char *input, inject_fn inject, int variants, const int32_t *ops,
                         int nops, int per_token) {
  g_checked = g_nonfinite = 0;
  for (int s = 0; s < 2; ++s) {
    mhct_problem h, d;
    assert_int_equal(hz_problem_pair(&h, &d, hz_shared_ctx, kShapes[s][0], kShapes[s][1],
                                     MHCT_INPUTS_MODEL, 1234 + (uint64_t)s),
                     0);
    mhct_problem clean;
    assert_int_equal(mhct_problem_alloc(&clean, kDLCPU, h.T, h.H, 0), 0);
    assert_int_equal(mhct_problem_copy_inputs(&clean, &h), 0);
    for (int v = 0; v < 3; ++v)
      for (int var = 0; var < variants; ++var)
        for (int k = 0; k < nops; ++k)
          for (int norm = 0; norm < ((ops[k] == OP_PRE || ops[k] == OP_POST_PRE) ? 2 : 1);
               ++norm) {
            assert_int_equal(mhct_problem_copy_inputs(&h, &clean), 0);
            inject(&h, kSpecials[v], var);
            char what[128];
            snprintf(what, sizeof what, "%s = %s (variant %d, T=%lld H=%lld)", input,
                     kSpecialNames[v], var, (long long)h.T, (long long)h.H);
            run_and_check(&h, &d, ops[k], norm, per_token ? 1 : -1, what);
          }
    mhct_problem_free(&clean);
    mhct_problem_free(&h);
    mhct_problem_free(&d);
  }
  printf("%s: %zu output elements checked against the float64 reference, %zu of them "
         "NaN/Inf\n", input, g_checked, g_nonfinite);
  assert_true(g_nonfinite > 0); /* the special value must have reached some output */
}

static float *f32p(mhct_tensor *t) { return (float *)mhct_tensor_ptr(t); }
static uint16_t *bf16p(mhct_tensor *t) { return (uint16_t *)mhct_tensor_ptr(t); }

/* residual[1, j, h] for (j, h) in a few places */
static void inj_residual(mhct_problem *h, float v, int var) {
  const int64_t H = h->H;
  const int64_t j = var % 4, hh = (var * 5) % H;
  bf16p(&h->residual)[(1 * 4 + j) * H + hh] = mhct_f32_to_bf16(v);
}
static void test_special_residual(void **state) {
  (void)state;
  const int32_t ops[4] = {OP_POST, OP_PRE, OP_POST_PRE, OP_HEAD};
  special_case("residual", inj_residual, 3, ops, 4, 1);
}

static void inj_x(mhct_problem *h, float v, int var) {
  bf16p(&h->x)[1 * h->H + (var * 7) % h->H] = mhct_f32_to_bf16(v);
}
static void test_special_x(void **state) {
  (void)state;
  const int32_t ops[2] = {OP_POST, OP_POST_PRE};
  special_case("x", inj_x, 2, ops, 2, 1);
}

/* fn rows: 0..3 pre, 4..7 post, 8..23 comb; the column in stream var % 4 */
static void inj_fn(mhct_problem *h, float v, int var) {
  static const int rows[3] = {1, 6, 17};
  const int64_t K = 4 * h->H;
  f32p(&h->fn)[rows[var] * K + (var * h->H + 3) % K] = v;
}
static void test_special_fn(void **state) {
  (void)state;
  const int32_t ops[2] = {OP_PRE, OP_POST_PRE};
  special_case("fn", inj_fn, 3, ops, 2, 0);
}

static void inj_fn_head(mhct_problem *h, float v, int var) {
  const int64_t K = 4 * h->H;
  f32p(&h->fn_head)[(var % 4) * K + (var * h->H + 2) % K] = v;
}
static void test_special_fn_head(void **state) {
  (void)state;
  const int32_t ops[1] = {OP_HEAD};
  special_case("fn_head", inj_fn_head, 2, ops, 1, 0);
}

static void inj_post_mix(mhct_problem *h, float v, int var) { f32p(&h->post_mix)[1 * 4 + var] = v; }
static void test_special_post_mix(void **state) {
  (void)state;
  const int32_t ops[2] = {OP_POST, OP_POST_PRE};
  special_case("post_mix", inj_post_mix, 4, ops, 2, 1);
}

static void inj_comb_mix(mhct_problem *h, float v, int var) {
  static const int idx[3] = {0, 6, 13}; /* comb[i][j] at 4i + j */
  f32p(&h->comb_mix)[1 * 16 + idx[var]] = v;
}
static void test_special_comb_mix(void **state) {
  (void)state;
  const int32_t ops[2] = {OP_POST, OP_POST_PRE};
  special_case("comb_mix", inj_comb_mix, 3, ops, 2, 1);
}

static void inj_scale(mhct_problem *h, float v, int var) { f32p(&h->scale)[var] = v; }
static void test_special_scale(void **state) {
  (void)state;
  const int32_t ops[2] = {OP_PRE, OP_POST_PRE};
  special_case("scale", inj_scale, 3, ops, 2, 0);
}

static void inj_base(mhct_problem *h, float v, int var) {
  static const int idx[3] = {2, 5, 19};
  f32p(&h->base)[idx[var]] = v;
}
static void test_special_base(void **state) {
  (void)state;
  const int32_t ops[2] = {OP_PRE, OP_POST_PRE};
  special_case("base", inj_base, 3, ops, 2, 0);
}

static void inj_head_scale_base(mhct_problem *h, float v, int var) {
  if (var == 0) f32p(&h->scale_head)[0] = v;
  else f32p(&h->base_head)[var - 1] = v;
}
static void test_special_head_scale_base(void **state) {
  (void)state;
  const int32_t ops[1] = {OP_HEAD};
  special_case("scale_head/base_head", inj_head_scale_base, 3, ops, 1, 0);
}

static void inj_norm_weight(mhct_problem *h, float v, int var) {
  bf16p(&h->norm_weight)[(var * 3) % h->H] = mhct_f32_to_bf16(v);
}
static void test_special_norm_weight(void **state) {
  (void)state;
  const int32_t ops[2] = {OP_PRE, OP_POST_PRE};
  special_case("norm_weight", inj_norm_weight, 2, ops, 2, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* All-zero residual                                                                        */
/* ---------------------------------------------------------------------------------------- */

static void zero_residual_case(float rms_eps, int expect_finite) {
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, hz_shared_ctx, 4, 64, MHCT_INPUTS_MODEL, 99), 0);
  assert_int_equal(mhct_tensor_fill_bytes(&h.residual, 0), 0);
  h.params.rms_eps = rms_eps;
  const int32_t ops[3] = {OP_PRE, OP_HEAD, OP_POST_PRE};
  for (int k = 0; k < 3; ++k)
    for (int norm = 0; norm < 2; ++norm) {
      if (ops[k] == OP_POST_PRE) { /* make post's output zero too: x = 0, comb = 0 */
        assert_int_equal(mhct_tensor_fill_bytes(&h.x, 0), 0);
        assert_int_equal(mhct_tensor_fill_bytes(&h.comb_mix, 0), 0);
      }
      char what[96];
      snprintf(what, sizeof what, "zero residual, rms_eps=%g", (double)rms_eps);
      run_and_check(&h, &d, ops[k], norm, -1, what);
      if (!expect_finite) continue;
      const int64_t T = h.T, H = h.H;
      if (ops[k] == OP_HEAD) {
        for (int64_t i = 0; i < T * H; ++i)
          assert_int_equal(bf16p(&h.out)[i] & 0x7fff, 0); /* sum of zeros: +-0 */
      } else {
        for (int64_t i = 0; i < T * 4; ++i) assert_true(isfinite(f32p(&h.post_mix_out)[i]));
        for (int64_t i = 0; i < T * 16; ++i) assert_true(isfinite(f32p(&h.comb_mix_out)[i]));
        for (int64_t i = 0; i < T * H; ++i)
          assert_int_equal(hz_class_bf16(bf16p(&h.layer_input_out)[i]), HZ_FINITE);
      }
    }
  mhct_problem_free(&h);
  mhct_problem_free(&d);
}

static void test_zero_residual_rms_eps(void **state) {
  (void)state;
  zero_residual_case(1e-6f, 1);
}

static void test_zero_residual_rms_eps_zero(void **state) {
  (void)state;
  /* 1/sqrt(0 + 0) = inf and (X @ fn) = 0: the spec's math gives NaN mixes; the reference and
   * the library must agree (checked by run_and_check), and nothing may hang or crash. */
  zero_residual_case(0.0f, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* bf16 extremes through hc_post                                                            */
/* ---------------------------------------------------------------------------------------- */

typedef struct extreme_case {
  const char *name;
  uint16_t x;     /* every x[t, h] */
  float post;     /* every post[t, j] */
  uint16_t r;     /* every residual[t, i, h] */
  float comb;     /* comb[t] = comb * I (identity): out_j = post * x + comb * r */
  uint16_t want;  /* expected bf16 bits of every output element */
} extreme_case;

static const extreme_case kExtremes[] = {
    {"largest finite", 0x7F7F, 1.0f, 0x0000, 0.0f, 0x7F7F},
    {"largest finite * (1 + 2^-8): ties up to +inf", 0x7F7F, 1.00390625f, 0x0000, 0.0f, 0x7F80},
    {"largest finite * (1 + 2^-9): rounds down", 0x7F7F, 1.001953125f, 0x0000, 0.0f, 0x7F7F},
    {"largest finite * 2: float32 overflow", 0x7F7F, 1.0f, 0x7F7F, 1.0f, 0x7F80},
    {"-largest + largest: exact +0", 0xFF7F, 1.0f, 0x7F7F, 1.0f, 0x0000},
    {"-largest * (1 + 2^-8): -inf", 0xFF7F, 1.00390625f, 0x0000, 0.0f, 0xFF80},
    {"smallest subnormal", 0x0001, 1.0f, 0x0000, 0.0f, 0x0001},
    {"smallest subnormal / 2: tie to even 0", 0x0001, 0.5f, 0x0000, 0.0f, 0x0000},
    {"smallest subnormal * 0.75: rounds up", 0x0001, 0.75f, 0x0000, 0.0f, 0x0001},
    {"smallest subnormal * 1.5: tie to even 2", 0x0001, 1.5f, 0x0000, 0.0f, 0x0002},
    {"-smallest subnormal / 2: tie to -0", 0x8001, 0.5f, 0x0000, 0.0f, 0x8000},
    {"smallest normal / 2: subnormal", 0x0080, 0.5f, 0x0000, 0.0f, 0x0040},
    {"largest subnormal + smallest subnormal", 0x007F, 1.0f, 0x0001, 1.0f, 0x0080},
    {"-0 * 1 + 0.25 * -0: -0", 0x8000, 1.0f, 0x8000, 0.25f, 0x8000},
    {"-0 * 1 + 0.25 * +0: +0", 0x8000, 1.0f, 0x0000, 0.25f, 0x0000},
    {"-0 * -1: +0", 0x8000, -1.0f, 0x8000, 0.0f, 0x0000},
    {"1 + 2^-8 (halfway between 1 and 1+2^-7): even 1", 0x3F80, 1.0f, 0x3B80, 1.0f, 0x3F80},
    {"1 + 3*2^-8: even 1+2^-6", 0x3F80, 1.0f, 0x3C40, 1.0f, 0x3F82},
};
#define N_EXTREMES (sizeof kExtremes / sizeof kExtremes[0])

static void test_bf16_extremes_hc_post(void **state) {
  (void)state;
  const int64_t T = (int64_t)N_EXTREMES, H = 8;
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, hz_shared_ctx, T, H, MHCT_INPUTS_VLLM, 5), 0);
  for (int64_t t = 0; t < T; ++t) {
    const extreme_case *c = &kExtremes[t];
    for (int64_t k = 0; k < H; ++k) bf16p(&h.x)[t * H + k] = c->x;
    for (int64_t k = 0; k < 4 * H; ++k) bf16p(&h.residual)[t * 4 * H + k] = c->r;
    for (int j = 0; j < 4; ++j) f32p(&h.post_mix)[t * 4 + j] = c->post;
    for (int i = 0; i < 16; ++i) f32p(&h.comb_mix)[t * 16 + i] = (i % 5 == 0) ? c->comb : 0.0f;
  }
  run_and_check(&h, &d, OP_POST, 0, -1, "bf16 extremes"); /* classes vs float64 reference */
  int bad = 0;
  for (int64_t t = 0; t < T; ++t) {
    /* the float64 reference, correctly rounded, must agree with the table */
    double ref[4 * 8];
    mhcr_hc_post(1, H, bf16p(&h.x) + t * H, bf16p(&h.residual) + t * 4 * H,
                 f32p(&h.post_mix) + t * 4, f32p(&h.comb_mix) + t * 16, ref, NULL);
    for (int64_t k = 0; k < 4 * H; ++k) {
      const uint16_t got = bf16p(&h.residual_out)[t * 4 * H + k];
      const uint16_t rounded = mhct_f64_to_bf16(ref[k]);
      if (got != kExtremes[t].want || rounded != kExtremes[t].want) {
        fprintf(stderr, "%s: got 0x%04x, expected 0x%04x (float64 reference rounds to 0x%04x)\n",
                kExtremes[t].name, got, kExtremes[t].want, rounded);
        ++bad;
        break;
      }
    }
  }
  mhct_problem_free(&h);
  mhct_problem_free(&d);
  assert_int_equal(bad, 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Determinism                                                                              */
/* ---------------------------------------------------------------------------------------- */

static void test_determinism_100_runs(void **state) {
  (void)state;
  const int64_t T = hz_device_type == kDLCUDA ? 48 : 16;
  const int64_t H = hz_device_type == kDLCUDA ? 4096 : 256;
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, hz_shared_ctx, T, H, MHCT_INPUTS_MODEL, 7), 0);
  const int32_t ops[4] = {OP_POST, OP_PRE, OP_POST_PRE, OP_HEAD};
  for (int k = 0; k < 4; ++k)
    for (int norm = 0; norm < 2; ++norm) {
      if (norm && (ops[k] == OP_POST || ops[k] == OP_HEAD)) continue;
      assert_int_equal(hz_run(hz_shared_ctx, &d, ops[k], norm, NULL), MHC_SUCCESS);
      hz_outputs first;
      assert_int_equal(hz_outputs_save(&first, &d), 0);
      char what[64];
      snprintf(what, sizeof what, "%s%s", mhct_op_name(ops[k]), norm ? "+norm" : "");
      const int runs = hz_iters(100, 10);
      for (int run = 1; run < runs; ++run) {
        mhct_tensor *outs[5] = HZ_OUTPUT_TENSORS(&d);
        /* poison only what this op writes, so untouched outputs still compare equal */
        int w[5];
        hz_written(ops[k], w);
        for (int i = 0; i < 5; ++i)
          if (w[i]) assert_int_equal(mhct_tensor_fill_bytes(outs[i], run & 0xff), 0);
        assert_int_equal(hz_run(hz_shared_ctx, &d, ops[k], norm, NULL), MHC_SUCCESS);
        if (!hz_outputs_equal(&first, &d, what)) failf("%s: run %d differs from run 0", what, run);
      }
      if (hz_device_type == kDLCPU) { /* token slices on threads: same bits */
        mhct_call c = mhct_problem_call(&d, ops[k], norm);
        assert_int_equal(mhct_call_run_parallel(hz_shared_ctx, &c, 4), MHC_SUCCESS);
        if (!hz_outputs_equal(&first, &d, what)) failf("%s: threaded token slices differ", what);
      }
      hz_outputs_free(&first);
    }
  mhct_problem_free(&h);
  mhct_problem_free(&d);
}

int main(int argc, char **argv) {
  const int rc = hz_init(argc, argv);
  if (rc != 0) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_special_residual),
      cmocka_unit_test(test_special_x),
      cmocka_unit_test(test_special_fn),
      cmocka_unit_test(test_special_fn_head),
      cmocka_unit_test(test_special_post_mix),
      cmocka_unit_test(test_special_comb_mix),
      cmocka_unit_test(test_special_scale),
      cmocka_unit_test(test_special_base),
      cmocka_unit_test(test_special_head_scale_base),
      cmocka_unit_test(test_special_norm_weight),
      cmocka_unit_test(test_zero_residual_rms_eps),
      cmocka_unit_test(test_zero_residual_rms_eps_zero),
      cmocka_unit_test(test_bf16_extremes_hc_post),
      cmocka_unit_test(test_determinism_100_runs),
  };
  return cmocka_run_group_tests_name(hz_device_type == kDLCUDA ? "numerics (CUDA backend)"
                                                               : "numerics (CPU backend)",
                                     tests, hz_setup_shared_context,
                                     hz_teardown_shared_context);
}
