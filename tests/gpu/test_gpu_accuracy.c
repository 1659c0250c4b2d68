/* CUDA backend against the CPU backend (the reference backend, itself checked against the
 * float64 reference in tests/unit), for every op:
 *   T in {1,2,4,7,8,15,16,17,32,64,128,512,2048} x H in {4096, 7168}, and
 *   T in {1,2,7,8,16,17,32,64,128,512,1100} x H in {4160, 2560, 2080, 1280, 1000, 7, 1} (odd sizes;
 *   2080 = 32.5 of the tensor-core GEMM's 64-channel steps: its last step is half past H),
 * with the vLLM test inputs and the model-like inputs (spec §5). Per (T, H, inputs):
 *   hc_post; hc_pre, hc_pre + norm_weight and hc_head on the CPU's hc_post output;
 *   hc_post_pre with and without norm_weight, which must equal the CUDA backend's own
 *   hc_post followed by hc_pre BIT FOR BIT (every output), and must match the CPU;
 *   a second hc_post_pre run gives the same bits (determinism).
 * Inputs of T tokens are the first T tokens of the largest problem (rows are seeded per
 * token), so the CPU reference is computed once per (H, inputs) at the largest T, on all
 * cores (the CPU backend computes each token on its own: tests/unit checks that split runs
 * give the same bits), and its prefixes serve every smaller T.
 *
 * Tolerances (at least as strict as the upstream atol = rtol = 1e-2):
 *  - post_mix, comb_mix: |gpu - cpu| <= 1e-5 + 1e-4 |cpu| (DeepSeek's tolerance for the
 *    mixes, DESIGN §4). Both backends are within ~1e-7 of the exact mixes in practice.
 *  - bf16 outputs: within 1 bf16 ulp of the CPU backend's bits. Two correct float32
 *    implementations of the same formula can land on either side of a rounding boundary, so
 *    1 ulp is the tightest bound that any implementation with a different float32 summation
 *    order (the GPU's split-K GEMM gives slightly different pre gates) can meet. Where the
 *    exact value is tiny against its summed terms (cancellation), a bf16 ulp of the result is
 *    finer than float32 can resolve; there an element also passes when |gpu - cpu| is within
 *    twice the float32 evaluation budget of reference64.h (each backend within one budget of
 *    the exact value), computed with a pre-gate error of GATE_ERR. The log counts such
 *    elements ("budget=").
 *    At most 1% of the elements may differ from the CPU at all (catches systematic rounding
 *    errors, which stay within 1 ulp).
 *  - For the fused RMSNorm output bf16(bf16(ol) * rs * w) the same budget covers the case
 *    where ol lies so close to a bf16 rounding boundary that the inner rounding may go either
 *    way; one ulp of ol then moves the output by up to 2 ulps (reference64.h).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_harness.h"

/* Allowed absolute error of a pre gate of either backend against the exact gate. The gate's
 * sensitivity to its mix is |scale[0]| * sigmoid' <= 0.3 / 4 for these inputs; with mixes
 * within the DESIGN tolerance (1e-5 + 1e-4 |mix|, |mix| <= 1) that is <= 8.3e-6 < 2^-16. */
#define GATE_ERR 0x1p-16
#define MIX_RTOL 1e-4
#define MIX_ATOL 1e-5

static const int64_t kTsMain[] = {1, 2, 4, 7, 8, 15, 16, 17, 32, 64, 128, 512, 2048};
static const int64_t kTsOdd[] = {1, 2, 7, 8, 16, 17, 32, 64, 128, 512, 1100};
static const int64_t kOddH[] = {4096 + 64, 2560, 2080, 1280, 1000, 7, 1};
/* MHC_GPU_TESTS_QUICK=1 (scripts/gpu-sanitizers.sh: every kernel is 10-100x slower under
 * compute-sanitizer): fewer T, still one of every launch configuration -- split-K FMA with
 * early (T <= 8) and late (9..64) dependent launch, tensor-core pair (65..128 register path,
 * 129..1024 and > 1024 rows, the last with the row-order finalize; hc_head from 129) -- and
 * every hidden-size class. */
