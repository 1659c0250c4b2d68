/* Helpers shared by the GPU tests (C, CUDA runtime API, cmocka). Include after cmocka.h. */
#ifndef MHC_TESTS_GPU_GPU_HARNESS_H_
#define MHC_TESTS_GPU_GPU_HARNESS_H_

#include <cuda_runtime_api.h>
#include <stdio.h>

#include "compare.h"
#include "reference64.h"
#include "test_util.h"

/* ctest's SKIP_RETURN_CODE: the program found no CUDA device. */
#define GH_SKIP_RC 77

/* 1 if a CUDA device is usable; otherwise prints why on stdout and returns 0.
 * Checking the tests themselves without a GPU: with MHC_GPU_TESTS_ON_CPU=1 in the
 * environment it returns 1 and sets gh_on_cpu, and the programs run their logic with the CPU
 * backend and host memory standing in for the CUDA backend and device memory (every
 * comparison is then exact); checks that need CUDA (graphs, device rules) are skipped. */
int gh_have_device(const char *program);
extern int gh_on_cpu;

/* Device type of the "device" tensors: kDLCUDA (kDLCPU when gh_on_cpu). */
int32_t gh_dev_type(void);

/* A CUDA-backend context on device 0 (CPU backend when gh_on_cpu); fails the test on error. */
mhc_context *gh_cuda_context(uint32_t context_flags);

/* Skips the current test when running on the CPU stand-in. */
#define GH_REQUIRE_CUDA()                                                    \
  do {                                                                       \
    if (gh_on_cpu) {                                                         \
      print_message("needs CUDA: skipped with MHC_GPU_TESTS_ON_CPU\n");      \
      skip();                                                                \
    }                                                                        \
  } while (0)

/* Fails the current cmocka test when a CUDA call fails. */
#define GH_CUDA(call)                                                                  \
  do {                                                                                 \
    const cudaError_t e_ = (call);                                                     \
    if (e_ != cudaSuccess) fail_msg("%s: %s", #call, cudaGetErrorString(e_));          \
  } while (0)

/* Fails the current cmocka test when an mhc call does not succeed. */
#define GH_MHC(call)                                                                   \
  do {                                                                                 \
    const mhc_status_t s_ = (call);                                                    \
    if (s_ != MHC_SUCCESS)                                                             \
      fail_msg("%s: %s: %s", #call, mhc_status_string(s_), mhc_last_error_message());  \
  } while (0)

/* Runs a call on tokens [t0, t0 + count) and fails the test unless it succeeds. */
void gh_run_rows(mhc_context *ctx, const mhct_call *c, int64_t t0, int64_t count);

/* A device problem with the inputs of a host problem (same T, H, params), workspace sized
 * for pb->T with the host problem's params. */
void gh_device_problem(mhct_problem *dev, const mhct_problem *host, const mhc_context *ctx);

/* Allocates a zeroed device tensor. */
void gh_device_tensor(mhct_tensor *t, mhct_dtype dtype, int ndim, const int64_t *shape);

/* Downloads the first `nbytes` of a device tensor into a malloc'd host buffer. */
void *gh_download(const mhct_tensor *t, size_t nbytes);

/* Reports a comparison on one line, returns ok. */
int gh_report(int ok, const mhct_cmp *r, const char *tag);

#endif /* MHC_TESTS_GPU_GPU_HARNESS_H_ */
