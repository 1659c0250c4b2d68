/* CPU backend against the independent float64 reference (tests/common/reference64.h) for
 * T in {0, 1, 3, 8, 17, 128} x H in {64, 4096, 7168} with the vLLM test inputs and the
 * model-like inputs (spec §5), for hc_post, hc_pre (with and without norm_weight),
 * hc_post_pre (with and without) and hc_head; plus: the fused boundary equals hc_post then
 * hc_pre bit for bit, runs are deterministic, and a token's outputs do not depend on the other
 * tokens of the call (T-prefix and thread-split runs give the same bits).
 *
 * Tolerances (DESIGN §4):
 *  - post_mix, comb_mix: |got - exact| <= 1e-5 + 1e-4 |exact|.
 *  - bf16 outputs: within 1 bf16 ulp of the correctly rounded exact value. An element may
 *    also pass when its float32 evaluation budget (reference64.h) covers it: this matters only
 *    where the exact value is small against the summed terms (cancellation), where one ulp of
 *    the result is finer than float32 accumulation can resolve. The budget assumes each pre
 *    gate is within GATE_ERR of the exact gate (see below).
 *  - Sharpness: at most 1% (+2) of the elements may differ from the correctly rounded value at
 *    all; a systematic rounding error (truncation, double rounding) makes ~50% differ.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "reference64.h"
#include "test_util.h"

/* Allowed absolute error of a float32 pre gate against the exact one. The CPU backend's
 * mixes come from a correctly rounded float32 GEMM and a handful of float32 operations
 * (inv_rms: ~5 roundings, mix, z = mix*scale + base, sigmoid: exp, add, divide), i.e. a
 * relative error of ~10 u on z and on the gate; with |z| < 4 and sigmoid' <= 1/4 that is
 * < 2^-20. 2^-18 leaves a 4x margin and is still 2^10 times finer than a bf16 ulp of the
 * gate, so it only widens the acceptance of heavily cancelled sums. */
#define GATE_ERR 0x1p-18

#define MIX_RTOL 1e-4
#define MIX_ATOL 1e-5

static const int64_t kTs[] = {0, 1, 3, 8, 17, 128};
#define NT ((int)(sizeof kTs / sizeof kTs[0]))
#define TMAX 128

static int g_failures;

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  assert_non_null(p);
  return p;
}

/* Prints the comparison and counts failures (the test fails at the end of the case, so that
 * the log shows every comparison of the case). */
static void report(int ok, const mhct_cmp *r, const char *tag) {
  char line[512];
  printf("%s %s%s\n", tag, mhct_cmp_line(r, line, sizeof line), ok ? "" : "  <-- FAIL");
  if (!ok) ++g_failures;
}

static void check_mix(const char *tag, const char *what, const float *got, const double *exact,
                      size_t n) {
  mhct_cmp r;
  report(mhct_cmp_f32_f64(&r, what, got, exact, n, MIX_RTOL, MIX_ATOL), &r, tag);
}

static void check_bf16(const char *tag, const char *what, const uint16_t *got,
                       const double *exact, const double *err, size_t n) {
  mhct_cmp r;
  int ok = mhct_cmp_bf16_f64(&r, what, got, exact, err, n, 1);
  if (ok && (double)r.n_inexact > 0.01 * (double)n + 2) {
    printf("%s %s: %zu of %zu elements are not the correctly rounded value\n", tag, what,
           r.n_inexact, n);
    ok = 0;
  }
  report(ok, &r, tag);
}

static void check_bits(const char *tag, const char *what, const void *got, const void *want,
                       size_t n, size_t esize) {
  mhct_cmp r;
  const int ok = mhct_cmp_bits(&r, what, got, want, n, esize);
  if (!ok) report(ok, &r, tag);
}