static const int64_t kTsQuick[] = {1, 7, 16, 17, 100, 130, 600, 1100};
static const int64_t kOddHQuick[] = {4096 + 64, 2080, 1280, 7};

static mhc_context *g_cpu, *g_gpu;
static int g_failures;

static int setup(void **state) {
  (void)state;
  g_cpu = mhct_cpu_context();
  if (!g_cpu) return -1;
  g_gpu = gh_cuda_context(0);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  mhc_context_destroy(g_gpu);
  mhc_context_destroy(g_cpu);
  return 0;
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  assert_non_null(p);
  return p;
}

/* ---------------------------------------------------------------------------------------- */
/* one line per (op, T, H): each output's max abs / rel error and max ulp                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct line {
  char text[768];
  int ok;
  mhct_cmp bad[8];
  int nbad;
} line;

static void line_start(line *l, const char *op, const char *fam, int64_t H, int64_t T) {
  snprintf(l->text, sizeof l->text, "%-17s %-5s H=%-5lld T=%-5lld", op, fam, (long long)H,
           (long long)T);
  l->ok = 1;
  l->nbad = 0;
}

static void line_add(line *l, int ok, const mhct_cmp *r, int is_bf16) {
  const size_t k = strlen(l->text);
  if (is_bf16 && r->n_budget)
    snprintf(l->text + k, sizeof l->text - k,
             " | %s abs=%.2g rel=%.2g ulp=%d (%zu inexact, %zu by budget)", r->what, r->max_abs,
             r->max_rel, r->max_ulps, r->n_inexact, r->n_budget);
  else if (is_bf16)
    snprintf(l->text + k, sizeof l->text - k, " | %s abs=%.2g rel=%.2g ulp=%d (%zu inexact)",
             r->what, r->max_abs, r->max_rel, r->max_ulps, r->n_inexact);
  else
    snprintf(l->text + k, sizeof l->text - k, " | %s abs=%.2g rel=%.2g", r->what, r->max_abs,
             r->max_rel);
  if (!ok) {
    l->ok = 0;
    if (l->nbad < 8) l->bad[l->nbad++] = *r;
  }
}

/* "bits" checks only show up when they fail. */
static void line_bits(line *l, const char *what, const void *got, const void *want, size_t n,
                      size_t esize) {
  mhct_cmp r;
  if (!mhct_cmp_bits(&r, what, got, want, n, esize)) {
    l->ok = 0;
    if (l->nbad < 8) l->bad[l->nbad++] = r;
  }
}

static void line_end(line *l) {
  printf("%s  %s\n", l->text, l->ok ? "ok" : "FAIL");
  char buf[512];
  for (int i = 0; i < l->nbad; ++i) printf("    FAILED: %s\n", mhct_cmp_line(&l->bad[i], buf, sizeof buf));
  if (!l->ok) ++g_failures;
}

static void add_mix(line *l, const char *what, const float *gpu, const float *cpu, size_t n) {
  mhct_cmp r;
  const int ok = mhct_cmp_f32_f32(&r, what, gpu, cpu, n, MIX_RTOL, MIX_ATOL);
  line_add(l, ok, &r, 0);
}

/* bf16: 1 ulp (or the budget), and at most 1% (+2) of the elements may differ at all: two
 * round-to-nearest-even implementations only disagree where float32 differences straddle a
 * rounding boundary (~1e-4 of the elements), while a systematic rounding difference
 * (truncation, rounding twice) makes ~50% of them differ by one ulp. */
static void add_bf16(line *l, const char *what, const uint16_t *gpu, const uint16_t *cpu,
                     const double *budget, size_t n) {
  mhct_cmp r;
  int ok = mhct_cmp_bf16_bf16(&r, what, gpu, cpu, budget, n, 1);
  if (ok && (double)r.n_inexact > 0.01 * (double)n + 2) {
    printf("    %s: %zu of %zu elements differ from the CPU backend: systematic rounding?\n",
           what, r.n_inexact, n);
    ok = 0;
  }
  line_add(l, ok, &r, 1);
}

