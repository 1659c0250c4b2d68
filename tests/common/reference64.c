/* Float64 reference of the mHC operators: see reference64.h. Written from the spec only. */
#include "reference64.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define NSTREAMS 4
#define NMIX 24

double mhcr_sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

void mhcr_sinkhorn(double c[4][4], int iters, double eps) {
  for (int a = 0; a < 4; ++a) { /* row softmax, then + eps */
    double m = c[a][0];
    for (int b = 1; b < 4; ++b) m = c[a][b] > m ? c[a][b] : m;
    double e[4], s = 0.0;
    for (int b = 0; b < 4; ++b) {
      e[b] = exp(c[a][b] - m);
      s += e[b];
    }
    for (int b = 0; b < 4; ++b) c[a][b] = e[b] / s + eps;
  }
  for (int it = 0; it < iters; ++it) {
    if (it > 0) { /* row normalisation (not before the first column one) */
      for (int a = 0; a < 4; ++a) {
        const double s = c[a][0] + c[a][1] + c[a][2] + c[a][3] + eps;
        for (int b = 0; b < 4; ++b) c[a][b] /= s;
      }
    }
    for (int b = 0; b < 4; ++b) { /* column normalisation */
      const double s = c[0][b] + c[1][b] + c[2][b] + c[3][b] + eps;
      for (int a = 0; a < 4; ++a) c[a][b] /= s;
    }
  }
}

static double bf(uint16_t v) { return (double)mhct_bf16_to_f32(v); }
static double q_bf16(double v) { return (double)mhct_bf16_to_f32(mhct_f64_to_bf16(v)); }

/* ---------------------------------------------------------------------------------------- */
/* hc_post                                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct post_job {
  int64_t H;
  const uint16_t *x, *residual;
  const float *post, *comb;
  double *out, *err;
} post_job;

static void post_tokens(void *arg, int64_t t0, int64_t t1) {
  const post_job *j = (const post_job *)arg;
  const int64_t H = j->H;
  for (int64_t t = t0; t < t1; ++t) {
    const uint16_t *r = j->residual + t * NSTREAMS * H;
    const float *comb = j->comb + t * 16; /* comb[i][jj] at i*4 + jj */
    for (int jj = 0; jj < NSTREAMS; ++jj) {
      const double post = j->post[t * NSTREAMS + jj];
      for (int64_t h = 0; h < H; ++h) {
        const double xt = post * bf(j->x[t * H + h]);
        double v = xt, mag = fabs(xt);
        for (int i = 0; i < NSTREAMS; ++i) {
          const double term = (double)comb[i * 4 + jj] * bf(r[i * H + h]);
          v += term;
          mag += fabs(term);
        }
        const int64_t o = (t * NSTREAMS + jj) * H + h;
        if (j->out) j->out[o] = v;
        if (j->err) j->err[o] = 10.0 * MHCR_U * mag;
      }
    }
  }
}

void mhcr_hc_post(int64_t T, int64_t H, const uint16_t *x, const uint16_t *residual,
                  const float *post_mix, const float *comb_mix, double *out, double *err) {
  post_job j = {H, x, residual, post_mix, comb_mix, out, err};
  mhct_parallel_for(T, 0, post_tokens, &j);
}

/* ---------------------------------------------------------------------------------------- */
/* shared by hc_pre and hc_head                                                             */
/* ---------------------------------------------------------------------------------------- */

/* raw[o] = sum_k X[k] fn[o][k] for o < rows; returns sum_k X[k]^2. X is the token's
 * flattened streams as double. Four partial sums: double accumulation of K <= 2^24 terms is
 * accurate to far below float32 resolution whatever the order. */
static double prenorm_gemm(const double *X, int64_t K, const float *fn, int rows, double *raw) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t k = 0;
  for (; k + 4 <= K; k += 4) {
    s0 += X[k] * X[k];
    s1 += X[k + 1] * X[k + 1];
    s2 += X[k + 2] * X[k + 2];
    s3 += X[k + 3] * X[k + 3];
  }
  for (; k < K; ++k) s0 += X[k] * X[k];
  const double ss = (s0 + s1) + (s2 + s3);
  for (int o = 0; o < rows; ++o) {
    const float *w = fn + (int64_t)o * K;
    double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (k = 0; k + 4 <= K; k += 4) {
      a0 += X[k] * (double)w[k];
      a1 += X[k + 1] * (double)w[k + 1];
      a2 += X[k + 2] * (double)w[k + 2];
      a3 += X[k + 3] * (double)w[k + 3];
    }
    for (; k < K; ++k) a0 += X[k] * (double)w[k];
    raw[o] = (a0 + a1) + (a2 + a3);
  }
  return ss;
}

