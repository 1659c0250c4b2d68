/*
 * Concurrency on the CUDA backend (ctest label gpu; exit 77 without a device).
 *
 *  - one context used from 8 host threads at once, each with its own non-blocking stream,
 *    its own T and H, buffers and workspace, every op many times: results bitwise equal to
 *    a single-threaded run on one stream;
 *  - several contexts (same device) used at once from those threads;
 *  - contexts created and destroyed by several threads while others keep computing.
 */
#include <cuda_runtime_api.h>
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
#define NOPS 6

static const int32_t kOps[NOPS] = {MHC_OP_HC_POST, MHC_OP_HC_PRE, MHC_OP_HC_PRE,
                                   MHC_OP_HC_POST_PRE, MHC_OP_HC_POST_PRE, MHC_OP_HC_HEAD};
static const int kNorm[NOPS] = {0, 0, 1, 0, 1, 0};
static const int64_t kShapes[NTHREADS][2] = {{1, 4096}, {2, 7168}, {3, 64},  {5, 4096},
                                             {8, 1000}, {16, 4096}, {33, 7168}, {200, 512}};

typedef struct job {
  mhct_problem host, dev;
  hz_outputs ref[NOPS];
  void *download[5];
  mhc_context *ctx;
  cudaStream_t stream;
  int iterations;
  int mismatches, failures;
  char first_error[256];
} job;

static pthread_barrier_t g_barrier;

static mhct_tensor *out_tensor(mhct_problem *pb, int i) {
  mhct_tensor *t[5] = HZ_OUTPUT_TENSORS(pb);
  return t[i];
}

static void jobs_init(job *jobs, mhc_context *ctx) {
  for (int i = 0; i < NTHREADS; ++i) {
    job *j = &jobs[i];
    memset(j, 0, sizeof *j);
    assert_int_equal(hz_problem_pair(&j->host, &j->dev, ctx, kShapes[i][0], kShapes[i][1],
                                     MHCT_INPUTS_MODEL, 500 + (uint64_t)i),
                     0);
    for (int k = 0; k < NOPS; ++k) { /* single-threaded reference, legacy default stream */
      assert_int_equal(hz_run(ctx, &j->dev, kOps[k], kNorm[k], NULL), MHC_SUCCESS);
      assert_int_equal(hz_outputs_save(&j->ref[k], &j->dev), 0);
    }
    for (int o = 0; o < 5; ++o) {
      HZ_CUDA_OK(cudaMallocHost(&j->download[o], j->ref[0].bytes[o] ? j->ref[0].bytes[o] : 1));
    }
    HZ_CUDA_OK(cudaStreamCreateWithFlags(&j->stream, cudaStreamNonBlocking));
  }
}

static void jobs_free(job *jobs) {
  for (int i = 0; i < NTHREADS; ++i) {
    job *j = &jobs[i];
    cudaStreamDestroy(j->stream);
    for (int o = 0; o < 5; ++o) cudaFreeHost(j->download[o]);
    for (int k = 0; k < NOPS; ++k) hz_outputs_free(&j->ref[k]);
    mhct_problem_free(&j->host);
    mhct_problem_free(&j->dev);
  }
}

static void note(job *j, const char *fmt, ...) {
  if (j->first_error[0]) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(j->first_error, sizeof j->first_error, fmt, ap);
  va_end(ap);
}

static void *worker(void *p) {
  job *j = (job *)p;
  pthread_barrier_wait(&g_barrier);
  for (int it = 0; it < j->iterations; ++it)
    for (int k = 0; k < NOPS; ++k) {
      const int kk = (k + it) % NOPS;
      int w[5];
      hz_written(kOps[kk], w);
      for (int o = 0; o < 5; ++o)
        if (w[o])
          cudaMemsetAsync(mhct_tensor_ptr(out_tensor(&j->dev, o)), 0xEE, j->ref[kk].bytes[o],
                          j->stream);
      const mhc_status_t st = hz_run(j->ctx, &j->dev, kOps[kk], kNorm[kk], j->stream);
      if (st != MHC_SUCCESS) {
        ++j->failures;
        note(j, "%s: %s: %s", mhct_op_name(kOps[kk]), mhc_status_string(st),
             mhc_last_error_message());
        continue;
      }
      for (int o = 0; o < 5; ++o)
        if (w[o])
          cudaMemcpyAsync(j->download[o], mhct_tensor_ptr(out_tensor(&j->dev, o)),
                          j->ref[kk].bytes[o], cudaMemcpyDeviceToHost, j->stream);
      const cudaError_t e = cudaStreamSynchronize(j->stream);
      if (e != cudaSuccess) {
        ++j->failures;
        note(j, "cudaStreamSynchronize: %s", cudaGetErrorString(e));
        continue;
      }
      for (int o = 0; o < 5; ++o)
        if (w[o] && memcmp(j->download[o], j->ref[kk].data[o], j->ref[kk].bytes[o]) != 0) {
          ++j->mismatches;
          note(j, "%s%s output %d differs from the single-threaded run (iteration %d)",
               mhct_op_name(kOps[kk]), kNorm[kk] ? "+norm" : "", o, it);
        }
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
      fprintf(stderr, "thread %d (T=%lld H=%lld): %d failures, %d mismatches; first: %s\n", i,
              (long long)kShapes[i][0], (long long)kShapes[i][1], jobs[i].failures,
              jobs[i].mismatches, jobs[i].first_error);
      ++bad;
    }
  }
  pthread_barrier_destroy(&g_barrier);
  assert_int_equal(bad, 0);
}