/* ---------------------------------------------------------------------------------------- */
/* the reference of one (inputs, H) group, at its largest T                                 */
/* ---------------------------------------------------------------------------------------- */

typedef struct group_ref {
  int64_t T, H;
  mhct_problem hp;            /* host inputs; hp.residual_out = the CPU's hc_post output */
  float *pm, *cm;             /* CPU hc_pre(R1) mixes */
  float *pm_n, *cm_n;         /* CPU hc_pre(R1) + norm mixes */
  uint16_t *li, *lin, *ho;    /* CPU layer_input, with norm, hc_head out */
  double *post_b, *li_b, *lin_b, *ho_b; /* GPU-vs-CPU budgets: 2 x the float32 budget */
  double *ol, *rs;            /* exact ol [T,H] and norm rs [T] (for widening) */
} group_ref;

static void cpu_run(const mhct_call *c) {
  const mhc_status_t st = mhct_call_run_parallel(g_cpu, c, 0);
  if (st != MHC_SUCCESS)
    fail_msg("CPU %s: %s: %s", mhct_op_name(c->op), mhc_status_string(st), mhc_last_error_message());
}

static void double_in_place(double *v, size_t n) {
  for (size_t i = 0; i < n; ++i) v[i] *= 2.0;
}

static void group_ref_build(group_ref *g, mhct_inputs fam, int64_t T, int64_t H, uint64_t seed) {
  memset(g, 0, sizeof *g);
  g->T = T;
  g->H = H;
  mhct_problem *hp = &g->hp;
  assert_int_equal(mhct_problem_alloc(hp, kDLCPU, T, H, 0), 0);
  mhct_problem_fill(hp, fam, seed);
  const size_t nr = (size_t)(T * 4 * H), nh = (size_t)(T * H);

  /* CPU: R1 = hc_post(...); hc_pre(R1) (+norm); hc_head(R1) */
  const mhct_call c_post = mhct_problem_call(hp, MHC_OP_HC_POST, 0);
  cpu_run(&c_post);
  const int64_t s_li[2] = {T, H};
  mhct_tensor li_n;
  assert_int_equal(mhct_tensor_alloc(&li_n, kDLCPU, MHCT_BF16, 2, s_li), 0);
  mhct_call c = mhct_problem_call(hp, MHC_OP_HC_PRE, 1);
  c.residual = &hp->residual_out;
  c.layer_input_out = &li_n;
  cpu_run(&c);
  g->pm_n = mhct_tensor_to_host(&hp->post_mix_out);
  g->cm_n = mhct_tensor_to_host(&hp->comb_mix_out);
  g->lin = mhct_tensor_to_host(&li_n);
  mhct_tensor_free(&li_n);
  c = mhct_problem_call(hp, MHC_OP_HC_PRE, 0);
  c.residual = &hp->residual_out;
  cpu_run(&c);
  g->pm = mhct_tensor_to_host(&hp->post_mix_out);
  g->cm = mhct_tensor_to_host(&hp->comb_mix_out);
  g->li = mhct_tensor_to_host(&hp->layer_input_out);
  c = mhct_problem_call(hp, MHC_OP_HC_HEAD, 0);
  c.residual = &hp->residual_out;
  cpu_run(&c);
  g->ho = mhct_tensor_to_host(&hp->out);

  /* float64 budgets on the same inputs */
  const uint16_t *r1 = (const uint16_t *)mhct_tensor_ptr(&hp->residual_out);
  g->post_b = xmalloc(nr * sizeof(double));
  mhcr_hc_post(T, H, (const uint16_t *)mhct_tensor_ptr(&hp->x),
               (const uint16_t *)mhct_tensor_ptr(&hp->residual),
               (const float *)mhct_tensor_ptr(&hp->post_mix),
               (const float *)mhct_tensor_ptr(&hp->comb_mix), NULL, g->post_b);
  g->li_b = xmalloc(nh * sizeof(double));
  g->lin_b = xmalloc(nh * sizeof(double));
  g->ol = xmalloc(nh * sizeof(double));
  g->rs = xmalloc((size_t)T * sizeof(double));
  mhcr_pre_out o;
  memset(&o, 0, sizeof o);
  o.layer_input = g->ol;
  o.layer_input_err = g->li_b;
  o.layer_input_norm_err = g->lin_b;
  o.norm_rs = g->rs;
  mhcr_hc_pre(&hp->params, T, H, r1, (const float *)mhct_tensor_ptr(&hp->fn),
              (const float *)mhct_tensor_ptr(&hp->scale), (const float *)mhct_tensor_ptr(&hp->base),
              (const uint16_t *)mhct_tensor_ptr(&hp->norm_weight), GATE_ERR, NULL, &o);
  g->ho_b = xmalloc(nh * sizeof(double));
  mhcr_hc_head(&hp->params, T, H, r1, (const float *)mhct_tensor_ptr(&hp->fn_head),
               (const float *)mhct_tensor_ptr(&hp->scale_head),
               (const float *)mhct_tensor_ptr(&hp->base_head), GATE_ERR, NULL, NULL, g->ho_b);
  double_in_place(g->post_b, nr);
  double_in_place(g->li_b, nh);
  double_in_place(g->lin_b, nh);
  double_in_place(g->ho_b, nh);
}

