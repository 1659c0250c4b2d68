/*
 * Pointers that lie about where they live (ctest label gpu; exit 77 without a device).
 *
 * With MHC_CONTEXT_FLAG_CHECK_POINTERS (and, separately, MHC_CHECK_POINTERS=1 in the
 * environment at context creation):
 *  - device memory (cudaMalloc) described as kDLCPU and passed to the CPU backend gives
 *    MHC_ERROR_DEVICE_MISMATCH, for an input and for an output of every op;
 *  - pageable host memory (malloc) described as kDLCUDA and passed to the CUDA backend gives
 *    MHC_ERROR_DEVICE_MISMATCH, likewise; pinned host memory described as kDLCUDAHost is
 *    accepted and gives the same bits as device memory;
 *  - the per-call host overhead of the checking mode is measured and printed (hc_post: 5
 *    tensors, hc_post_pre: 12 tensors), in microseconds per call with and without it.
 */
#define _POSIX_C_SOURCE 200809L
#include <cuda_runtime_api.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hardening.h"
#include "test_util.h"

typedef struct slot {
  const char *name;
  size_t offset;
} slot;
#define SLOT(f) {#f, offsetof(mhct_problem, f)}

/* One input and one output per op. */
static const struct {
  int32_t op;
  slot in, out;
} kCases[4] = {
    {MHC_OP_HC_POST, SLOT(x), SLOT(residual_out)},
    {MHC_OP_HC_PRE, SLOT(fn), SLOT(layer_input_out)},
    {MHC_OP_HC_POST_PRE, SLOT(comb_mix), SLOT(post_mix_out)},
    {MHC_OP_HC_HEAD, SLOT(residual), SLOT(out)},
};

static mhct_tensor *at(mhct_problem *pb, const slot *s) {
  return (mhct_tensor *)((char *)pb + s->offset);
}

/* Runs each case with tensor `s` swapped for `liar` (same shape and dtype, memory of the
 * wrong kind, described with `desc_type`), expecting DEVICE_MISMATCH naming the tensor. */
static void expect_mismatch(mhc_context *ctx, mhct_problem *pb, int use_output,
                            int32_t desc_type, int liar_on_device, const char *what) {
  for (int c = 0; c < 4; ++c) {
    const slot *s = use_output ? &kCases[c].out : &kCases[c].in;
    mhct_tensor *t = at(pb, s);
    const size_t bytes = mhct_tensor_nbytes(t);
    void *mem = liar_on_device ? mhct_device_malloc(bytes) : malloc(bytes);
    assert_non_null(mem);
    mhct_tensor saved;
    memcpy(&saved, t, sizeof saved);
    t->dl.data = mem;
    t->dl.byte_offset = 0;
    t->dl.device.device_type = (DLDeviceType)desc_type;
    t->dl.device.device_id = 0;
    t->dl.shape = t->shape;
    const mhc_status_t st = hz_run(ctx, pb, kCases[c].op, 1, NULL);
    const char *msg = mhc_last_error_message();
    printf("%s, %s %s: %s: %s\n", what, mhct_op_name(kCases[c].op), s->name,
           mhc_status_string(st), msg);
    memcpy(t, &saved, sizeof saved);
    t->dl.shape = t->shape;
    if (liar_on_device) mhct_device_free(mem);
    else free(mem);
    if (st != MHC_ERROR_DEVICE_MISMATCH || strstr(msg, s->name) == NULL) fail();
  }
}

static mhc_context *context_of(int32_t backend, uint32_t flags) {
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = backend;
  cfg.flags = flags;
  mhc_context *ctx = NULL;
  assert_int_equal(mhc_context_create(&ctx, &cfg), MHC_SUCCESS);
  return ctx;
}