/* One token's streams r [4H] as double into X, and the mixes raw[o] = sum_k X[k] fn[o][k] for
 * o < rows; returns inv_rms = 1 / sqrt(sum_k X[k]^2 / 4H + rms_eps). */
static double token_mixes(const uint16_t *r, int64_t H, const float *fn, int rows, float rms_eps,
                          double *X, double *raw) {
  const int64_t K = NSTREAMS * H;
  for (int64_t k = 0; k < K; ++k) X[k] = bf(r[k]);
  const double ss = prenorm_gemm(X, K, fn, rows, raw);
  return 1.0 / sqrt(ss / (double)K + (double)rms_eps);
}

/* The weighted stream sum ol[h] = sum_j pre_j r_j[h] and its budget (see reference64.h). */
static void weighted_sum(const uint16_t *r, int64_t H, const double pre[4], double gate_err,
                         const double *r_err, double *ol, double *ol_err) {
  for (int64_t h = 0; h < H; ++h) {
    double v = 0.0, mag = 0.0, sum_abs_r = 0.0, perturb = 0.0;
    for (int j = 0; j < NSTREAMS; ++j) {
      const double rj = bf(r[j * H + h]);
      v += pre[j] * rj;
      mag += fabs(pre[j] * rj);
      sum_abs_r += fabs(rj);
      if (r_err) perturb += (fabs(pre[j]) + gate_err) * r_err[j * H + h];
    }
    ol[h] = v;
    ol_err[h] = gate_err * sum_abs_r + 2.0 * NSTREAMS * MHCR_U * mag + perturb;
  }
}

/* Per-thread buffers of pre_tokens and head_tokens: one token's streams as double (X, 4H) and
 * its weighted stream sum with budget (ol, ol_err, H). Aborts when out of memory. */
typedef struct token_scratch {
  double *X, *ol, *ol_err;
} token_scratch;

static void scratch_alloc(token_scratch *s, int64_t H) {
  s->X = (double *)malloc((size_t)(NSTREAMS * H) * sizeof(double));
  s->ol = (double *)malloc((size_t)H * sizeof(double));
  s->ol_err = (double *)malloc((size_t)H * sizeof(double));
  if (!s->X || !s->ol || !s->ol_err) abort();
}

static void scratch_free(token_scratch *s) {
  free(s->X);
  free(s->ol);
  free(s->ol_err);
}

/* ---------------------------------------------------------------------------------------- */
/* hc_pre                                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct pre_job {
  const mhc_hc_params *p;
  int64_t H;
  const uint16_t *residual;
  const float *fn, *scale, *base;
  const uint16_t *norm_weight;
  double gate_err;
  const double *residual_err;
  const mhcr_pre_out *out;
} pre_job;

static void pre_tokens(void *arg, int64_t t0, int64_t t1) {
  const pre_job *j = (const pre_job *)arg;
  const mhc_hc_params *p = j->p;
  const int64_t H = j->H, K = NSTREAMS * H;
  const mhcr_pre_out *o = j->out;
  token_scratch sc;
  scratch_alloc(&sc, H);
  double *ol = sc.ol, *ol_err = sc.ol_err;
  for (int64_t t = t0; t < t1; ++t) {
    const uint16_t *r = j->residual + t * K;
    double raw[NMIX];
    const double inv_rms = token_mixes(r, H, j->fn, NMIX, p->rms_eps, sc.X, raw);
    double mix[NMIX];
    for (int m = 0; m < NMIX; ++m) mix[m] = raw[m] * inv_rms;

    double pre[4];
    for (int q = 0; q < 4; ++q) {
      pre[q] = mhcr_sigmoid(mix[q] * (double)j->scale[0] + (double)j->base[q]) + (double)p->pre_eps;
      if (o->post_mix)
        o->post_mix[t * 4 + q] =
            mhcr_sigmoid(mix[4 + q] * (double)j->scale[1] + (double)j->base[4 + q]) *
            (double)p->post_mult;
      if (o->pre) o->pre[t * 4 + q] = pre[q];
    }
    if (o->inv_rms) o->inv_rms[t] = inv_rms;
    if (o->comb_mix) {
      double c[4][4];
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b)
          c[a][b] = mix[8 + 4 * a + b] * (double)j->scale[2] + (double)j->base[8 + 4 * a + b];
      mhcr_sinkhorn(c, p->sinkhorn_iters, (double)p->sinkhorn_eps);
      for (int a = 0; a < 4; ++a)
        for (int b = 0; b < 4; ++b) o->comb_mix[t * 16 + a * 4 + b] = c[a][b];
    }
    if (!o->layer_input && !o->layer_input_err && !o->layer_input_norm &&
        !o->layer_input_norm_err && !o->norm_rs)
      continue;
    weighted_sum(r, H, pre, j->gate_err, j->residual_err ? j->residual_err + t * K : NULL, ol,
                 ol_err);
    for (int64_t h = 0; h < H; ++h) {
      if (o->layer_input) o->layer_input[t * H + h] = ol[h];
      if (o->layer_input_err) o->layer_input_err[t * H + h] = ol_err[h];
    }
    if (j->norm_weight == NULL ||
        (!o->layer_input_norm && !o->layer_input_norm_err && !o->norm_rs))
      continue;
    /* Fused RMSNorm (spec §2.6): the sum of squares of the UNROUNDED ol, the normalised value
     * from the ROUNDED bf16(ol). */
    double sumsq = 0.0, d_sumsq = 0.0;
    for (int64_t h = 0; h < H; ++h) {
      sumsq += ol[h] * ol[h];
      d_sumsq += 2.0 * fabs(ol[h]) * ol_err[h] + ol_err[h] * ol_err[h];
    }
    d_sumsq += (double)H * MHCR_U * sumsq; /* float32 summation of H squares */
    const double mean = sumsq / (double)H + (double)p->norm_eps;
    const double rs = 1.0 / sqrt(mean);
    const double rs_rel = 0.5 * (d_sumsq / (double)H) / mean + 4.0 * MHCR_U;
    if (o->norm_rs) o->norm_rs[t] = rs;
    for (int64_t h = 0; h < H; ++h) {
      const double w = bf(j->norm_weight[h]);
      const double qol = q_bf16(ol[h]);
      const double val = qol * rs * w;
      /* how far bf16(ol) may move when ol moves within its budget */
      const double dq_hi = fabs(q_bf16(ol[h] + ol_err[h]) - qol);
      const double dq_lo = fabs(q_bf16(ol[h] - ol_err[h]) - qol);
      const double dq = dq_hi > dq_lo ? dq_hi : dq_lo;
      const double err = dq * rs * fabs(w) + (fabs(val) + dq * rs * fabs(w)) * rs_rel +
                         3.0 * MHCR_U * fabs(val);
      if (o->layer_input_norm) o->layer_input_norm[t * H + h] = val;
      if (o->layer_input_norm_err) o->layer_input_norm_err[t * H + h] = err;
    }
  }
  scratch_free(&sc);
}