static void group_ref_free(group_ref *g) {
  free(g->pm); free(g->cm); free(g->pm_n); free(g->cm_n);
  free(g->li); free(g->lin); free(g->ho);
  free(g->post_b); free(g->li_b); free(g->lin_b); free(g->ho_b);
  free(g->ol); free(g->rs);
  mhct_problem_free(&g->hp);
}

/* The fused op's pre half consumes ITS OWN hc_post output. Where that differs from the CPU's
 * (by the 1 ulp hc_post allows), widen the layer_input budgets by the effect: pre <= 1 (+eps)
 * per stream; for the fused RMSNorm the change also moves bf16(ol) by at most one ulp of ol,
 * times rs * |w|. Returns the number of differing residual elements. */
static size_t widen_for_residual(const group_ref *g, int64_t T, const uint16_t *r1_gpu,
                                 double *li_w, double *lin_w) {
  const int64_t H = g->H;
  const uint16_t *r1c = (const uint16_t *)mhct_tensor_ptr(&g->hp.residual_out);
  const uint16_t *w = (const uint16_t *)mhct_tensor_ptr(&g->hp.norm_weight);
  size_t ndiff = 0;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h) {
      double d = 0.0;
      for (int j = 0; j < 4; ++j) {
        const int64_t k = (t * 4 + j) * H + h;
        if (r1_gpu[k] != r1c[k]) {
          ++ndiff;
          d += fabs((double)mhct_bf16_to_f32(r1_gpu[k]) - (double)mhct_bf16_to_f32(r1c[k]));
        }
      }
      const int64_t i = t * H + h;
      li_w[i] = g->li_b[i];
      lin_w[i] = g->lin_b[i];
      if (d > 0.0) {
        li_w[i] += 1.01 * d;
        lin_w[i] += (1.01 * d + mhct_bf16_ulp(g->ol[i])) * g->rs[t] *
                    fabs((double)mhct_bf16_to_f32(w[h])) * 1.01;
      }
    }
  return ndiff;
}

