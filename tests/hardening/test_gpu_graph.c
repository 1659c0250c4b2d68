/*
 * CUDA graph capture of the whole layer loop (ctest label gpu; exit 77 without a device).
 *
 * On a non-default stream: hc_pre, then hc_post_pre at every later sub-layer boundary, hc_post
 * after the last sub-layer, hc_head (the loop of examples/LAYER_LOOP.md with an identity
 * sub-layer: the next x is the layer input). The loop is run eagerly once, then captured into
 * a CUDA graph (no call may synchronise, allocate or fail during capture) and replayed 1000
 * times; before every replay the outputs are poisoned, after it the head output and the final
 * residual, post_mix and comb_mix must equal the eager run bit for bit.
 */
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

#define MHC_OK(call)                                                                       \
  do {                                                                                     \
    const mhc_status_t s_ = (call);                                                        \
    if (s_ != MHC_SUCCESS) {                                                               \
      fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,                    \
              mhc_status_string(s_), mhc_last_error_message());                            \
      fail();                                                                              \
    }                                                                                      \
  } while (0)

#define MAX_SUB 8
#define REPLAYS 1000 /* 20 in quick mode */

typedef struct loop {
  int64_t T, H;
  int nsub; /* sub-layers (2 per decoder layer) */
  mhc_hc_params p;
  /* weights per sub-layer and head (device) */
  mhct_tensor fn[MAX_SUB], scale[MAX_SUB], base[MAX_SUB];
  mhct_tensor fn_head, scale_head, base_head;
  /* state: the input residual (never written), two of everything else */
  mhct_tensor res_in, res[2], pm[2], cm[2], li[2], out;
  void *ws;
  size_t ws_bytes;
} loop;

static void fill_dev(mhct_tensor *t, mhct_rng *r, double scale, double offset) {
  const int64_t n = mhct_tensor_numel(t);
  const int bf16 = t->dl.dtype.bits == 16;
  void *h = malloc((size_t)n * (bf16 ? 2 : 4));
  for (int64_t i = 0; i < n; ++i) {
    const double v = offset + scale * mhct_rng_normal(r);
    if (bf16) ((uint16_t *)h)[i] = mhct_f64_to_bf16(v);
    else ((float *)h)[i] = (float)v;
  }
  assert_int_equal(mhct_tensor_upload(t, h), 0);
  free(h);
}

static void loop_init(loop *L, mhc_context *ctx, int64_t T, int64_t H, int nsub) {
  memset(L, 0, sizeof *L);
  L->T = T;
  L->H = H;
  L->nsub = nsub;
  const mhc_hc_params init = MHC_HC_PARAMS_INIT;
  L->p = init;
  mhct_rng r;
  mhct_rng_seed(&r, 4242);
  const int64_t s_fn[2] = {24, 4 * H}, s3[1] = {3}, s24[1] = {24}, s_fnh[2] = {4, 4 * H},
                s1[1] = {1}, s4[1] = {4}, s_res[3] = {T, 4, H}, s_pm[2] = {T, 4},
                s_cm[3] = {T, 4, 4}, s_x[2] = {T, H};
  for (int s = 0; s < nsub; ++s) {
    assert_int_equal(mhct_tensor_alloc(&L->fn[s], kDLCUDA, MHCT_F32, 2, s_fn), 0);
    assert_int_equal(mhct_tensor_alloc(&L->scale[s], kDLCUDA, MHCT_F32, 1, s3), 0);
    assert_int_equal(mhct_tensor_alloc(&L->base[s], kDLCUDA, MHCT_F32, 1, s24), 0);
    fill_dev(&L->fn[s], &r, 2e-3, 0.0);
    fill_dev(&L->scale[s], &r, 0.1, 1.0);
    fill_dev(&L->base[s], &r, 0.1, 0.0);
  }
  assert_int_equal(mhct_tensor_alloc(&L->fn_head, kDLCUDA, MHCT_F32, 2, s_fnh), 0);
  assert_int_equal(mhct_tensor_alloc(&L->scale_head, kDLCUDA, MHCT_F32, 1, s1), 0);
  assert_int_equal(mhct_tensor_alloc(&L->base_head, kDLCUDA, MHCT_F32, 1, s4), 0);
  fill_dev(&L->fn_head, &r, 2e-3, 0.0);
  fill_dev(&L->scale_head, &r, 0.1, 1.0);
  fill_dev(&L->base_head, &r, 0.1, 0.0);
  assert_int_equal(mhct_tensor_alloc(&L->res_in, kDLCUDA, MHCT_BF16, 3, s_res), 0);
  fill_dev(&L->res_in, &r, 1.0, 0.0);
  for (int k = 0; k < 2; ++k) {
    assert_int_equal(mhct_tensor_alloc(&L->res[k], kDLCUDA, MHCT_BF16, 3, s_res), 0);
    assert_int_equal(mhct_tensor_alloc(&L->pm[k], kDLCUDA, MHCT_F32, 2, s_pm), 0);
    assert_int_equal(mhct_tensor_alloc(&L->cm[k], kDLCUDA, MHCT_F32, 3, s_cm), 0);
    assert_int_equal(mhct_tensor_alloc(&L->li[k], kDLCUDA, MHCT_BF16, 2, s_x), 0);
  }
  assert_int_equal(mhct_tensor_alloc(&L->out, kDLCUDA, MHCT_BF16, 2, s_x), 0);
  size_t need = 0;
  for (int32_t op = MHC_OP_HC_PRE; op <= MHC_OP_HC_HEAD; ++op) {
    size_t b = 0;
    MHC_OK(mhc_workspace_size(ctx, op, &L->p, T, H, &b));
    if (b > need) need = b;
  }
  L->ws_bytes = need;
  L->ws = need ? mhct_device_malloc(need) : NULL;
}

