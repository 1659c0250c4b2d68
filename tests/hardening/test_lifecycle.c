/*
 * Context lifecycle and error paths in a loop: the leak test.
 *
 * Each round creates a context, uses it (every entry point, a real op and an error of every
 * kind: each failure stores a thread-local message), walks every error path of
 * mhc_context_create and mhc_context_destroy, and destroys it. Run
 *   - under LeakSanitizer (scripts/test.d/50-sanitizers.sh, ASAN_OPTIONS=detect_leaks=1),
 *   - under valgrind --leak-check=full --error-exitcode=1 in the normal build (same script),
 *   - and on its own, where it also checks that the heap in use does not grow with the number
 *     of rounds (memory that stays reachable, e.g. a registry that never shrinks, is invisible
 *     to LSan and valgrind).
 * Usage: mhc_hardening_lifecycle [rounds (default 3000)] [--cuda]. With --cuda one context in
 * 50 is a CUDA context (needs a device; otherwise the CUDA create error paths run).
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
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

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HZ_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define HZ_ASAN 1
#endif
#ifdef HZ_ASAN
#include <sanitizer/allocator_interface.h>
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HZ_HAVE_VALGRIND_H 1
#endif
#endif

static int g_rounds = 3000;

#define EXPECT(call, want)                                                                  \
  do {                                                                                      \
    const mhc_status_t st_ = (call);                                                        \
    if (st_ != (want)) {                                                                    \
      fprintf(stderr, "%s:%d: %s gave %s, expected %s: %s\n", __FILE__, __LINE__, #call,    \
              mhc_status_string(st_), mhc_status_string(want), mhc_last_error_message());   \
      fail();                                                                               \
    }                                                                                       \
    if ((want) != MHC_SUCCESS && mhc_last_error_message()[0] == '\0') {                     \
      fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__, __LINE__, #call);   \
      fail();                                                                               \
    }                                                                                       \
  } while (0)

/* Small host tensors of one problem (T = 2, H = 8) shared by the rounds of one thread. */
typedef struct fixture {
  mhct_problem pb;
  mhct_tensor f64;   /* a float64 tensor: wrong dtype */
  mhct_tensor short_x; /* [2, 7]: wrong shape */
} fixture;

static void fixture_init(fixture *f) {
  assert_int_equal(mhct_problem_alloc(&f->pb, kDLCPU, 2, 8, 0), 0);
  mhct_problem_fill(&f->pb, MHCT_INPUTS_MODEL, 77);
  const int64_t s[2] = {2, 8}, s7[2] = {2, 7};
  assert_int_equal(mhct_tensor_alloc(&f->f64, kDLCPU, MHCT_F32, 2, s), 0);
  f->f64.dl.dtype.bits = 64; /* descriptor says float64 (the memory is large enough) */
  f->f64.dl.shape[1] = 4;
  assert_int_equal(mhct_tensor_alloc(&f->short_x, kDLCPU, MHCT_BF16, 2, s7), 0);
}

static void fixture_free(fixture *f) {
  mhct_problem_free(&f->pb);
  mhct_tensor_free(&f->f64);
  mhct_tensor_free(&f->short_x);
}