void mhcr_hc_pre(const mhc_hc_params *p, int64_t T, int64_t H, const uint16_t *residual,
                 const float *fn, const float *scale, const float *base,
                 const uint16_t *norm_weight, double gate_err, const double *residual_err,
                 const mhcr_pre_out *out) {
  pre_job j = {p, H, residual, fn, scale, base, norm_weight, gate_err, residual_err, out};
  mhct_parallel_for(T, 0, pre_tokens, &j);
}

/* ---------------------------------------------------------------------------------------- */
/* hc_head                                                                                  */
/* ---------------------------------------------------------------------------------------- */

typedef struct head_job {
  const mhc_hc_params *p;
  int64_t H;
  const uint16_t *residual;
  const float *fn, *scale, *base;
  double gate_err;
  const double *residual_err;
  double *out, *err;
} head_job;

static void head_tokens(void *arg, int64_t t0, int64_t t1) {
  const head_job *j = (const head_job *)arg;
  const int64_t H = j->H, K = NSTREAMS * H;
  token_scratch sc;
  scratch_alloc(&sc, H);
  double *ol = sc.ol, *ol_err = sc.ol_err;
  for (int64_t t = t0; t < t1; ++t) {
    const uint16_t *r = j->residual + t * K;
    double raw[NSTREAMS];
    const double inv_rms = token_mixes(r, H, j->fn, NSTREAMS, j->p->rms_eps, sc.X, raw);
    double pre[4];
    for (int q = 0; q < 4; ++q)
      pre[q] = mhcr_sigmoid(raw[q] * inv_rms * (double)j->scale[0] + (double)j->base[q]) +
               (double)j->p->pre_eps;
    weighted_sum(r, H, pre, j->gate_err, j->residual_err ? j->residual_err + t * K : NULL, ol,
                 ol_err);
    for (int64_t h = 0; h < H; ++h) {
      if (j->out) j->out[t * H + h] = ol[h];
      if (j->err) j->err[t * H + h] = ol_err[h];
    }
  }
  scratch_free(&sc);
}

void mhcr_hc_head(const mhc_hc_params *p, int64_t T, int64_t H, const uint16_t *residual,
                  const float *fn_head, const float *scale, const float *base, double gate_err,
                  const double *residual_err, double *out, double *err) {
  head_job j = {p, H, residual, fn_head, scale, base, gate_err, residual_err, out, err};
  mhct_parallel_for(T, 0, head_tokens, &j);
}
