/* Element-wise comparisons: see compare.h. */
#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

enum { K_F32_F64, K_F32_F32, K_BF16_F64, K_BF16_BF16, K_BITS };

#define MAX_PARTS 64
#define REL_FLOOR 1e-3

typedef struct cmp_job {
  int kind;
  const void *got, *exp;
  const double *budget;
  size_t n, elem_size;
  double rtol, atol;
  int max_ulps;
  int verbose; /* MHCT_CMP_VERBOSE set: print every element the budget accepts */
  int nparts;
  mhct_cmp parts[MAX_PARTS];
} cmp_job;

static void reset(mhct_cmp *r, const char *what, size_t n) {
  memset(r, 0, sizeof *r);
  snprintf(r->what, sizeof r->what, "%s", what ? what : "");
  r->n = n;
  r->worst_score = -1.0;
}

static double elem_as_double(const void *p, size_t elem_size, size_t i) {
  if (elem_size == 2) return (double)mhct_bf16_to_f32(((const uint16_t *)p)[i]);
  if (elem_size == 4) return (double)((const float *)p)[i];
  if (elem_size == 8) return ((const double *)p)[i];
  return (double)((const unsigned char *)p)[i];
}

static void note(mhct_cmp *r, size_t i, double g, double e, double score, int ok) {
  const double d = fabs(g - e);
  if (d > r->max_abs || (isnan(d) && !isnan(r->max_abs))) r->max_abs = d;
  if (fabs(e) >= REL_FLOOR) {
    const double rel = d / fabs(e);
    if (rel > r->max_rel || (isnan(rel) && !isnan(r->max_rel))) r->max_rel = rel;
  }
  if (isnan(score)) score = INFINITY;
  if (score > r->worst_score) {
    r->worst_score = score;
    r->worst_index = i;
    r->worst_got = g;
    r->worst_expected = e;
  }
  if (!ok) {
    if (r->n_bad == 0) {
      r->bad_index = i;
      r->bad_got = g;
      r->bad_expected = e;
    }
    r->n_bad++;
  }
}

static void cmp_range(cmp_job *j, mhct_cmp *r, size_t b, size_t e_end) {
  for (size_t i = b; i < e_end; ++i) {
    switch (j->kind) {
      case K_F32_F64:
      case K_F32_F32: {
        const double g = (double)((const float *)j->got)[i];
        const double e = j->kind == K_F32_F64 ? ((const double *)j->exp)[i]
                                              : (double)((const float *)j->exp)[i];
        int ok;
        double score;
        if (isnan(g) || isnan(e)) {
          ok = isnan(g) && isnan(e);
          score = ok ? 0.0 : INFINITY;
        } else {
          const double allowed = j->atol + j->rtol * fabs(e);
          const double d = fabs(g - e);
          ok = d <= allowed;
          score = allowed > 0 ? d / allowed : (d > 0 ? INFINITY : 0.0);
        }
        if ((float)g != (float)e || (isnan(g) != isnan(e))) r->n_inexact++;
        note(r, i, g, e, score, ok);
        break;
      }
      case K_BF16_F64:
      case K_BF16_BF16: {
        const uint16_t gb = ((const uint16_t *)j->got)[i];
        uint16_t eb;
        double e;
        if (j->kind == K_BF16_F64) {
          e = ((const double *)j->exp)[i];
          eb = mhct_f64_to_bf16(e);
        } else {
          eb = ((const uint16_t *)j->exp)[i];
          e = (double)mhct_bf16_to_f32(eb);
        }
        const double g = (double)mhct_bf16_to_f32(gb);
        const int32_t ulps = mhct_bf16_ulp_distance(gb, eb);
        int ok = ulps <= j->max_ulps;
        if (ulps != 0) r->n_inexact++;
        if (ulps > r->max_ulps) r->max_ulps = ulps;
        if (!ok && j->budget && !isnan(g) && !isnan(e)) {
          double allowed = j->budget[i] + 0.5 * mhct_bf16_ulp(g);
          if (j->kind == K_BF16_BF16) allowed += 0.5 * mhct_bf16_ulp(e);
          if (fabs(g - e) <= allowed) {
            ok = 1;
            r->n_budget++;
            if (j->verbose)
              fprintf(stderr, "mhct: [%zu] accepted by budget: got %.9g exp %.9g (%d ulp) |d| %.3g <= %.3g\n",
                      i, g, e, (int)ulps, fabs(g - e), allowed);
          }
        }
        note(r, i, g, e, (double)ulps, ok);
        break;
      }
      default: { /* K_BITS */
        const unsigned char *gp = (const unsigned char *)j->got + i * j->elem_size;
        const unsigned char *ep = (const unsigned char *)j->exp + i * j->elem_size;
        const int same = memcmp(gp, ep, j->elem_size) == 0;
        const double g = elem_as_double(j->got, j->elem_size, i);
        const double e = elem_as_double(j->exp, j->elem_size, i);
        if (!same) r->n_inexact++;
        if (j->elem_size == 2) {
          const int32_t u = mhct_bf16_ulp_distance(((const uint16_t *)j->got)[i],
                                                   ((const uint16_t *)j->exp)[i]);
          if (u > r->max_ulps) r->max_ulps = u;
        }
        note(r, i, g, e, same ? 0.0 : 1.0, same);
        break;
      }
    }
  }
}