static void device_pointer_to_cpu_backend(int via_env) {
  if (via_env) setenv("MHC_CHECK_POINTERS", "1", 1);
  mhc_context *ctx =
      context_of(MHC_BACKEND_CPU, via_env ? 0u : MHC_CONTEXT_FLAG_CHECK_POINTERS);
  if (via_env) unsetenv("MHC_CHECK_POINTERS");
  mhct_problem pb;
  assert_int_equal(mhct_problem_alloc(&pb, kDLCPU, 3, 64, 0), 0);
  mhct_problem_fill(&pb, MHCT_INPUTS_MODEL, 1);
  for (int32_t op = 1; op <= 4; ++op) assert_int_equal(hz_run(ctx, &pb, op, 1, NULL), MHC_SUCCESS);
  const char *what = via_env ? "CPU backend, MHC_CHECK_POINTERS=1, device memory as kDLCPU"
                             : "CPU backend, CHECK_POINTERS flag, device memory as kDLCPU";
  expect_mismatch(ctx, &pb, 0, kDLCPU, 1, what);
  expect_mismatch(ctx, &pb, 1, kDLCPU, 1, what);
  mhct_problem_free(&pb);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
}

static void test_device_pointer_to_cpu_backend_flag(void **state) {
  (void)state;
  device_pointer_to_cpu_backend(0);
}

static void test_device_pointer_to_cpu_backend_env(void **state) {
  (void)state;
  device_pointer_to_cpu_backend(1);
}

static void host_pointer_to_cuda_backend(int via_env) {
  if (via_env) setenv("MHC_CHECK_POINTERS", "1", 1);
  mhc_context *ctx =
      context_of(MHC_BACKEND_CUDA, via_env ? 0u : MHC_CONTEXT_FLAG_CHECK_POINTERS);
  if (via_env) unsetenv("MHC_CHECK_POINTERS");
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, ctx, 3, 64, MHCT_INPUTS_MODEL, 2), 0);
  for (int32_t op = 1; op <= 4; ++op) assert_int_equal(hz_run(ctx, &d, op, 1, NULL), MHC_SUCCESS);
  const char *what = via_env ? "CUDA backend, MHC_CHECK_POINTERS=1, malloc memory as kDLCUDA"
                             : "CUDA backend, CHECK_POINTERS flag, malloc memory as kDLCUDA";
  expect_mismatch(ctx, &d, 0, kDLCUDA, 0, what);
  expect_mismatch(ctx, &d, 1, kDLCUDA, 0, what);
  mhct_problem_free(&h);
  mhct_problem_free(&d);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
  assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
}

static void test_host_pointer_to_cuda_backend_flag(void **state) {
  (void)state;
  host_pointer_to_cuda_backend(0);
}

static void test_host_pointer_to_cuda_backend_env(void **state) {
  (void)state;
  host_pointer_to_cuda_backend(1);
}

static void test_pinned_host_accepted(void **state) {
  (void)state;
  mhc_context *ctx = context_of(MHC_BACKEND_CUDA, MHC_CONTEXT_FLAG_CHECK_POINTERS);
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, ctx, 2, 64, MHCT_INPUTS_MODEL, 3), 0);
  assert_int_equal(hz_run(ctx, &d, MHC_OP_HC_POST, 0, NULL), MHC_SUCCESS);
  hz_outputs ref;
  assert_int_equal(hz_outputs_save(&ref, &d), 0);
  /* x in pinned host memory, described as kDLCUDAHost */
  void *pinned = NULL;
  const size_t bytes = mhct_tensor_nbytes(&h.x);
  assert_int_equal(cudaMallocHost(&pinned, bytes), cudaSuccess);
  memcpy(pinned, mhct_tensor_ptr(&h.x), bytes);
  mhct_tensor saved;
  memcpy(&saved, &d.x, sizeof saved);
  d.x.dl.data = pinned;
  d.x.dl.byte_offset = 0;
  d.x.dl.device.device_type = kDLCUDAHost;
  d.x.dl.shape = d.x.shape;
  assert_int_equal(mhct_tensor_fill_bytes(&d.residual_out, 0x11), 0);
  const mhc_status_t st = hz_run(ctx, &d, MHC_OP_HC_POST, 0, NULL);
  printf("CUDA backend, CHECK_POINTERS, pinned host x as kDLCUDAHost: %s %s\n",
         mhc_status_string(st), st ? mhc_last_error_message() : "");
  assert_int_equal(st, MHC_SUCCESS);
  assert_true(hz_outputs_equal(&ref, &d, "hc_post with pinned x"));
  memcpy(&d.x, &saved, sizeof saved);
  d.x.dl.shape = d.x.shape;
  cudaFreeHost(pinned);
  hz_outputs_free(&ref);
  mhct_problem_free(&h);
  mhct_problem_free(&d);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
}

