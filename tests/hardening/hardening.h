/*
 * Helpers of the hardening tests (tests/hardening), on top of tests/common (test_util.h,
 * reference64.h, compare.h). Every test here runs on one backend chosen at run time: the CPU
 * backend (ctest label `hardening`) or the CUDA backend (label `gpu`, exit code 77 without a
 * device). Names start with hz_.
 */
#ifndef MHC_TESTS_HARDENING_HARDENING_H_
#define MHC_TESTS_HARDENING_HARDENING_H_

#include <stddef.h>
#include <stdint.h>

#include <mhc/mhc.h>

#include "test_util.h"

#ifdef __cplusplus
extern "C" {
#endif

#define HZ_SKIP 77 /* ctest SKIP_RETURN_CODE */

/* The backend under test: kDLCPU (CPU backend) or kDLCUDA (CUDA backend, device 0). */
extern int32_t hz_device_type;

/* 1 when MHC_HARDENING_QUICK=1 is set (scripts/gpu-sanitizers.sh: under compute-sanitizer
 * every kernel is 10-100x slower): loops run fewer iterations, nothing else changes. */
extern int hz_quick;
/* n, or n / div (at least 1) in quick mode. */
int hz_iters(int n, int div);

/* Parses the common command line (--cuda selects the CUDA backend) and, for the CUDA backend,
 * returns HZ_SKIP when no device is usable; 0 to go on. Reads MHC_HARDENING_QUICK. */
int hz_init(int argc, char **argv);

/* A context of the backend under test with these context flags (asserts success). */
mhc_context *hz_context(uint32_t flags);

/* cmocka group setup / teardown for the tests of a program that share one context of the
 * backend under test (flags 0): hz_shared_ctx. */
extern mhc_context *hz_shared_ctx;
int hz_setup_shared_context(void **state);
int hz_teardown_shared_context(void **state);

/* A host problem filled from (family, seed) plus, for the backend under test, a second problem
 * with the same inputs in its memory (a separate host copy for the CPU backend) and a
 * workspace for `ctx`. Returns 0 on success. */
int hz_problem_pair(mhct_problem *host, mhct_problem *dev, const mhc_context *ctx, int64_t T,
                    int64_t H, mhct_inputs family, uint64_t seed);
/* Copies the inputs of host into dev again (after a test changed host's inputs). */
int hz_problem_upload(mhct_problem *dev, const mhct_problem *host);
/* Copies the outputs of dev (residual_out, post_mix_out, comb_mix_out, layer_input_out, out)
 * into host's output tensors. Synchronises the device first. */
int hz_problem_download(mhct_problem *host, const mhct_problem *dev);

/* The five output tensors of a problem, in the order of hz_outputs and hz_written: an
 * initializer for an array of 5 tensor pointers. */
#define HZ_OUTPUT_TENSORS(pb)                                                             \
  {&(pb)->residual_out, &(pb)->post_mix_out, &(pb)->comb_mix_out, &(pb)->layer_input_out, \
   &(pb)->out}

/* Which of the five outputs (HZ_OUTPUT_TENSORS order) op writes: w[i] = 1 or 0. */
void hz_written(int32_t op, int w[5]);

/* Host copies of the five output tensors of a problem, for bitwise comparisons. */
typedef struct hz_outputs {
  size_t bytes[5];
  void *data[5];
} hz_outputs;
int hz_outputs_save(hz_outputs *o, const mhct_problem *pb); /* any device; syncs */
void hz_outputs_free(hz_outputs *o);
/* 1 when the outputs of pb equal o bit for bit; otherwise 0 and a line on stderr naming the
 * first differing tensor and element. */
int hz_outputs_equal(const hz_outputs *o, const mhct_problem *pb, const char *what);

/* Runs the op on the problem (norm_weight for pre/post_pre when with_norm) on `stream`. */
mhc_status_t hz_run(mhc_context *ctx, const mhct_problem *pb, int32_t op, int with_norm,
                    struct CUstream_st *stream);

/* Classes of a value, to compare where NaN and infinities appear. */
enum { HZ_FINITE = 0, HZ_NAN = 1, HZ_PINF = 2, HZ_NINF = 3 };
int hz_class_f64(double v);
int hz_class_f32(float v);
int hz_class_bf16(uint16_t b);
const char *hz_class_name(int c);

/* Monotonic time in microseconds. */
double hz_now_us(void);

/* For the CUDA programs (which include cuda_runtime_api.h and cmocka.h): fails the current
 * test, with the file, line and call on stderr, when a CUDA call fails. */
#define HZ_CUDA_OK(call)                                                                     \
  do {                                                                                       \
    const cudaError_t e_ = (call);                                                           \
    if (e_ != cudaSuccess) {                                                                 \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
      fail();                                                                                \
    }                                                                                        \
  } while (0)

#ifdef __cplusplus
}
#endif

#endif /* MHC_TESTS_HARDENING_HARDENING_H_ */