static void cmp_parts(void *arg, int64_t p0, int64_t p1) {
  cmp_job *j = (cmp_job *)arg;
  for (int64_t p = p0; p < p1; ++p) {
    const size_t b = j->n * (size_t)p / (size_t)j->nparts;
    const size_t e = j->n * (size_t)(p + 1) / (size_t)j->nparts;
    reset(&j->parts[p], "", e - b);
    cmp_range(j, &j->parts[p], b, e);
  }
}

static int run(cmp_job *j, mhct_cmp *r, const char *what) {
  reset(r, what, j->n);
  j->verbose = getenv("MHCT_CMP_VERBOSE") != NULL;
  j->nparts = 1;
  if (j->n >= ((size_t)1 << 18)) {
    j->nparts = mhct_num_threads();
    if (j->nparts > MAX_PARTS) j->nparts = MAX_PARTS;
  }
  mhct_parallel_for(j->nparts, j->nparts, cmp_parts, j);
  for (int p = 0; p < j->nparts; ++p) { /* merge in index order: ties keep the first index */
    const mhct_cmp *q = &j->parts[p];
    if (q->n == 0) continue;
    if (q->n_bad && r->n_bad == 0) {
      r->bad_index = q->bad_index;
      r->bad_got = q->bad_got;
      r->bad_expected = q->bad_expected;
    }
    r->n_bad += q->n_bad;
    r->n_inexact += q->n_inexact;
    r->n_budget += q->n_budget;
    if (q->max_abs > r->max_abs || isnan(q->max_abs)) r->max_abs = q->max_abs;
    if (q->max_rel > r->max_rel || isnan(q->max_rel)) r->max_rel = q->max_rel;
    if (q->max_ulps > r->max_ulps) r->max_ulps = q->max_ulps;
    if (q->worst_score > r->worst_score) {
      r->worst_score = q->worst_score;
      r->worst_index = q->worst_index;
      r->worst_got = q->worst_got;
      r->worst_expected = q->worst_expected;
    }
  }
  return r->n_bad == 0;
}

int mhct_cmp_f32_f64(mhct_cmp *r, const char *what, const float *got, const double *exp,
                     size_t n, double rtol, double atol) {
  cmp_job j = {.kind = K_F32_F64, .got = got, .exp = exp, .n = n, .rtol = rtol, .atol = atol};
  return run(&j, r, what);
}

int mhct_cmp_f32_f32(mhct_cmp *r, const char *what, const float *got, const float *exp,
                     size_t n, double rtol, double atol) {
  cmp_job j = {.kind = K_F32_F32, .got = got, .exp = exp, .n = n, .rtol = rtol, .atol = atol};
  return run(&j, r, what);
}

int mhct_cmp_bf16_f64(mhct_cmp *r, const char *what, const uint16_t *got, const double *exp,
                      const double *budget, size_t n, int max_ulps) {
  cmp_job j = {.kind = K_BF16_F64, .got = got, .exp = exp,
               .budget = budget, .n = n, .max_ulps = max_ulps};
  return run(&j, r, what);
}

int mhct_cmp_bf16_bf16(mhct_cmp *r, const char *what, const uint16_t *got, const uint16_t *exp,
                       const double *budget, size_t n, int max_ulps) {
  cmp_job j = {.kind = K_BF16_BF16, .got = got, .exp = exp,
               .budget = budget, .n = n, .max_ulps = max_ulps};
  return run(&j, r, what);
}

int mhct_cmp_bits(mhct_cmp *r, const char *what, const void *got, const void *exp, size_t n,
                  size_t elem_size) {
  cmp_job j = {.kind = K_BITS, .got = got, .exp = exp,
               .n = n, .elem_size = elem_size ? elem_size : 1};
  return run(&j, r, what);
}

const char *mhct_cmp_line(const mhct_cmp *r, char *buf, size_t size) {
  int k = snprintf(buf, size,
                   "%-30s n=%-9zu max_abs=%-9.3g max_rel=%-9.3g max_ulp=%-2d inexact=%zu "
                   "budget=%zu bad=%zu worst[%zu] got=%.9g exp=%.9g",
                   r->what, r->n, r->max_abs, r->max_rel, r->max_ulps, r->n_inexact, r->n_budget,
                   r->n_bad, r->worst_index, r->worst_got, r->worst_expected);
  if (r->n_bad && k > 0 && (size_t)k < size)
    snprintf(buf + k, size - (size_t)k, " FIRST BAD[%zu] got=%.9g exp=%.9g", r->bad_index,
             r->bad_got, r->bad_expected);
  return buf;
}
