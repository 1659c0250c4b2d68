/*
 * An independent float64 reference of the mHC operators, written from
 * reference/mhc-spec.md §2 (hc_pre, Sinkhorn, fused RMSNorm §2.6, hc_head §2.5) and §3
 * (hc_post). It shares no code with the library: every value is computed in double from the
 * exact input values (bf16 and f32 inputs are exact in double; every product of a bf16 and an
 * f32 is exact in double), and returned unrounded, except where the spec itself rounds
 * (the bf16(ol) inside the fused RMSNorm).
 *
 * Error budgets. Next to a value, most functions can return `err`: a first-order bound on how
 * far a correct float32 implementation of the spec may land from the exact value, so that a
 * comparison can accept (beyond the 1-ulp rule) elements whose exact value is tiny because of
 * cancellation. The model, with u = 2^-24 (float32 unit roundoff):
 *   - a float32 sum of n products, evaluated in any order with or without FMA, is within
 *     2 n u sum|terms| of the exact sum (each product and each addition rounds once);
 *   - the pre gates (sigmoid + pre_eps, computed from float32 mixes) are each within
 *     `gate_err` (absolute) of the exact gates: the caller says how accurate it assumes the
 *     mixes are (see the tests for the values and why);
 *   - `residual_err` (optional, [T,4,H]) is an absolute uncertainty of each residual element,
 *     for a residual that is itself the output of a checked op (a 1-ulp difference upstream);
 *   - the fused RMSNorm output bf16(bf16(ol) * rs * w) rounds twice: when ol is within its
 *     budget of a bf16 rounding boundary the inner rounding may go either way, and err
 *     includes the resulting change of bf16(ol) (one bf16 ulp of ol) times rs*|w|; the sum of
 *     squares over H elements is allowed the float32 recursive-summation bound H u sum.
 */
#ifndef MHC_TESTS_COMMON_REFERENCE64_H_
#define MHC_TESTS_COMMON_REFERENCE64_H_

#include <stddef.h>
#include <stdint.h>

#include <mhc/mhc.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MHCR_U (1.0 / 16777216.0) /* 2^-24 */

/* Sinkhorn of one token's 4x4 logits (spec §2.1), in place: row softmax (max-subtracted),
 * + eps, column normalisation, then (iters - 1) times (row, column) normalisation; every
 * divisor is sum + eps. */
void mhcr_sinkhorn(double c[4][4], int iters, double eps);

/* 1 / (1 + exp(-z)). */
double mhcr_sigmoid(double z);

/* hc_post (spec §3): out[t,j,h] = post[t,j] * x[t,h] + sum_i comb[t,i,j] * residual[t,i,h].
 * post_mix is [T,4] (or [T,4,1], same memory). out [T,4,H]; err [T,4,H] (may be NULL) =
 * 10 u (|post x| + sum_i |comb r_i|). */
void mhcr_hc_post(int64_t T, int64_t H, const uint16_t *x, const uint16_t *residual,
                  const float *post_mix, const float *comb_mix, double *out, double *err);

/* Outputs of mhcr_hc_pre; every pointer may be NULL (not computed / not written). */
typedef struct mhcr_pre_out {
  double *post_mix;             /* [T, 4]    post_mult * sigmoid(mix[4+j]*scale[1] + base[4+j]) */
  double *comb_mix;             /* [T, 4, 4] Sinkhorn(mix[8+4a+c]*scale[2] + base[8+4a+c]) */
  double *pre;                  /* [T, 4]    sigmoid(mix[j]*scale[0] + base[j]) + pre_eps */
  double *inv_rms;              /* [T]       1/sqrt(sum(X^2)/(4H) + rms_eps) */
  double *layer_input;          /* [T, H]    ol = sum_j pre_j r_j (no norm) */
  double *layer_input_err;      /* [T, H] */
  double *layer_input_norm;     /* [T, H]    bf16(ol) * rs * w (needs norm_weight) */
  double *layer_input_norm_err; /* [T, H] */
  double *norm_rs;              /* [T]       rs = 1/sqrt(mean(ol^2) + norm_eps) (needs norm_weight) */
} mhcr_pre_out;

/* hc_pre (spec §2.1, §2.6) on residual [T,4,H] bf16 with fn [24,4H], scale [3], base [24]
 * and optional norm_weight [H] bf16. Uses p->sinkhorn_iters, rms_eps, pre_eps,
 * sinkhorn_eps, post_mult, norm_eps (their float values). Parallel over tokens. */
void mhcr_hc_pre(const mhc_hc_params *p, int64_t T, int64_t H, const uint16_t *residual,
                 const float *fn, const float *scale, const float *base,
                 const uint16_t *norm_weight, double gate_err, const double *residual_err,
                 const mhcr_pre_out *out);

/* hc_head (spec §2.5): fn_head [4,4H], scale[0], base [4]; out [T,H] = sum_j pre_j r_j with
 * pre = sigmoid(mix*scale[0] + base) + pre_eps; err as for layer_input (may be NULL). */
void mhcr_hc_head(const mhc_hc_params *p, int64_t T, int64_t H, const uint16_t *residual,
                  const float *fn_head, const float *scale, const float *base, double gate_err,
                  const double *residual_err, double *out, double *err);

#ifdef __cplusplus
}
#endif

#endif /* MHC_TESTS_COMMON_REFERENCE64_H_ */