/* ---------------------------------------------------------------------------------------- */
/* the sweep                                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef struct dev_outs {
  mhct_tensor res, pm, cm, li;
} dev_outs;

static void dev_outs_alloc(dev_outs *o, int64_t T, int64_t H) {
  const int64_t s_res[3] = {T, 4, H}, s_pm[2] = {T, 4}, s_cm[3] = {T, 4, 4}, s_li[2] = {T, H};
  gh_device_tensor(&o->res, MHCT_BF16, 3, s_res);
  gh_device_tensor(&o->pm, MHCT_F32, 2, s_pm);
  gh_device_tensor(&o->cm, MHCT_F32, 3, s_cm);
  gh_device_tensor(&o->li, MHCT_BF16, 2, s_li);
}

static void dev_outs_free(dev_outs *o) {
  mhct_tensor_free(&o->res);
  mhct_tensor_free(&o->pm);
  mhct_tensor_free(&o->cm);
  mhct_tensor_free(&o->li);
}

/* Fills an output with 0xFF bytes (NaN in bf16 and f32) before a run, so that an element the
 * run does not write cannot pass as a value left by an earlier run. */
static void poison(mhct_tensor *t) { assert_int_equal(mhct_tensor_fill_bytes(t, 0xFF), 0); }

/* MHC_GPU_TESTS_MAX_T=N: only the T <= N of an (ascending) list, e.g. for a configuration
 * override meant for decode sizes (gpu.accuracy.one_kernel: a cluster path that racecheck
 * makes very slow at prefill sizes). */
static int ts_within_max(const int64_t *Ts, int nT) {
  const char *m = getenv("MHC_GPU_TESTS_MAX_T");
  if (m == NULL || m[0] == '\0') return nT;
  const long long max_t = atoll(m);
  int n = 0;
  while (n < nT && Ts[n] <= max_t) ++n;
  return n;
}