static void test_one_context_8_streams(void **state) {
  (void)state;
  mhc_context *ctx = hz_context(0);
  job *jobs = calloc(NTHREADS, sizeof(job));
  jobs_init(jobs, ctx);
  run_jobs(jobs, &ctx, 1, hz_iters(25, 12));
  jobs_free(jobs);
  free(jobs);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
}

static void test_several_contexts_at_once(void **state) {
  (void)state;
  mhc_context *ctx[4] = {hz_context(0), hz_context(MHC_CONTEXT_FLAG_PDL),
                         hz_context(MHC_CONTEXT_FLAG_CHECK_POINTERS), hz_context(0)};
  job *jobs = calloc(NTHREADS, sizeof(job));
  jobs_init(jobs, ctx[0]);
  run_jobs(jobs, ctx, 4, hz_iters(10, 5));
  jobs_free(jobs);
  free(jobs);
  for (int i = 0; i < 4; ++i) assert_int_equal(mhc_context_destroy(ctx[i]), MHC_SUCCESS);
}

typedef struct churn_arg {
  job *j; /* own problem and stream (its reference outputs are not used) */
  int rounds, failures;
} churn_arg;

static void *churn(void *p) {
  churn_arg *a = (churn_arg *)p;
  for (int i = 0; i < a->rounds; ++i) {
    mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
    cfg.flags = (uint32_t)i & 3u;
    mhc_context *ctx = NULL;
    if (mhc_context_create(&ctx, &cfg) != MHC_SUCCESS) { ++a->failures; continue; }
    if (hz_run(ctx, &a->j->dev, MHC_OP_HC_POST_PRE, i & 1, a->j->stream) != MHC_SUCCESS)
      ++a->failures;
    /* destroy does not synchronise; the queued work only uses caller memory */
    if (mhc_context_destroy(ctx) != MHC_SUCCESS) ++a->failures;
  }
  if (cudaStreamSynchronize(a->j->stream) != cudaSuccess) ++a->failures;
  return NULL;
}

static void test_create_destroy_under_load(void **state) {
  (void)state;
  mhc_context *shared = hz_context(0);
  job *jobs = calloc(NTHREADS, sizeof(job));
  jobs_init(jobs, shared);
  pthread_t t[NTHREADS];
  churn_arg ca[4];
  assert_int_equal(pthread_barrier_init(&g_barrier, NULL, 4), 0);
  for (int i = 0; i < 4; ++i) {
    jobs[i].ctx = shared;
    jobs[i].iterations = hz_iters(20, 10);
    assert_int_equal(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
  }
  for (int i = 0; i < 4; ++i) {
    ca[i].j = &jobs[4 + i];
    ca[i].rounds = hz_iters(200, 20);
    ca[i].failures = 0;
    assert_int_equal(pthread_create(&t[4 + i], NULL, churn, &ca[i]), 0);
  }
  int bad = 0;
  for (int i = 0; i < NTHREADS; ++i) pthread_join(t[i], NULL);
  for (int i = 0; i < 4; ++i) {
    if (jobs[i].failures || jobs[i].mismatches)
      fprintf(stderr, "worker %d: %s\n", i, jobs[i].first_error);
    bad += jobs[i].failures + jobs[i].mismatches + ca[i].failures;
  }
  pthread_barrier_destroy(&g_barrier);
  jobs_free(jobs);
  free(jobs);
  assert_int_equal(mhc_context_destroy(shared), MHC_SUCCESS);
  assert_int_equal(bad, 0);
}

int main(int argc, char **argv) {
  hz_device_type = kDLCUDA;
  const int rc = hz_init(argc, argv);
  if (rc != 0) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_context_8_streams),
      cmocka_unit_test(test_several_contexts_at_once),
      cmocka_unit_test(test_create_destroy_under_load),
  };
  return cmocka_run_group_tests_name("gpu streams", tests, NULL, NULL);
}
