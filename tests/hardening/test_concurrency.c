/*
 * Concurrency on the CPU backend (the CUDA version with streams is test_gpu_streams.c).
 *
 *  - one context used from 8 threads at once, each thread with its own T and H and its own
 *    buffers, every op many times: the results are bitwise equal to single-threaded runs;
 *  - several contexts used at once from those threads;
 *  - contexts created and destroyed by several threads while other threads keep computing
 *    on a shared context;
 *  - error messages stay per thread while other threads fail differently.
 */
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

#define NTHREADS 8
#define NOPS 6 /* post, pre, pre+norm, post_pre, post_pre+norm, head */

static const int32_t kOps[NOPS] = {MHC_OP_HC_POST, MHC_OP_HC_PRE, MHC_OP_HC_PRE,
                                   MHC_OP_HC_POST_PRE, MHC_OP_HC_POST_PRE, MHC_OP_HC_HEAD};
static const int kNorm[NOPS] = {0, 0, 1, 0, 1, 0};
static const int64_t kShapes[NTHREADS][2] = {{1, 64}, {2, 128}, {3, 40}, {5, 256},
                                             {7, 8},  {8, 512}, {13, 96}, {16, 1}};

/* One thread's problem and the outputs of every op from a single-threaded run. */
typedef struct job {
  mhct_problem pb;
  hz_outputs ref[NOPS];
  mhc_context *ctx;
  int iterations;
  int mismatches;
  int failures;
} job;

static pthread_barrier_t g_barrier;

static void jobs_init(job *jobs, mhc_context *ctx) {
  for (int i = 0; i < NTHREADS; ++i) {
    job *j = &jobs[i];
    memset(j, 0, sizeof *j);
    assert_int_equal(mhct_problem_alloc(&j->pb, kDLCPU, kShapes[i][0], kShapes[i][1], 0), 0);
    mhct_problem_fill(&j->pb, MHCT_INPUTS_MODEL, 1000 + (uint64_t)i);
    assert_int_equal(mhct_problem_alloc_workspace(&j->pb, ctx), 0);
    for (int k = 0; k < NOPS; ++k) { /* the single-threaded reference */
      assert_int_equal(hz_run(ctx, &j->pb, kOps[k], kNorm[k], NULL), MHC_SUCCESS);
      assert_int_equal(hz_outputs_save(&j->ref[k], &j->pb), 0);
    }
  }
}

static void jobs_free(job *jobs) {
  for (int i = 0; i < NTHREADS; ++i) {
    for (int k = 0; k < NOPS; ++k) hz_outputs_free(&jobs[i].ref[k]);
    mhct_problem_free(&jobs[i].pb);
  }
}

static void *worker(void *p) {
  job *j = (job *)p;
  pthread_barrier_wait(&g_barrier);
  for (int it = 0; it < j->iterations; ++it)
    for (int k = 0; k < NOPS; ++k) {
      const int kk = (k + it) % NOPS; /* threads run different ops at the same moment */
      mhct_tensor *outs[5] = HZ_OUTPUT_TENSORS(&j->pb);
      for (int o = 0; o < 5; ++o) mhct_tensor_fill_bytes(outs[o], 0xEE);
      if (hz_run(j->ctx, &j->pb, kOps[kk], kNorm[kk], NULL) != MHC_SUCCESS) {
        ++j->failures;
        continue;
      }
      /* compare only what the op writes */
      int writes[5];
      hz_written(kOps[kk], writes);
      for (int o = 0; o < 5; ++o)
        if (writes[o] &&
            memcmp(mhct_tensor_ptr(outs[o]), j->ref[kk].data[o], j->ref[kk].bytes[o]) != 0)
          ++j->mismatches;
    }
  return NULL;
}