static void loop_free(loop *L) {
  for (int s = 0; s < L->nsub; ++s) {
    mhct_tensor_free(&L->fn[s]);
    mhct_tensor_free(&L->scale[s]);
    mhct_tensor_free(&L->base[s]);
  }
  mhct_tensor_free(&L->fn_head);
  mhct_tensor_free(&L->scale_head);
  mhct_tensor_free(&L->base_head);
  mhct_tensor_free(&L->res_in);
  for (int k = 0; k < 2; ++k) {
    mhct_tensor_free(&L->res[k]);
    mhct_tensor_free(&L->pm[k]);
    mhct_tensor_free(&L->cm[k]);
    mhct_tensor_free(&L->li[k]);
  }
  mhct_tensor_free(&L->out);
  mhct_device_free(L->ws);
}

/* Enqueues the whole loop on `stream`; returns the first failing status. Which buffers hold
 * the final state: res_final, pm_final, cm_final. */
static mhc_status_t enqueue_loop(mhc_context *ctx, loop *L, cudaStream_t stream,
                                 const mhct_tensor **res_final, const mhct_tensor **pm_final,
                                 const mhct_tensor **cm_final) {
  struct CUstream_st *st = (struct CUstream_st *)stream;
  mhc_hc_weights w0 = {&L->fn[0].dl, &L->scale[0].dl, &L->base[0].dl, NULL};
  mhc_status_t s = mhc_hc_pre(ctx, &L->p, &w0, &L->res_in.dl, &L->pm[0].dl, &L->cm[0].dl,
                              &L->li[0].dl, L->ws, L->ws_bytes, st);
  if (s != MHC_SUCCESS) return s;
  const mhct_tensor *res = &L->res_in;
  int cur = 0;     /* pm/cm/li index of the current sub-layer */
  int res_next = 0; /* which res[] the next boundary writes */
  for (int sub = 0; sub < L->nsub; ++sub) {
    const mhct_tensor *x = &L->li[cur]; /* identity sub-layer */
    if (sub < L->nsub - 1) {
      mhc_hc_weights w = {&L->fn[sub + 1].dl, &L->scale[sub + 1].dl, &L->base[sub + 1].dl, NULL};
      s = mhc_hc_post_pre(ctx, &L->p, &w, &x->dl, &res->dl, &L->pm[cur].dl, &L->cm[cur].dl,
                          &L->res[res_next].dl, &L->pm[1 - cur].dl, &L->cm[1 - cur].dl,
                          &L->li[1 - cur].dl, L->ws, L->ws_bytes, st);
      if (s != MHC_SUCCESS) return s;
      res = &L->res[res_next];
      res_next = 1 - res_next;
      cur = 1 - cur;
    } else {
      s = mhc_hc_post(ctx, &x->dl, &res->dl, &L->pm[cur].dl, &L->cm[cur].dl,
                      &L->res[res_next].dl, st);
      if (s != MHC_SUCCESS) return s;
      res = &L->res[res_next];
    }
  }
  *res_final = res;
  *pm_final = &L->pm[cur];
  *cm_final = &L->cm[cur];
  return mhc_hc_head(ctx, &L->p, &L->fn_head.dl, &L->scale_head.dl, &L->base_head.dl, &res->dl,
                     &L->out.dl, L->ws, L->ws_bytes, st);
}