/* Host time per asynchronous call, pointer checking off vs on. */
static double time_calls(mhc_context *ctx, mhct_problem *d, int32_t op, cudaStream_t stream,
                         int n) {
  const int warmup = hz_iters(50, 25); /* quick (sanitizers): 2 */
  for (int i = 0; i < warmup; ++i) hz_run(ctx, d, op, 0, (struct CUstream_st *)stream);
  cudaStreamSynchronize(stream);
  const double t0 = hz_now_us();
  for (int i = 0; i < n; ++i)
    if (hz_run(ctx, d, op, 0, (struct CUstream_st *)stream) != MHC_SUCCESS) return -1.0;
  const double t1 = hz_now_us();
  cudaStreamSynchronize(stream);
  return (t1 - t0) / n;
}

static void test_check_pointers_overhead(void **state) {
  (void)state;
  mhc_context *plain = context_of(MHC_BACKEND_CUDA, 0);
  mhc_context *checked = context_of(MHC_BACKEND_CUDA, MHC_CONTEXT_FLAG_CHECK_POINTERS);
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, plain, 1, 4096, MHCT_INPUTS_MODEL, 4), 0);
  cudaStream_t stream;
  assert_int_equal(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  const int32_t ops[2] = {MHC_OP_HC_POST, MHC_OP_HC_POST_PRE};
  const int n = hz_iters(5000, 500); /* quick (sanitizers): 10 calls, the timing is moot there */
  for (int k = 0; k < 2; ++k) {
    double off = 1e30, on = 1e30;
    const int reps = hz_iters(3, 3); /* quick (sanitizers): 1 */
    for (int rep = 0; rep < reps; ++rep) { /* best of 3, interleaved */
      const double a = time_calls(plain, &d, ops[k], stream, n);
      const double b = time_calls(checked, &d, ops[k], stream, n);
      assert_true(a >= 0.0 && b >= 0.0);
      if (a < off) off = a;
      if (b < on) on = b;
    }
    printf("CHECK_POINTERS overhead, %s (T=1, H=4096, %d tensors): %.2f us/call without, "
           "%.2f us/call with (+%.2f us)\n",
           mhct_op_name(ops[k]), ops[k] == MHC_OP_HC_POST ? 5 : 11, off, on, on - off);
  }
  cudaStreamDestroy(stream);
  mhct_problem_free(&h);
  mhct_problem_free(&d);
  assert_int_equal(mhc_context_destroy(plain), MHC_SUCCESS);
  assert_int_equal(mhc_context_destroy(checked), MHC_SUCCESS);
}

int main(int argc, char **argv) {
  hz_device_type = kDLCUDA;
  const int rc = hz_init(argc, argv);
  if (rc != 0) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_device_pointer_to_cpu_backend_flag),
      cmocka_unit_test(test_device_pointer_to_cpu_backend_env),
      cmocka_unit_test(test_host_pointer_to_cuda_backend_flag),
      cmocka_unit_test(test_host_pointer_to_cuda_backend_env),
      cmocka_unit_test(test_pinned_host_accepted),
      cmocka_unit_test(test_check_pointers_overhead),
  };
  return cmocka_run_group_tests_name("gpu pointer checks", tests, NULL, NULL);
}
