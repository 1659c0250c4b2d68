/*
 * Element-wise comparisons that report the worst element (index, got, expected), the largest
 * absolute / relative error and, for bf16, the largest distance in ulps.
 *
 * Every function fills an mhct_cmp and returns 1 when every element is within tolerance,
 * 0 otherwise; mhct_cmp_line() formats the result as one line for the test log. Large arrays
 * are compared on several threads (the result does not depend on the thread count). With
 * MHCT_CMP_VERBOSE set in the environment, every element accepted by an error budget is
 * printed on stderr.
 */
#ifndef MHC_TESTS_COMMON_COMPARE_H_
#define MHC_TESTS_COMMON_COMPARE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mhct_cmp {
  char what[80];
  size_t n;
  size_t n_bad;     /* elements outside the tolerance */
  size_t n_inexact; /* elements not bitwise equal to the expected value (bf16: rounded
                       expected; f32 vs f64: (float)expected) */
  size_t n_budget;  /* bf16: elements beyond max_ulps that the error budget accepted */
  double max_abs;   /* max |got - expected| */
  double max_rel;   /* max |got - expected| / |expected| over |expected| >= 1e-3 */
  int32_t max_ulps; /* bf16: max ulp distance to the (rounded) expected value */
  /* The worst element: largest ulp distance (bf16) or largest error / allowed (f32). */
  size_t worst_index;
  double worst_got, worst_expected, worst_score;
  /* The first element outside the tolerance (valid when n_bad > 0). */
  size_t bad_index;
  double bad_got, bad_expected;
} mhct_cmp;

/* float32 result vs float64 expectation: |got - exp| <= atol + rtol * |exp|. */
int mhct_cmp_f32_f64(mhct_cmp *r, const char *what, const float *got, const double *exp,
                     size_t n, double rtol, double atol);
/* float32 vs float32 (e.g. CUDA backend vs CPU backend), same rule. */
int mhct_cmp_f32_f32(mhct_cmp *r, const char *what, const float *got, const float *exp,
                     size_t n, double rtol, double atol);
/* bf16 result vs exact float64 value: accepted when the ulp distance to the correctly rounded
 * bf16 of exp is <= max_ulps, or (budget != NULL) when |got - exp| <= budget[i] + ulp(got)/2,
 * i.e. got is the rounding of a value within the float32 evaluation budget of exp. */
int mhct_cmp_bf16_f64(mhct_cmp *r, const char *what, const uint16_t *got, const double *exp,
                      const double *budget, size_t n, int max_ulps);
/* bf16 vs bf16 (two implementations): ulp distance <= max_ulps, or (budget != NULL)
 * |got - exp| <= budget[i] + (ulp(got) + ulp(exp)) / 2. */
int mhct_cmp_bf16_bf16(mhct_cmp *r, const char *what, const uint16_t *got, const uint16_t *exp,
                       const double *budget, size_t n, int max_ulps);
/* Bitwise equality of n elements of elem_size bytes (values shown as bf16 for 2-byte and
 * float for 4-byte elements). */
int mhct_cmp_bits(mhct_cmp *r, const char *what, const void *got, const void *exp, size_t n,
                  size_t elem_size);

/* One line: what, n, max abs/rel error, max ulps, counts, the worst and first bad element. */
const char *mhct_cmp_line(const mhct_cmp *r, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* MHC_TESTS_COMMON_COMPARE_H_ */