typedef struct snapshot {
  void *d[4];
  size_t n[4];
} snapshot;

static void take(snapshot *s, const mhct_tensor *t[4], cudaStream_t stream) {
  HZ_CUDA_OK(cudaStreamSynchronize(stream));
  for (int i = 0; i < 4; ++i) {
    s->n[i] = mhct_tensor_nbytes(t[i]);
    s->d[i] = mhct_tensor_to_host(t[i]);
    assert_non_null(s->d[i]);
  }
}

static void drop(snapshot *s) {
  for (int i = 0; i < 4; ++i) free(s->d[i]);
}

static void graph_case(uint32_t ctx_flags, int64_t T, int64_t H, int nsub) {
  mhc_context *ctx = hz_context(ctx_flags);
  loop L;
  loop_init(&L, ctx, T, H, nsub);
  cudaStream_t stream;
  HZ_CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  /* eager */
  const mhct_tensor *rf, *pf, *cf;
  MHC_OK(enqueue_loop(ctx, &L, stream, &rf, &pf, &cf));
  const mhct_tensor *outs[4] = {&L.out, rf, pf, cf};
  snapshot eager;
  take(&eager, outs, stream);

  /* capture */
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  HZ_CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  const mhct_tensor *rg, *pg, *cg;
  const mhc_status_t st = enqueue_loop(ctx, &L, stream, &rg, &pg, &cg);
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  if (st != MHC_SUCCESS || end != cudaSuccess) {
    fprintf(stderr, "capture: mhc %s (%s), cudaStreamEndCapture: %s\n", mhc_status_string(st),
            mhc_last_error_message(), cudaGetErrorString(end));
    fail();
  }
  assert_ptr_equal(rg, rf);
  size_t nodes = 0;
  HZ_CUDA_OK(cudaGraphGetNodes(graph, NULL, &nodes));
  HZ_CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));

  double t0 = 0.0, replay_us = 0.0;
  int bad = 0;
  const int replays = hz_iters(REPLAYS, 50);
  for (int rep = 0; rep < replays && !bad; ++rep) {
    for (int i = 0; i < 4; ++i) /* poison the outputs outside the graph */
      HZ_CUDA_OK(cudaMemsetAsync(mhct_tensor_ptr(outs[i]), 0xA5 ^ (rep & 0xff),
                                 mhct_tensor_nbytes(outs[i]), stream));
    HZ_CUDA_OK(cudaStreamSynchronize(stream));
    t0 = hz_now_us();
    HZ_CUDA_OK(cudaGraphLaunch(exec, stream));
    HZ_CUDA_OK(cudaStreamSynchronize(stream));
    replay_us += hz_now_us() - t0;
    snapshot now;
    take(&now, outs, stream);
    for (int i = 0; i < 4; ++i)
      if (memcmp(now.d[i], eager.d[i], eager.n[i]) != 0) {
        static const char *names[4] = {"head out", "final residual", "post_mix", "comb_mix"};
        fprintf(stderr, "replay %d: %s differs from the eager run\n", rep, names[i]);
        bad = 1;
      }
    drop(&now);
  }
  printf("graph T=%lld H=%lld sub-layers=%d flags=0x%x: %zu nodes, %d replays, %.1f us per "
         "replay (launch + sync)\n",
         (long long)T, (long long)H, nsub, ctx_flags, nodes, replays, replay_us / replays);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  drop(&eager);
  cudaStreamDestroy(stream);
  loop_free(&L);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
  assert_int_equal(bad, 0);
}

static void test_graph_decode_small(void **state) {
  (void)state;
  graph_case(0, 8, 4096, 6);
}

static void test_graph_decode_pdl(void **state) {
  (void)state;
  graph_case(MHC_CONTEXT_FLAG_PDL, 4, 7168, 6);
}

static void test_graph_prefill(void **state) {
  (void)state;
  graph_case(0, 256, 4096, 4);
}

static void test_graph_odd_hidden(void **state) {
  (void)state;
  graph_case(0, 3, 1000, 4);
}

int main(int argc, char **argv) {
  hz_device_type = kDLCUDA;
  const int rc = hz_init(argc, argv);
  if (rc != 0) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_graph_decode_small),
      cmocka_unit_test(test_graph_decode_pdl),
      cmocka_unit_test(test_graph_prefill),
      cmocka_unit_test(test_graph_odd_hidden),
  };
  return cmocka_run_group_tests_name("gpu graph", tests, NULL, NULL);
}