/* Every error path of the ops on a live CPU context. */
static void op_error_paths(mhc_context *ctx, fixture *f) {
  mhct_problem *pb = &f->pb;
  const DLTensor *x = &pb->x.dl, *r = &pb->residual.dl, *pm = &pb->post_mix.dl,
                 *cm = &pb->comb_mix.dl, *ro = &pb->residual_out.dl;
  mhc_hc_weights w = {&pb->fn.dl, &pb->scale.dl, &pb->base.dl, NULL};
  const mhc_hc_params *p = &pb->params;
  mhc_hc_params bad_p = *p;
  bad_p.size = 3;

  EXPECT(mhc_hc_post(ctx, x, r, pm, cm, ro, NULL), MHC_SUCCESS);
  EXPECT(mhc_hc_post(ctx, NULL, r, pm, cm, ro, NULL), MHC_ERROR_INVALID_ARGUMENT);
  EXPECT(mhc_hc_post(ctx, &f->short_x.dl, r, pm, cm, ro, NULL), MHC_ERROR_INVALID_ARGUMENT);
  EXPECT(mhc_hc_post(ctx, x, r, &f->f64.dl, cm, ro, NULL), MHC_ERROR_NOT_SUPPORTED);
  EXPECT(mhc_hc_post(ctx, x, r, pm, cm, r, NULL), MHC_ERROR_INVALID_ARGUMENT); /* overlap */
  EXPECT(mhc_hc_pre(ctx, p, &w, r, &pb->post_mix_out.dl, &pb->comb_mix_out.dl,
                    &pb->layer_input_out.dl, NULL, 0, NULL),
         MHC_SUCCESS);
  EXPECT(mhc_hc_pre(ctx, &bad_p, &w, r, &pb->post_mix_out.dl, &pb->comb_mix_out.dl,
                    &pb->layer_input_out.dl, NULL, 0, NULL),
         MHC_ERROR_VERSION_MISMATCH);
  EXPECT(mhc_hc_pre(ctx, NULL, &w, r, &pb->post_mix_out.dl, &pb->comb_mix_out.dl,
                    &pb->layer_input_out.dl, NULL, 0, NULL),
         MHC_ERROR_INVALID_ARGUMENT);
  EXPECT(mhc_hc_pre(ctx, p, NULL, r, &pb->post_mix_out.dl, &pb->comb_mix_out.dl,
                    &pb->layer_input_out.dl, NULL, 0, NULL),
         MHC_ERROR_INVALID_ARGUMENT);
  EXPECT(mhc_hc_post_pre(ctx, p, &w, x, r, pm, cm, ro, &pb->post_mix_out.dl,
                         &pb->comb_mix_out.dl, &pb->layer_input_out.dl, NULL, 0, NULL),
         MHC_SUCCESS);
  EXPECT(mhc_hc_post_pre(ctx, p, &w, x, r, pm, cm, ro, &pb->post_mix_out.dl,
                         &pb->post_mix_out.dl, &pb->layer_input_out.dl, NULL, 0, NULL),
         MHC_ERROR_INVALID_ARGUMENT);
  EXPECT(mhc_hc_head(ctx, p, &pb->fn_head.dl, &pb->scale_head.dl, &pb->base_head.dl, r,
                     &pb->out.dl, NULL, 0, NULL),
         MHC_SUCCESS);
  EXPECT(mhc_hc_head(ctx, p, &pb->fn.dl, &pb->scale_head.dl, &pb->base_head.dl, r, &pb->out.dl,
                     NULL, 0, NULL),
         MHC_ERROR_INVALID_ARGUMENT);
  size_t bytes = 1;
  EXPECT(mhc_workspace_size(ctx, MHC_OP_HC_PRE, p, 2, 8, &bytes), MHC_SUCCESS);
  EXPECT(mhc_workspace_size(ctx, 99, p, 2, 8, &bytes), MHC_ERROR_INVALID_ARGUMENT);
  EXPECT(mhc_workspace_size(ctx, MHC_OP_HC_PRE, p, 2, 8, NULL), MHC_ERROR_INVALID_ARGUMENT);
  int32_t b = 0, d = 0;
  EXPECT(mhc_context_get_backend(ctx, &b, &d), MHC_SUCCESS);
  EXPECT(mhc_context_get_backend(ctx, NULL, NULL), MHC_ERROR_INVALID_ARGUMENT);
}

/* Every error path of create and destroy. */
static void create_error_paths(int cuda_device_ok) {
  mhc_context *c = (mhc_context *)&c;
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = MHC_BACKEND_CPU;
  EXPECT(mhc_context_create(NULL, &cfg), MHC_ERROR_INVALID_ARGUMENT);
  mhc_context_config bad = cfg;
  bad.size = sizeof bad - 1;
  EXPECT(mhc_context_create(&c, &bad), MHC_ERROR_VERSION_MISMATCH);
  assert_null(c);
  bad = cfg;
  bad.version = 77;
  EXPECT(mhc_context_create(&c, &bad), MHC_ERROR_VERSION_MISMATCH);
  bad = cfg;
  bad.backend = 42;
  EXPECT(mhc_context_create(&c, &bad), MHC_ERROR_INVALID_ARGUMENT);
  bad = cfg;
  bad.device_id = 1;
  EXPECT(mhc_context_create(&c, &bad), MHC_ERROR_INVALID_ARGUMENT);
  bad = cfg;
  bad.flags = 0x80u;
  EXPECT(mhc_context_create(&c, &bad), MHC_ERROR_INVALID_ARGUMENT);
  bad = cfg;
  bad.backend = MHC_BACKEND_CUDA;
  bad.device_id = -1;
  EXPECT(mhc_context_create(&c, &bad), MHC_ERROR_INVALID_ARGUMENT);
  if (!cuda_device_ok) {
    /* no CUDA backend (NOT_SUPPORTED) or no device (CUDA): never success */
    bad.device_id = 0;
    mhc_status_t st = mhc_context_create(&c, &bad);
    assert_true(st == MHC_ERROR_NOT_SUPPORTED || st == MHC_ERROR_CUDA);
    assert_null(c);
    st = mhc_context_create(&c, NULL); /* NULL cfg: CUDA device 0 */
    assert_true(st == MHC_ERROR_NOT_SUPPORTED || st == MHC_ERROR_CUDA);
    assert_null(c);
  }
  bad.device_id = 9999;
  const mhc_status_t st = mhc_context_create(&c, &bad);
  assert_true(st != MHC_SUCCESS);
  assert_null(c);
}

static void destroy_error_paths(mhc_context *destroyed) {
  EXPECT(mhc_context_destroy(NULL), MHC_SUCCESS);
  EXPECT(mhc_context_destroy(destroyed), MHC_ERROR_INVALID_HANDLE);
  static char forged[64];
  EXPECT(mhc_context_destroy((mhc_context *)forged), MHC_ERROR_INVALID_HANDLE);
}