static void run_jobs(job *jobs, mhc_context **ctxs, int nctx, int iterations) {
  pthread_t t[NTHREADS];
  assert_int_equal(pthread_barrier_init(&g_barrier, NULL, NTHREADS), 0);
  for (int i = 0; i < NTHREADS; ++i) {
    jobs[i].ctx = ctxs[i % nctx];
    jobs[i].iterations = iterations;
    assert_int_equal(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
  }
  int bad = 0;
  for (int i = 0; i < NTHREADS; ++i) {
    pthread_join(t[i], NULL);
    if (jobs[i].failures || jobs[i].mismatches) {
      fprintf(stderr, "thread %d (T=%lld H=%lld): %d failed calls, %d outputs differ from the "
              "single-threaded run\n", i, (long long)kShapes[i][0], (long long)kShapes[i][1],
              jobs[i].failures, jobs[i].mismatches);
      ++bad;
    }
  }
  pthread_barrier_destroy(&g_barrier);
  assert_int_equal(bad, 0);
}

static void test_one_context_8_threads(void **state) {
  (void)state;
  mhc_context *ctx = hz_context(0);
  job jobs[NTHREADS];
  jobs_init(jobs, ctx);
  run_jobs(jobs, &ctx, 1, 20);
  jobs_free(jobs);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
}

static void test_several_contexts_at_once(void **state) {
  (void)state;
  mhc_context *ctx[4] = {hz_context(0), hz_context(MHC_CONTEXT_FLAG_CHECK_POINTERS),
                         hz_context(MHC_CONTEXT_FLAG_PDL), hz_context(0)};
  job jobs[NTHREADS];
  jobs_init(jobs, ctx[0]);
  run_jobs(jobs, ctx, 4, 10);
  jobs_free(jobs);
  for (int i = 0; i < 4; ++i) assert_int_equal(mhc_context_destroy(ctx[i]), MHC_SUCCESS);
}

/* ---- create/destroy under load ---- */
typedef struct churn_arg {
  int rounds;
  int failures;
  const mhct_problem *pb; /* read-only inputs; own outputs below */
} churn_arg;

static void *churn(void *p) {
  churn_arg *a = (churn_arg *)p;
  mhct_problem mine;
  if (mhct_problem_alloc(&mine, kDLCPU, a->pb->T, a->pb->H, 0) != 0 ||
      mhct_problem_copy_inputs(&mine, a->pb) != 0) {
    ++a->failures;
    return NULL;
  }
  for (int i = 0; i < a->rounds; ++i) {
    mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
    cfg.backend = MHC_BACKEND_CPU;
    cfg.flags = (uint32_t)i & 3u;
    mhc_context *ctx = NULL;
    if (mhc_context_create(&ctx, &cfg) != MHC_SUCCESS) { ++a->failures; continue; }
    int32_t backend = 0;
    if (mhc_context_get_backend(ctx, &backend, NULL) != MHC_SUCCESS ||
        backend != MHC_BACKEND_CPU)
      ++a->failures;
    if (hz_run(ctx, &mine, MHC_OP_HC_POST_PRE, i & 1, NULL) != MHC_SUCCESS) ++a->failures;
    if (mhc_context_destroy(ctx) != MHC_SUCCESS) ++a->failures;
    if (mhc_context_destroy(ctx) != MHC_ERROR_INVALID_HANDLE) ++a->failures;
  }
  mhct_problem_free(&mine);
  return NULL;
}

static void test_create_destroy_under_load(void **state) {
  (void)state;
  mhc_context *shared = hz_context(0);
  job jobs[NTHREADS];
  jobs_init(jobs, shared);
  /* 4 threads compute on the shared context (checked bitwise) while 4 threads churn */
  pthread_t t[NTHREADS];
  churn_arg ca[4];
  assert_int_equal(pthread_barrier_init(&g_barrier, NULL, 4), 0);
  for (int i = 0; i < 4; ++i) {
    jobs[i].ctx = shared;
    jobs[i].iterations = 15;
    assert_int_equal(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
  }
  for (int i = 0; i < 4; ++i) {
    ca[i].rounds = 300;
    ca[i].failures = 0;
    ca[i].pb = &jobs[4 + i].pb;
    assert_int_equal(pthread_create(&t[4 + i], NULL, churn, &ca[i]), 0);
  }
  int bad = 0;
  for (int i = 0; i < NTHREADS; ++i) pthread_join(t[i], NULL);
  for (int i = 0; i < 4; ++i) {
    bad += jobs[i].failures + jobs[i].mismatches;
    bad += ca[i].failures;
  }
  pthread_barrier_destroy(&g_barrier);
  jobs_free(jobs);
  assert_int_equal(mhc_context_destroy(shared), MHC_SUCCESS);
  assert_int_equal(bad, 0);
}

/* ---- per-thread error messages ---- */
typedef struct msg_arg {
  mhc_context *ctx;
  const mhct_problem *pb;
  int which;
  int bad;
} msg_arg;

static void *msg_worker(void *p) {
  msg_arg *a = (msg_arg *)p;
  const mhct_problem *pb = a->pb;
  static const char *kWant[4] = {"x:", "post_mix:", "comb_mix:", "residual_out:"};
  pthread_barrier_wait(&g_barrier);
  for (int i = 0; i < 2000; ++i) {
    const DLTensor *args[5] = {&pb->x.dl, &pb->residual.dl, &pb->post_mix.dl, &pb->comb_mix.dl,
                               NULL /* residual_out: set below */};
    const int w = a->which % 4; /* which argument this thread gets wrong */
    const DLTensor *x = w == 0 ? NULL : args[0];
    const DLTensor *pm = w == 1 ? NULL : args[2];
    const DLTensor *cm = w == 2 ? NULL : args[3];
    const mhc_status_t st = mhc_hc_post(a->ctx, x, args[1], pm, cm,
                                        w == 3 ? NULL : &pb->post_mix_out.dl /* wrong shape */,
                                        NULL);
    if (st != MHC_ERROR_INVALID_ARGUMENT || strncmp(mhc_last_error_message(), kWant[w],
                                                    strlen(kWant[w])) != 0) {
      if (a->bad++ == 0)
        fprintf(stderr, "thread %d: status %d, message \"%s\", expected it to start with %s\n",
                a->which, (int)st, mhc_last_error_message(), kWant[w]);
    }
  }
  return NULL;
}

static void test_error_messages_per_thread(void **state) {
  (void)state;
  mhc_context *ctx = hz_context(0);
  mhct_problem pb;
  assert_int_equal(mhct_problem_alloc(&pb, kDLCPU, 3, 16, 0), 0);
  mhct_problem_fill(&pb, MHCT_INPUTS_MODEL, 5);
  pthread_t t[NTHREADS];
  msg_arg a[NTHREADS];
  assert_int_equal(pthread_barrier_init(&g_barrier, NULL, NTHREADS), 0);
  for (int i = 0; i < NTHREADS; ++i) {
    a[i].ctx = ctx;
    a[i].pb = &pb;
    a[i].which = i;
    a[i].bad = 0;
    assert_int_equal(pthread_create(&t[i], NULL, msg_worker, &a[i]), 0);
  }
  int bad = 0;
  for (int i = 0; i < NTHREADS; ++i) {
    pthread_join(t[i], NULL);
    bad += a[i].bad;
  }
  pthread_barrier_destroy(&g_barrier);
  mhct_problem_free(&pb);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
  assert_int_equal(bad, 0);
}

int main(int argc, char **argv) {
  const int rc = hz_init(argc, argv);
  if (rc != 0) return rc;
  if (hz_device_type != kDLCPU) {
    fprintf(stderr, "test_concurrency is the CPU-backend test; see test_gpu_streams\n");
    return HZ_SKIP;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_context_8_threads),
      cmocka_unit_test(test_several_contexts_at_once),
      cmocka_unit_test(test_create_destroy_under_load),
      cmocka_unit_test(test_error_messages_per_thread),
  };
  return cmocka_run_group_tests_name("concurrency (CPU backend)", tests, NULL, NULL);
}