static void run_rows(const mhct_call *c, int64_t T) {
  const mhc_status_t st = mhct_call_run_rows(mhct_shared_cpu_ctx, c, 0, T);
  if (st != MHC_SUCCESS)
    fail_msg("%s T=%lld: %s: %s", mhct_op_name(c->op), (long long)T, mhc_status_string(st),
             mhc_last_error_message());
}

/* Extra output tensors of the fused call and of hc_pre on hc_post's output. */
typedef struct outs {
  mhct_tensor res, pm, cm, li;
} outs;

static void outs_alloc(outs *o, int64_t T, int64_t H) {
  const int64_t s_res[3] = {T, 4, H}, s_pm[2] = {T, 4}, s_cm[3] = {T, 4, 4}, s_li[2] = {T, H};
  assert_int_equal(mhct_tensor_alloc(&o->res, kDLCPU, MHCT_BF16, 3, s_res), 0);
  assert_int_equal(mhct_tensor_alloc(&o->pm, kDLCPU, MHCT_F32, 2, s_pm), 0);
  assert_int_equal(mhct_tensor_alloc(&o->cm, kDLCPU, MHCT_F32, 3, s_cm), 0);
  assert_int_equal(mhct_tensor_alloc(&o->li, kDLCPU, MHCT_BF16, 2, s_li), 0);
}

static void outs_free(outs *o) {
  mhct_tensor_free(&o->res);
  mhct_tensor_free(&o->pm);
  mhct_tensor_free(&o->cm);
  mhct_tensor_free(&o->li);
}

/* Points the four outputs of a hc_post_pre call at o. */
static void use_outs(mhct_call *c, const outs *o) {
  c->residual_out = &o->res;
  c->post_mix_out = &o->pm;
  c->comb_mix_out = &o->cm;
  c->layer_input_out = &o->li;
}

#define U16(t) ((const uint16_t *)mhct_tensor_ptr(t))
#define F32(t) ((const float *)mhct_tensor_ptr(t))

/* The float64 hc_pre reference of every token of pb on `residual` ([pb->T, 4, H] bf16) with
 * pb's weights: the mixes, and layer_input without and with norm_weight, with budgets. */
typedef struct pre_ref {
  double *pm, *cm, *li, *li_err, *lin, *lin_err;
} pre_ref;

static void pre_ref_compute(pre_ref *r, const mhct_problem *pb, const uint16_t *residual) {
  const int64_t TM = pb->T, H = pb->H;
  r->pm = xmalloc(sizeof(double) * TM * 4);
  r->cm = xmalloc(sizeof(double) * TM * 16);
  r->li = xmalloc(sizeof(double) * TM * H);
  r->li_err = xmalloc(sizeof(double) * TM * H);
  r->lin = xmalloc(sizeof(double) * TM * H);
  r->lin_err = xmalloc(sizeof(double) * TM * H);
  mhcr_pre_out ro;
  memset(&ro, 0, sizeof ro);
  ro.post_mix = r->pm;
  ro.comb_mix = r->cm;
  ro.layer_input = r->li;
  ro.layer_input_err = r->li_err;
  ro.layer_input_norm = r->lin;
  ro.layer_input_norm_err = r->lin_err;
  mhcr_hc_pre(&pb->params, TM, H, residual, F32(&pb->fn), F32(&pb->scale), F32(&pb->base),
              U16(&pb->norm_weight), GATE_ERR, NULL, &ro);
}

static void pre_ref_free(pre_ref *r) {
  free(r->pm);
  free(r->cm);
  free(r->li);
  free(r->li_err);
  free(r->lin);
  free(r->lin_err);
}