static int g_cuda_ok; /* a CUDA context can be created (set in main) */

static void one_round(fixture *f, int i) {
  mhc_context *ctx = NULL;
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  const int cuda = g_cuda_ok && i % 50 == 0;
  cfg.backend = cuda ? MHC_BACKEND_CUDA : MHC_BACKEND_CPU;
  cfg.flags = (uint32_t)i & 3u;
  if (i % 7 == 3) setenv("MHC_CHECK_POINTERS", "1", 1);
  EXPECT(mhc_context_create(&ctx, &cfg), MHC_SUCCESS);
  if (i % 7 == 3) unsetenv("MHC_CHECK_POINTERS");
  if (!cuda) op_error_paths(ctx, f);
  else EXPECT(mhc_hc_post(ctx, NULL, NULL, NULL, NULL, NULL, NULL), MHC_ERROR_INVALID_ARGUMENT);
  if (i % 10 == 0) create_error_paths(g_cuda_ok);
  EXPECT(mhc_context_destroy(ctx), MHC_SUCCESS);
  destroy_error_paths(ctx);
  for (int s = -1; s <= 10; ++s) assert_non_null(mhc_status_string(s));
}

static size_t heap_in_use(void) {
#ifdef HZ_ASAN
  return __sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
#endif
}

static int under_valgrind(void) {
#ifdef HZ_HAVE_VALGRIND_H
  return RUNNING_ON_VALGRIND;
#else
  return getenv("MHC_UNDER_VALGRIND") != NULL;
#endif
}

static void test_create_destroy_loop(void **state) {
  (void)state;
  fixture f;
  fixture_init(&f);
  const int warm = g_rounds / 10 > 0 ? g_rounds / 10 : 1;
  for (int i = 0; i < warm; ++i) one_round(&f, i);
  const size_t before = heap_in_use();
  for (int i = warm; i < g_rounds; ++i) one_round(&f, i);
  const size_t after = heap_in_use();
  fixture_free(&f);
  if (under_valgrind())
    printf("%d rounds (heap growth not measured under valgrind: its leak check applies)\n",
           g_rounds);
  else
    printf("%d rounds; heap in use after %d rounds: %zu bytes, after %d: %zu bytes\n",
           g_rounds, warm, before, g_rounds, after);
  /* nothing may accumulate per round: allow 64 KiB of allocator noise */
  if (!under_valgrind() && after > before + 65536) {
    fprintf(stderr, "heap grew by %zu bytes over %d rounds\n", after - before, g_rounds - warm);
    fail();
  }
}

/* The same rounds on 4 threads at once: per-thread error messages must be released when the
 * threads exit, and the registry must stay consistent. */
typedef struct thread_arg {
  int rounds;
  int failures;
} thread_arg;

static void *thread_main(void *p) {
  thread_arg *a = (thread_arg *)p;
  fixture f;
  fixture_init(&f);
  for (int i = 0; i < a->rounds; ++i) {
    mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
    cfg.backend = MHC_BACKEND_CPU;
    mhc_context *ctx = NULL;
    if (mhc_context_create(&ctx, &cfg) != MHC_SUCCESS) { ++a->failures; continue; }
    const DLTensor *x = &f.pb.x.dl, *r = &f.pb.residual.dl;
    if (mhc_hc_post(ctx, x, r, &f.pb.post_mix.dl, &f.pb.comb_mix.dl, &f.pb.residual_out.dl,
                    NULL) != MHC_SUCCESS)
      ++a->failures;
    if (mhc_hc_post(ctx, x, NULL, NULL, NULL, NULL, NULL) != MHC_ERROR_INVALID_ARGUMENT)
      ++a->failures;
    if (mhc_context_destroy(ctx) != MHC_SUCCESS) ++a->failures;
    if (mhc_context_destroy(ctx) != MHC_ERROR_INVALID_HANDLE) ++a->failures;
  }
  fixture_free(&f);
  return NULL;
}

static void test_create_destroy_threads(void **state) {
  (void)state;
  for (int wave = 0; wave < 4; ++wave) { /* threads come and go: their messages must too */
    pthread_t t[4];
    thread_arg a[4];
    for (int k = 0; k < 4; ++k) {
      a[k].rounds = g_rounds / 8 > 0 ? g_rounds / 8 : 1;
      a[k].failures = 0;
      assert_int_equal(pthread_create(&t[k], NULL, thread_main, &a[k]), 0);
    }
    for (int k = 0; k < 4; ++k) {
      pthread_join(t[k], NULL);
      assert_int_equal(a[k].failures, 0);
    }
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i)
    if (argv[i][0] != '-' && atoi(argv[i]) > 0) g_rounds = atoi(argv[i]);
  const int rc = hz_init(argc, argv);
  if (rc != 0) return rc;
  g_rounds = hz_iters(g_rounds, 10);
  g_cuda_ok = hz_device_type == kDLCUDA;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_destroy_loop),
      cmocka_unit_test(test_create_destroy_threads),
  };
  return cmocka_run_group_tests_name("lifecycle", tests, NULL, NULL);
}
