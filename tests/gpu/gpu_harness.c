/* Helpers shared by the GPU tests: see gpu_harness.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "gpu_harness.h"

#include <stdlib.h>
#include <string.h>

int gh_on_cpu = 0;

int32_t gh_dev_type(void) { return gh_on_cpu ? kDLCPU : kDLCUDA; }

int gh_have_device(const char *program) {
  const char *env = getenv("MHC_GPU_TESTS_ON_CPU");
  if (env && env[0] && strcmp(env, "0") != 0) {
    gh_on_cpu = 1;
    printf("%s: MHC_GPU_TESTS_ON_CPU: the CPU backend stands in for the CUDA backend\n", program);
    return 1;
  }
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    printf("%s: no CUDA device (%s): skipped\n", program,
           e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 0;
  }
  struct cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    printf("%s: device 0 = %s (sm_%d%d, %d SMs)\n", program, prop.name, prop.major, prop.minor,
           prop.multiProcessorCount);
  return 1;
}

mhc_context *gh_cuda_context(uint32_t context_flags) {
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = gh_on_cpu ? MHC_BACKEND_CPU : MHC_BACKEND_CUDA;
  cfg.device_id = 0;
  cfg.flags = context_flags;
  mhc_context *ctx = NULL;
  GH_MHC(mhc_context_create(&ctx, &cfg));
  return ctx;
}

void gh_run_rows(mhc_context *ctx, const mhct_call *c, int64_t t0, int64_t count) {
  const mhc_status_t st = mhct_call_run_rows(ctx, c, t0, count);
  if (st != MHC_SUCCESS)
    fail_msg("%s on tokens [%lld, %lld): %s: %s", mhct_op_name(c->op), (long long)t0,
             (long long)(t0 + count), mhc_status_string(st), mhc_last_error_message());
}

void gh_device_problem(mhct_problem *dev, const mhct_problem *host, const mhc_context *ctx) {
  assert_int_equal(mhct_problem_alloc(dev, gh_dev_type(), host->T, host->H, 0), 0);
  assert_int_equal(mhct_problem_copy_inputs(dev, host), 0);
  assert_int_equal(mhct_problem_alloc_workspace(dev, ctx), 0);
}

void gh_device_tensor(mhct_tensor *t, mhct_dtype dtype, int ndim, const int64_t *shape) {
  assert_int_equal(mhct_tensor_alloc(t, gh_dev_type(), dtype, ndim, shape), 0);
}

void *gh_download(const mhct_tensor *t, size_t nbytes) {
  void *p = malloc(nbytes ? nbytes : 1);
  assert_non_null(p);
  if (nbytes == 0) return p;
  if (t->dl.device.device_type == kDLCPU)
    memcpy(p, mhct_tensor_ptr(t), nbytes);
  else
    GH_CUDA(cudaMemcpy(p, mhct_tensor_ptr(t), nbytes, cudaMemcpyDefault));
  return p;
}

int gh_report(int ok, const mhct_cmp *r, const char *tag) {
  char line[512];
  printf("%s %s%s\n", tag, mhct_cmp_line(r, line, sizeof line), ok ? "" : "  <-- FAIL");
  return ok;
}