static void run_case(mhct_inputs fam, int64_t H) {
  const double t_start = mhct_now_s();
  const char *fam_name = fam == MHCT_INPUTS_VLLM ? "vllm" : "model";
  const int64_t TM = TMAX, K = 4 * H;
  mhct_problem pb;
  assert_int_equal(mhct_problem_alloc(&pb, kDLCPU, TM, H, 0), 0);
  mhct_problem_fill(&pb, fam, 1000 + (uint64_t)fam * 7 + (uint64_t)H);

  /* ---- float64 references at T = TMAX (per token, so prefixes are the smaller T) ---- */
  double *post = xmalloc(sizeof(double) * TM * K), *post_err = xmalloc(sizeof(double) * TM * K);
  mhcr_hc_post(TM, H, U16(&pb.x), U16(&pb.residual), F32(&pb.post_mix), F32(&pb.comb_mix), post,
               post_err);
  pre_ref pre;
  pre_ref_compute(&pre, &pb, U16(&pb.residual));
  double *ho = xmalloc(sizeof(double) * TM * H), *ho_err = xmalloc(sizeof(double) * TM * H);
  mhcr_hc_head(&pb.params, TM, H, U16(&pb.residual), F32(&pb.fn_head), F32(&pb.scale_head),
               F32(&pb.base_head), GATE_ERR, NULL, ho, ho_err);

  /* ---- the library at T = TMAX: every op, kept for the prefix (token independence) check ---- */
  const mhct_call c_post = mhct_problem_call(&pb, MHC_OP_HC_POST, 0);
  const mhct_call c_pre = mhct_problem_call(&pb, MHC_OP_HC_PRE, 0);
  const mhct_call c_pren = mhct_problem_call(&pb, MHC_OP_HC_PRE, 1);
  const mhct_call c_head = mhct_problem_call(&pb, MHC_OP_HC_HEAD, 0);
  run_rows(&c_post, TM);
  uint16_t *full_r1 = mhct_tensor_to_host(&pb.residual_out);
  run_rows(&c_pre, TM);
  float *full_pm = mhct_tensor_to_host(&pb.post_mix_out);
  float *full_cm = mhct_tensor_to_host(&pb.comb_mix_out);
  uint16_t *full_li = mhct_tensor_to_host(&pb.layer_input_out);
  run_rows(&c_pren, TM);
  uint16_t *full_lin = mhct_tensor_to_host(&pb.layer_input_out);
  run_rows(&c_head, TM);
  uint16_t *full_ho = mhct_tensor_to_host(&pb.out);

  /* the reference of the fused boundary's pre half consumes the library's (checked) hc_post
   * output: the spec feeds hc_pre the bf16 residual that hc_post stored */
  pre_ref fpre;
  pre_ref_compute(&fpre, &pb, full_r1);

  /* the thread-split run equals the serial one (the GPU tests rely on it) */
  {
    outs par;
    outs_alloc(&par, TM, H);
    mhct_call c = mhct_problem_call(&pb, MHC_OP_HC_POST_PRE, 1);
    use_outs(&c, &par);
    assert_int_equal(mhct_call_run_parallel(mhct_shared_cpu_ctx, &c, 3), MHC_SUCCESS);
    outs ser;
    outs_alloc(&ser, TM, H);
    use_outs(&c, &ser);
    assert_int_equal(mhct_call_run(mhct_shared_cpu_ctx, &c), MHC_SUCCESS);
    char tag[96];
    snprintf(tag, sizeof tag, "[%s H=%lld threads]", fam_name, (long long)H);
    check_bits(tag, "residual_out", mhct_tensor_ptr(&par.res), mhct_tensor_ptr(&ser.res),
               (size_t)(TM * K), 2);
    check_bits(tag, "post_mix", mhct_tensor_ptr(&par.pm), mhct_tensor_ptr(&ser.pm), TM * 4, 4);
    check_bits(tag, "comb_mix", mhct_tensor_ptr(&par.cm), mhct_tensor_ptr(&ser.cm), TM * 16, 4);
    check_bits(tag, "layer_input", mhct_tensor_ptr(&par.li), mhct_tensor_ptr(&ser.li),
               (size_t)(TM * H), 2);
    outs_free(&par);
    outs_free(&ser);
  }

  outs fused, unf;
  outs_alloc(&fused, TM, H);
  outs_alloc(&unf, TM, H);

  for (int ti = 0; ti < NT; ++ti) {
    const int64_t T = kTs[ti];
    const size_t nr = (size_t)(T * K), nh = (size_t)(T * H);
    char tag[96];

    /* hc_post */
    snprintf(tag, sizeof tag, "[%s H=%lld T=%lld hc_post]", fam_name, (long long)H, (long long)T);
    mhct_tensor_fill_bytes(&pb.residual_out, 0x7F);
    run_rows(&c_post, T);
    check_bf16(tag, "residual_out", U16(&pb.residual_out), post, post_err, nr);
    check_bits(tag, "residual_out vs T=128 run", U16(&pb.residual_out), full_r1, nr, 2);

    /* hc_pre, without and with norm_weight */
    snprintf(tag, sizeof tag, "[%s H=%lld T=%lld hc_pre]", fam_name, (long long)H, (long long)T);
    run_rows(&c_pre, T);
    check_mix(tag, "post_mix", F32(&pb.post_mix_out), pre.pm, (size_t)T * 4);
    check_mix(tag, "comb_mix", F32(&pb.comb_mix_out), pre.cm, (size_t)T * 16);
    check_bf16(tag, "layer_input", U16(&pb.layer_input_out), pre.li, pre.li_err, nh);
    check_bits(tag, "post_mix vs T=128 run", F32(&pb.post_mix_out), full_pm, (size_t)T * 4, 4);
    check_bits(tag, "comb_mix vs T=128 run", F32(&pb.comb_mix_out), full_cm, (size_t)T * 16, 4);
    check_bits(tag, "layer_input vs T=128 run", U16(&pb.layer_input_out), full_li, nh, 2);
    snprintf(tag, sizeof tag, "[%s H=%lld T=%lld hc_pre+norm]", fam_name, (long long)H,
             (long long)T);
    run_rows(&c_pren, T);
    check_mix(tag, "post_mix", F32(&pb.post_mix_out), pre.pm, (size_t)T * 4);
    check_mix(tag, "comb_mix", F32(&pb.comb_mix_out), pre.cm, (size_t)T * 16);
    check_bf16(tag, "layer_input (norm)", U16(&pb.layer_input_out), pre.lin, pre.lin_err, nh);
    check_bits(tag, "layer_input vs T=128 run", U16(&pb.layer_input_out), full_lin, nh, 2);

    /* hc_post_pre, without and with norm; == hc_post then hc_pre, bit for bit */
    for (int with_norm = 0; with_norm < 2; ++with_norm) {
      snprintf(tag, sizeof tag, "[%s H=%lld T=%lld hc_post_pre%s]", fam_name, (long long)H,
               (long long)T, with_norm ? "+norm" : "");
      mhct_call c = mhct_problem_call(&pb, MHC_OP_HC_POST_PRE, with_norm);
      use_outs(&c, &fused);
      mhct_tensor_fill_bytes(&fused.res, 0x7F);
      mhct_tensor_fill_bytes(&fused.li, 0x7F);
      run_rows(&c, T);
      check_bf16(tag, "residual_out", U16(&fused.res), post, post_err, nr);
      check_mix(tag, "post_mix", F32(&fused.pm), fpre.pm, (size_t)T * 4);
      check_mix(tag, "comb_mix", F32(&fused.cm), fpre.cm, (size_t)T * 16);
      check_bf16(tag, with_norm ? "layer_input (norm)" : "layer_input", U16(&fused.li),
                 with_norm ? fpre.lin : fpre.li, with_norm ? fpre.lin_err : fpre.li_err, nh);
      /* unfused: hc_post (into pb.residual_out, above), then hc_pre on it */
      mhct_call u = mhct_problem_call(&pb, MHC_OP_HC_PRE, with_norm);
      u.residual = &pb.residual_out;
      u.post_mix_out = &unf.pm;
      u.comb_mix_out = &unf.cm;
      u.layer_input_out = &unf.li;
      run_rows(&u, T);
      check_bits(tag, "fused residual_out == hc_post", U16(&fused.res), U16(&pb.residual_out), nr,
                 2);
      check_bits(tag, "fused post_mix == hc_pre", F32(&fused.pm), F32(&unf.pm), (size_t)T * 4, 4);
      check_bits(tag, "fused comb_mix == hc_pre", F32(&fused.cm), F32(&unf.cm), (size_t)T * 16, 4);
      check_bits(tag, "fused layer_input == hc_pre", U16(&fused.li), U16(&unf.li), nh, 2);
    }

    /* hc_head */
    snprintf(tag, sizeof tag, "[%s H=%lld T=%lld hc_head]", fam_name, (long long)H, (long long)T);
    mhct_tensor_fill_bytes(&pb.out, 0x7F);
    run_rows(&c_head, T);
    check_bf16(tag, "out", U16(&pb.out), ho, ho_err, nh);
    check_bits(tag, "out vs T=128 run", U16(&pb.out), full_ho, nh, 2);
  }

  /* determinism: the same call twice gives the same bits */
  {
    mhct_call c = mhct_problem_call(&pb, MHC_OP_HC_POST_PRE, 1);
    use_outs(&c, &fused);
    run_rows(&c, 17);
    void *a_res = mhct_tensor_to_host(&fused.res), *a_pm = mhct_tensor_to_host(&fused.pm);
    void *a_cm = mhct_tensor_to_host(&fused.cm), *a_li = mhct_tensor_to_host(&fused.li);
    mhct_tensor_fill_bytes(&fused.res, 0);
    mhct_tensor_fill_bytes(&fused.pm, 0);
    mhct_tensor_fill_bytes(&fused.cm, 0);
    mhct_tensor_fill_bytes(&fused.li, 0);
    run_rows(&c, 17);
    char tag[96];
    snprintf(tag, sizeof tag, "[%s H=%lld determinism]", fam_name, (long long)H);
    check_bits(tag, "residual_out", U16(&fused.res), a_res, (size_t)(17 * K), 2);
    check_bits(tag, "post_mix", F32(&fused.pm), a_pm, 17 * 4, 4);
    check_bits(tag, "comb_mix", F32(&fused.cm), a_cm, 17 * 16, 4);
    check_bits(tag, "layer_input", U16(&fused.li), a_li, (size_t)(17 * H), 2);
    free(a_res);
    free(a_pm);
    free(a_cm);
    free(a_li);
  }

  printf("[%s H=%lld] done in %.2f s\n", fam_name, (long long)H, mhct_now_s() - t_start);
  outs_free(&fused);
  outs_free(&unf);
  free(post); free(post_err); free(ho); free(ho_err);
  pre_ref_free(&pre);
  pre_ref_free(&fpre);
  free(full_r1); free(full_pm); free(full_cm); free(full_li); free(full_lin); free(full_ho);
  mhct_problem_free(&pb);
}

#define CASE(fam, H)                                                      \
  static void test_##fam##_##H(void **state) {                            \
    (void)state;                                                          \
    g_failures = 0;                                                       \
    run_case(fam == 0 ? MHCT_INPUTS_VLLM : MHCT_INPUTS_MODEL, H);         \
    if (g_failures) fail_msg("%d comparison(s) failed (see above)", g_failures); \
  }

#define VLLM 0
#define MODEL 1
CASE(VLLM, 64)
CASE(VLLM, 4096)
CASE(VLLM, 7168)
CASE(MODEL, 64)
CASE(MODEL, 4096)
CASE(MODEL, 7168)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_VLLM_64),   cmocka_unit_test(test_VLLM_4096),
      cmocka_unit_test(test_VLLM_7168), cmocka_unit_test(test_MODEL_64),
      cmocka_unit_test(test_MODEL_4096), cmocka_unit_test(test_MODEL_7168),
  };
  return cmocka_run_group_tests(tests, mhct_setup_cpu_context, mhct_teardown_cpu_context);
}