static void run_group(mhct_inputs fam, int64_t H, const int64_t *Ts, int nT) {
  nT = ts_within_max(Ts, nT);
  if (nT == 0) return;
  const double t0 = mhct_now_s();
  const char *fam_name = fam == MHCT_INPUTS_VLLM ? "vllm" : "model";
  const int64_t TM = Ts[nT - 1];
  group_ref g;
  group_ref_build(&g, fam, TM, H, 0xC0FFEEull + (uint64_t)H * 131 + (uint64_t)fam);
  const double t_ref = mhct_now_s();

  /* device copies: inputs, the CPU's hc_post output (input of hc_pre / hc_head here) */
  mhct_problem dp;
  gh_device_problem(&dp, &g.hp, g_gpu);
  mhct_tensor d_r1c;
  const int64_t s_res[3] = {TM, 4, H};
  gh_device_tensor(&d_r1c, MHCT_BF16, 3, s_res);
  assert_int_equal(mhct_tensor_upload(&d_r1c, mhct_tensor_ptr(&g.hp.residual_out)), 0);
  dev_outs fused, unf;
  dev_outs_alloc(&fused, TM, H);
  dev_outs_alloc(&unf, TM, H);
  double *li_w = xmalloc((size_t)(TM * H) * sizeof(double));
  double *lin_w = xmalloc((size_t)(TM * H) * sizeof(double));
  const uint16_t *r1c = (const uint16_t *)mhct_tensor_ptr(&g.hp.residual_out);

  for (int ti = 0; ti < nT; ++ti) {
    const int64_t T = Ts[ti];
    const size_t nr = (size_t)(T * 4 * H), nh = (size_t)(T * H);
    const size_t br = nr * 2, bh = nh * 2, bpm = (size_t)T * 16, bcm = (size_t)T * 64;
    line l;

    /* hc_post */
    line_start(&l, "hc_post", fam_name, H, T);
    const mhct_call c_post = mhct_problem_call(&dp, MHC_OP_HC_POST, 0);
    poison(&dp.residual_out);
    gh_run_rows(g_gpu, &c_post, 0, T);
    uint16_t *r1g = gh_download(&dp.residual_out, br);
    add_bf16(&l, "residual_out", r1g, r1c, g.post_b, nr);
    line_end(&l);

    /* hc_pre, hc_pre + norm, hc_head on the CPU's hc_post output */
    for (int with_norm = 0; with_norm < 2; ++with_norm) {
      line_start(&l, with_norm ? "hc_pre+norm" : "hc_pre", fam_name, H, T);
      mhct_call c = mhct_problem_call(&dp, MHC_OP_HC_PRE, with_norm);
      c.residual = &d_r1c;
      poison(&dp.post_mix_out);
      poison(&dp.comb_mix_out);
      poison(&dp.layer_input_out);
      gh_run_rows(g_gpu, &c, 0, T);
      float *pm = gh_download(&dp.post_mix_out, bpm), *cm = gh_download(&dp.comb_mix_out, bcm);
      uint16_t *li = gh_download(&dp.layer_input_out, bh);
      add_mix(&l, "post_mix", pm, with_norm ? g.pm_n : g.pm, (size_t)T * 4);
      add_mix(&l, "comb_mix", cm, with_norm ? g.cm_n : g.cm, (size_t)T * 16);
      add_bf16(&l, "layer_input", li, with_norm ? g.lin : g.li, with_norm ? g.lin_b : g.li_b, nh);
      line_end(&l);
      free(pm);
      free(cm);
      free(li);
    }
    line_start(&l, "hc_head", fam_name, H, T);
    mhct_call ch = mhct_problem_call(&dp, MHC_OP_HC_HEAD, 0);
    ch.residual = &d_r1c;
    poison(&dp.out);
    gh_run_rows(g_gpu, &ch, 0, T);
    uint16_t *ho = gh_download(&dp.out, bh);
    add_bf16(&l, "out", ho, g.ho, g.ho_b, nh);
    line_end(&l);
    free(ho);

    /* hc_post_pre == hc_post then hc_pre (this backend), and vs the CPU; then determinism */
    for (int with_norm = 0; with_norm < 2; ++with_norm) {
      line_start(&l, with_norm ? "hc_post_pre+norm" : "hc_post_pre", fam_name, H, T);
      mhct_call u = mhct_problem_call(&dp, MHC_OP_HC_PRE, with_norm);
      u.residual = &dp.residual_out; /* this backend's hc_post output */
      u.post_mix_out = &unf.pm;
      u.comb_mix_out = &unf.cm;
      u.layer_input_out = &unf.li;
      poison(&unf.pm);
      poison(&unf.cm);
      poison(&unf.li);
      gh_run_rows(g_gpu, &u, 0, T);
      mhct_call f = mhct_problem_call(&dp, MHC_OP_HC_POST_PRE, with_norm);
      f.residual_out = &fused.res;
      f.post_mix_out = &fused.pm;
      f.comb_mix_out = &fused.cm;
      f.layer_input_out = &fused.li;
      poison(&fused.res);
      poison(&fused.pm);
      poison(&fused.cm);
      poison(&fused.li);
      gh_run_rows(g_gpu, &f, 0, T);
      uint16_t *f_res = gh_download(&fused.res, br), *f_li = gh_download(&fused.li, bh);
      float *f_pm = gh_download(&fused.pm, bpm), *f_cm = gh_download(&fused.cm, bcm);
      uint16_t *u_li = gh_download(&unf.li, bh);
      float *u_pm = gh_download(&unf.pm, bpm), *u_cm = gh_download(&unf.cm, bcm);
      line_bits(&l, "fused residual_out == hc_post", f_res, r1g, nr, 2);
      line_bits(&l, "fused post_mix == hc_pre", f_pm, u_pm, (size_t)T * 4, 4);
      line_bits(&l, "fused comb_mix == hc_pre", f_cm, u_cm, (size_t)T * 16, 4);
      line_bits(&l, "fused layer_input == hc_pre", f_li, u_li, nh, 2);
      const size_t ndiff = widen_for_residual(&g, T, f_res, li_w, lin_w);
      add_bf16(&l, "residual_out", f_res, r1c, g.post_b, nr);
      add_mix(&l, "post_mix", f_pm, with_norm ? g.pm_n : g.pm, (size_t)T * 4);
      add_mix(&l, "comb_mix", f_cm, with_norm ? g.cm_n : g.cm, (size_t)T * 16);
      add_bf16(&l, "layer_input", f_li, with_norm ? g.lin : g.li, with_norm ? lin_w : li_w, nh);
      if (ndiff) {
        const size_t k = strlen(l.text);
        snprintf(l.text + k, sizeof l.text - k, " | residual != cpu: %zu", ndiff);
      }
      if (with_norm) { /* determinism: run again, same bits */
        poison(&fused.res);
        poison(&fused.pm);
        poison(&fused.cm);
        poison(&fused.li);
        gh_run_rows(g_gpu, &f, 0, T);
        uint16_t *f_res2 = gh_download(&fused.res, br), *f_li2 = gh_download(&fused.li, bh);
        float *f_pm2 = gh_download(&fused.pm, bpm), *f_cm2 = gh_download(&fused.cm, bcm);
        line_bits(&l, "rerun residual_out", f_res2, f_res, nr, 2);
        line_bits(&l, "rerun post_mix", f_pm2, f_pm, (size_t)T * 4, 4);
        line_bits(&l, "rerun comb_mix", f_cm2, f_cm, (size_t)T * 16, 4);
        line_bits(&l, "rerun layer_input", f_li2, f_li, nh, 2);
        free(f_res2); free(f_li2); free(f_pm2); free(f_cm2);
      }
      line_end(&l);
      free(f_res); free(f_li); free(f_pm); free(f_cm); free(u_li); free(u_pm); free(u_cm);
    }
    free(r1g);
  }
  printf("== %s H=%lld: reference %.1f s, GPU checks %.1f s\n", fam_name, (long long)H,
         t_ref - t0, mhct_now_s() - t_ref);
  free(li_w);
  free(lin_w);
  dev_outs_free(&fused);
  dev_outs_free(&unf);
  mhct_tensor_free(&d_r1c);
  mhct_problem_free(&dp);
  group_ref_free(&g);
}

#define NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int quick(void) {
  const char *q = getenv("MHC_GPU_TESTS_QUICK");
  return q != NULL && q[0] == '1';
}

static void run_main(mhct_inputs fam, int64_t H) {
  if (quick()) run_group(fam, H, kTsQuick, NELEM(kTsQuick));
  else run_group(fam, H, kTsMain, NELEM(kTsMain));
}

static void finish(void) {
  if (g_failures) fail_msg("%d case(s) failed (see FAIL lines above)", g_failures);
}

static void test_vllm_4096(void **state) {
  (void)state;
  g_failures = 0;
  run_main(MHCT_INPUTS_VLLM, 4096);
  finish();
}

static void test_vllm_7168(void **state) {
  (void)state;
  g_failures = 0;
  run_main(MHCT_INPUTS_VLLM, 7168);
  finish();
}

static void test_model_4096(void **state) {
  (void)state;
  g_failures = 0;
  run_main(MHCT_INPUTS_MODEL, 4096);
  finish();
}

static void test_model_7168(void **state) {
  (void)state;
  g_failures = 0;
  run_main(MHCT_INPUTS_MODEL, 7168);
  finish();
}

static void test_odd_hidden_sizes(void **state) {
  (void)state;
  g_failures = 0;
  const int q = quick();
  const int64_t *hs = q ? kOddHQuick : kOddH;
  const int nh = q ? NELEM(kOddHQuick) : NELEM(kOddH);
  for (int i = 0; i < nh; ++i) {
    run_group(MHCT_INPUTS_VLLM, hs[i], q ? kTsQuick : kTsOdd, q ? NELEM(kTsQuick) : NELEM(kTsOdd));
    if (!q) run_group(MHCT_INPUTS_MODEL, hs[i], kTsOdd, NELEM(kTsOdd));
  }
  finish();
}

int main(void) {
  if (!gh_have_device("mhc_gpu_accuracy")) return GH_SKIP_RC;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vllm_4096),  cmocka_unit_test(test_vllm_7168),
      cmocka_unit_test(test_model_4096), cmocka_unit_test(test_model_7168),
      cmocka_unit_test(test_odd_hidden_sizes),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
