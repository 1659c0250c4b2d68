/* Properties of the CUDA backend beyond accuracy (DESIGN §1, header contract):
 *  - MHC_FLAG_BATCH_INVARIANT: a token's outputs are bitwise the same whatever T (T = 2048
 *    against windows of 1, 2, 17, 129, 512, 2047 tokens containing it), every op;
 *  - determinism: repeated runs give the same bits, every op, several T;
 *  - CUDA graphs: hc_post_pre + hc_pre + hc_head captured on a non-default stream (global
 *    capture mode: any allocation or synchronisation inside would break the capture), nothing
 *    runs during capture, replays are bitwise equal to eager runs (also with the PDL flag);
 *  - unaligned tensors (bf16 at byte_offset 2, f32 at 4, or 16) give the same bits as aligned;
 *  - workspace rules: too small (WORKSPACE_TOO_SMALL naming the bytes mhc_workspace_size
 *    printed), NULL, misaligned, overlapping an output; sizes never shrink with T;
 *  - device rules: host or other-device tensors (DEVICE_MISMATCH), pinned host memory
 *    (kDLCUDAHost) accepted, MHC_CONTEXT_FLAG_CHECK_POINTERS catching mislabelled host memory,
 *    bad device id; T = 0 writes nothing.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "gpu_harness.h"

static mhc_context *g_gpu, *g_cpu;

/* MHC_GPU_TESTS_QUICK=1 (scripts/gpu-sanitizers.sh): the batch-invariance reference and the
 * largest determinism and graph cases use T = 320 instead of 2048 (past the decode rows of
 * the dispatch table and the register-Sinkhorn limit; gpu.accuracy runs T > 512 under the
 * tools), and each graph is replayed 2 + 1 times instead of 5 + 3
 * (every kernel node still runs, compared, several times), as kernels run 10-100x slower
 * under compute-sanitizer. */
static int quick(void) {
  const char *q = getenv("MHC_GPU_TESTS_QUICK");
  return q != NULL && q[0] == '1';
}

static int64_t big_t(void) { return quick() ? 320 : 2048; }

static int setup(void **state) {
  (void)state;
  g_gpu = gh_cuda_context(0);
  g_cpu = mhct_cpu_context();
  return g_cpu ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  mhc_context_destroy(g_gpu);
  mhc_context_destroy(g_cpu);
  return 0;
}

static void expect_status(mhc_status_t got, mhc_status_t want, const char *name1,
                          const char *name2, const char *what) {
  const char *msg = mhc_last_error_message();
  if (got != want)
    fail_msg("%s: got %s, want %s; message: \"%s\"", what, mhc_status_string(got),
             mhc_status_string(want), msg);
  if (want == MHC_SUCCESS) return;
  if (name1 && !mhct_names_arg(msg, name1))
    fail_msg("%s: message lacks '%s': \"%s\"", what, name1, msg);
  if (name2 && !mhct_names_arg(msg, name2))
    fail_msg("%s: message lacks '%s': \"%s\"", what, name2, msg);
}

/* ---------------------------------------------------------------------------------------- */
/* call variants and output sets                                                            */
/* ---------------------------------------------------------------------------------------- */

typedef struct variant {
  const char *name;
  int32_t op;
  int with_norm;
} variant;

static const variant kVariants[6] = {
    {"hc_post", MHC_OP_HC_POST, 0},         {"hc_pre", MHC_OP_HC_PRE, 0},
    {"hc_pre+norm", MHC_OP_HC_PRE, 1},      {"hc_post_pre", MHC_OP_HC_POST_PRE, 0},
    {"hc_post_pre+norm", MHC_OP_HC_POST_PRE, 1}, {"hc_head", MHC_OP_HC_HEAD, 0},
};

/* A second set of output tensors (device) with the problem's shapes. */
typedef struct outset {
  mhct_tensor res, pm, cm, li, out;
} outset;

static void outset_alloc(outset *o, int64_t T, int64_t H) {
  const int64_t s_res[3] = {T, 4, H}, s_pm[2] = {T, 4}, s_cm[3] = {T, 4, 4}, s_li[2] = {T, H};
  gh_device_tensor(&o->res, MHCT_BF16, 3, s_res);
  gh_device_tensor(&o->pm, MHCT_F32, 2, s_pm);
  gh_device_tensor(&o->cm, MHCT_F32, 3, s_cm);
  gh_device_tensor(&o->li, MHCT_BF16, 2, s_li);
  gh_device_tensor(&o->out, MHCT_BF16, 2, s_li);
}

static void outset_free(outset *o) {
  mhct_tensor_free(&o->res);
  mhct_tensor_free(&o->pm);
  mhct_tensor_free(&o->cm);
  mhct_tensor_free(&o->li);
  mhct_tensor_free(&o->out);
}

static void use_outputs(mhct_call *c, const outset *o) {
  if (c->residual_out) c->residual_out = &o->res;
  if (c->post_mix_out) c->post_mix_out = &o->pm;
  if (c->comb_mix_out) c->comb_mix_out = &o->cm;
  if (c->layer_input_out) c->layer_input_out = &o->li;
  if (c->out) c->out = &o->out;
}

/* Fills every output of a call with 0xFF bytes (NaN in bf16 and f32), so that an element a run
 * does not write cannot pass as a value left by an earlier run. */
static void poison_outputs(const mhct_call *c) {
  const mhct_tensor *t[5] = {c->residual_out, c->post_mix_out, c->comb_mix_out,
                             c->layer_input_out, c->out};
  for (int i = 0; i < 5; ++i)
    if (t[i]) assert_int_equal(mhct_tensor_fill_bytes((mhct_tensor *)t[i], 0xFF), 0);
}

/* Host copies of rows [t0, t0 + n) of every output of a call. */
typedef struct snap {
  void *p[5];
  size_t bytes[5];
  const char *name[5];
} snap;

static void snap_take(snap *s, const mhct_call *c, int64_t t0, int64_t n) {
  const mhct_tensor *t[5] = {c->residual_out, c->post_mix_out, c->comb_mix_out,
                             c->layer_input_out, c->out};
  static const char *const names[5] = {"residual_out", "post_mix_out", "comb_mix_out",
                                       "layer_input_out", "out"};
  memset(s, 0, sizeof *s);
  for (int i = 0; i < 5; ++i) {
    s->name[i] = names[i];
    if (!t[i]) continue;
    mhct_tensor v;
    mhct_tensor_view_rows(&v, t[i], t0, n);
    s->bytes[i] = mhct_tensor_nbytes(&v);
    s->p[i] = gh_download(&v, s->bytes[i]);
  }
}

static void snap_free(snap *s) {
  for (int i = 0; i < 5; ++i) free(s->p[i]);
  memset(s, 0, sizeof *s);
}

/* Bitwise equality of two snapshots; returns the number of differing outputs. */
static int snap_equal(const snap *a, const snap *b, const char *what) {
  int bad = 0;
  for (int i = 0; i < 5; ++i) {
    if (!a->p[i] && !b->p[i]) continue;
    if (!a->p[i] || !b->p[i] || a->bytes[i] != b->bytes[i]) {
      printf("%s: %s: outputs differ in shape\n", what, a->name[i]);
      ++bad;
      continue;
    }
    const size_t esize = (i == 1 || i == 2) ? 4 : 2;
    mhct_cmp r;
    if (!mhct_cmp_bits(&r, a->name[i], a->p[i], b->p[i], a->bytes[i] / esize, esize)) {
      gh_report(0, &r, what);
      ++bad;
    }
  }
  return bad;
}

static void device_problem(mhct_problem *dp, mhct_problem *hp, mhct_inputs fam, int64_t T,
                           int64_t H, uint32_t flags, uint64_t seed) {
  assert_int_equal(mhct_problem_alloc(hp, kDLCPU, T, H, 0), 0);
  mhct_problem_fill(hp, fam, seed);
  hp->params.flags = flags;
  gh_device_problem(dp, hp, g_gpu);
}

/* ---------------------------------------------------------------------------------------- */
/* batch invariance                                                                         */
/* ---------------------------------------------------------------------------------------- */

static void test_batch_invariance(void **state) {
  (void)state;
  const int64_t Hs[2] = {4096, 7168};
  const int64_t TM = big_t();  /* quick mode: 320, windows past it are left out */
  const int64_t windows[][2] = {{0, 1},     {1, 1},   {17, 1},     {1000, 1},  {2047, 1},
                                {5, 2},     {100, 17}, {700, 129}, {1024, 512}, {1, 2047},
                                {0, 64},    {599, 1}, {1, 599},    {300, 129}, {10, 300}};
  const int nw_all = (int)(sizeof windows / sizeof windows[0]);
  int failures = 0;
  for (int hi = 0; hi < 2; ++hi) {
    const int64_t H = Hs[hi];
    mhct_problem hp, dp;
    device_problem(&dp, &hp, MHCT_INPUTS_MODEL, TM, H, MHC_FLAG_BATCH_INVARIANT, 77 + H);
    outset win;
    outset_alloc(&win, TM, H);
    for (int v = 0; v < 6; ++v) {
      const mhct_call full = mhct_problem_call(&dp, kVariants[v].op, kVariants[v].with_norm);
      poison_outputs(&full);
      gh_run_rows(g_gpu, &full, 0, TM);
      mhct_call part = full;
      use_outputs(&part, &win);
      int bad = 0, nw = 0;
      for (int w = 0; w < nw_all; ++w) {
        const int64_t t0 = windows[w][0], n = windows[w][1];
        if (t0 + n > TM) continue;
        ++nw;
        poison_outputs(&part);
        gh_run_rows(g_gpu, &part, t0, n);
        snap a, b;
        snap_take(&a, &part, t0, n);
        snap_take(&b, &full, t0, n);
        char what[128];
        snprintf(what, sizeof what, "batch-invariant %s H=%lld tokens [%lld, %lld) vs T=%lld",
                 kVariants[v].name, (long long)H, (long long)t0, (long long)(t0 + n),
                 (long long)TM);
        bad += snap_equal(&a, &b, what);
        snap_free(&a);
        snap_free(&b);
      }
      printf("batch-invariant %-16s H=%-5lld: %d windows (T = 1 .. %lld) vs T = %lld: %s\n",
             kVariants[v].name, (long long)H, nw, (long long)TM - 1, (long long)TM,
             bad ? "DIFFERENT" : "bitwise equal");
      failures += bad;
    }
    outset_free(&win);
    mhct_problem_free(&dp);
    mhct_problem_free(&hp);
  }
  if (failures) fail_msg("%d batch-invariance comparison(s) failed", failures);
}

/* ---------------------------------------------------------------------------------------- */
/* determinism                                                                              */
/* ---------------------------------------------------------------------------------------- */

static void test_determinism(void **state) {
  (void)state;
  const int64_t cases[][2] = {{1, 7168}, {16, 7168}, {17, 7168}, {64, 4096},
                              {65, 4096}, {big_t(), 7168}, {33, 1000}};
  int failures = 0;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
    const int64_t T = cases[k][0], H = cases[k][1];
    for (uint32_t flags = 0; flags <= MHC_FLAG_BATCH_INVARIANT; ++flags) {
      mhct_problem hp, dp;
      device_problem(&dp, &hp, MHCT_INPUTS_VLLM, T, H, flags, 5 + (uint64_t)k);
      int case_bad = 0;
      for (int v = 0; v < 6; ++v) {
        const mhct_call c = mhct_problem_call(&dp, kVariants[v].op, kVariants[v].with_norm);
        snap first;
        poison_outputs(&c);
        gh_run_rows(g_gpu, &c, 0, T);
        snap_take(&first, &c, 0, T);
        int bad = 0;
        const mhct_tensor *outs[5] = {c.residual_out, c.post_mix_out, c.comb_mix_out,
                                      c.layer_input_out, c.out};
        for (int rep = 0; rep < 2; ++rep) {
          for (int i = 0; i < 5; ++i) /* wipe the outputs between runs */
            if (outs[i]) mhct_tensor_fill_bytes((mhct_tensor *)outs[i], 0xFF);
          gh_run_rows(g_gpu, &c, 0, T);
          snap again;
          snap_take(&again, &c, 0, T);
          char what[96];
          snprintf(what, sizeof what, "determinism %s T=%lld H=%lld flags=%u run %d",
                   kVariants[v].name, (long long)T, (long long)H, flags, rep + 2);
          bad += snap_equal(&again, &first, what);
          snap_free(&again);
        }
        snap_free(&first);
        case_bad += bad;
      }
      printf("determinism T=%-5lld H=%-5lld flags=%u: 6 ops x 3 runs %s\n", (long long)T,
             (long long)H, flags, case_bad ? "DIFFER" : "bitwise equal");
      failures += case_bad;
      mhct_problem_free(&dp);
      mhct_problem_free(&hp);
    }
  }
  if (failures) fail_msg("%d determinism comparison(s) failed", failures);
}

/* ---------------------------------------------------------------------------------------- */
/* CUDA graphs                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* hc_post_pre (norm) -> R1; hc_pre(R1) (norm) -> second outputs; hc_head(R1). Each op has
 * its own workspace: with MHC_CONTEXT_FLAG_PDL an op's first kernel may start while the
 * previous op's last kernel still reads that op's workspace (the flag's documented
 * condition), so a shared workspace would be a race there. */
typedef struct chain {
  mhct_call post_pre, pre, head;
  void *ws[2];
} chain;

static void *chain_workspace(const mhct_problem *dp, int32_t op, size_t *bytes) {
  GH_MHC(mhc_workspace_size(g_gpu, op, &dp->params, dp->T, dp->H, bytes));
  if (*bytes == 0) return NULL;
  void *p = mhct_device_malloc(*bytes);
  assert_non_null(p);
  return p;
}

static chain make_chain(mhct_problem *dp, const outset *second, struct CUstream_st *s) {
  chain ch;
  ch.post_pre = mhct_problem_call(dp, MHC_OP_HC_POST_PRE, 1);
  ch.pre = mhct_problem_call(dp, MHC_OP_HC_PRE, 1);
  ch.pre.residual = &dp->residual_out;
  ch.pre.post_mix_out = &second->pm;
  ch.pre.comb_mix_out = &second->cm;
  ch.pre.layer_input_out = &second->li;
  ch.head = mhct_problem_call(dp, MHC_OP_HC_HEAD, 0);
  ch.head.residual = &dp->residual_out;
  ch.post_pre.stream = ch.pre.stream = ch.head.stream = s;
  ch.ws[0] = ch.pre.workspace = chain_workspace(dp, MHC_OP_HC_PRE, &ch.pre.workspace_bytes);
  ch.ws[1] = ch.head.workspace = chain_workspace(dp, MHC_OP_HC_HEAD, &ch.head.workspace_bytes);
  return ch;
}

static mhc_status_t chain_run(mhc_context *ctx, const chain *ch) {
  mhc_status_t st = mhct_call_run(ctx, &ch->post_pre);
  if (st == MHC_SUCCESS) st = mhct_call_run(ctx, &ch->pre);
  if (st == MHC_SUCCESS) st = mhct_call_run(ctx, &ch->head);
  return st;
}

/* Everything the chain writes, as one host snapshot set. */
typedef struct chain_snap {
  snap a, b, c;
} chain_snap;

static void chain_take(chain_snap *s, const chain *ch, int64_t T) {
  snap_take(&s->a, &ch->post_pre, 0, T);
  snap_take(&s->b, &ch->pre, 0, T);
  snap_take(&s->c, &ch->head, 0, T);
}

static void chain_free(chain_snap *s) {
  snap_free(&s->a);
  snap_free(&s->b);
  snap_free(&s->c);
}

static int chain_equal(const chain_snap *x, const chain_snap *y, const char *what) {
  return snap_equal(&x->a, &y->a, what) + snap_equal(&x->b, &y->b, what) +
         snap_equal(&x->c, &y->c, what);
}

static void wipe(mhct_problem *dp, outset *second) {
  mhct_tensor_fill_bytes(&dp->residual_out, 0);
  mhct_tensor_fill_bytes(&dp->post_mix_out, 0);
  mhct_tensor_fill_bytes(&dp->comb_mix_out, 0);
  mhct_tensor_fill_bytes(&dp->layer_input_out, 0);
  mhct_tensor_fill_bytes(&dp->out, 0);
  mhct_tensor_fill_bytes(&second->pm, 0);
  mhct_tensor_fill_bytes(&second->cm, 0);
  mhct_tensor_fill_bytes(&second->li, 0);
}

static int all_zero(const chain_snap *s) {
  const snap *ss[3] = {&s->a, &s->b, &s->c};
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 5; ++i) {
      const unsigned char *p = (const unsigned char *)ss[k]->p[i];
      for (size_t j = 0; p && j < ss[k]->bytes[i]; ++j)
        if (p[j]) return 0;
    }
  return 1;
}

static void test_graph_capture(void **state) {
  (void)state;
  GH_REQUIRE_CUDA();
  const int64_t cases[][2] = {{1, 7168}, {7, 1000}, {16, 4096}, {64, 7168}, {big_t(), 7168}};
  const uint32_t ctx_flags[2] = {0, MHC_CONTEXT_FLAG_PDL};
  int failures = 0;
  cudaStream_t s;
  GH_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
    const int64_t T = cases[k][0], H = cases[k][1];
    mhct_problem hp, dp;
    device_problem(&dp, &hp, MHCT_INPUTS_MODEL, T, H, 0, 900 + (uint64_t)k);
    outset second;
    outset_alloc(&second, T, H);
    const chain ch = make_chain(&dp, &second, (struct CUstream_st *)s);

    /* eager reference on the plain context */
    wipe(&dp, &second);
    GH_MHC(chain_run(g_gpu, &ch));
    GH_CUDA(cudaStreamSynchronize(s));
    chain_snap eager;
    chain_take(&eager, &ch, T);

    for (int f = 0; f < 2; ++f) {
      mhc_context *ctx = gh_cuda_context(ctx_flags[f]);
      char what[128];
      /* eager on this context: same bits (PDL is a scheduling hint, never a number change) */
      wipe(&dp, &second);
      GH_MHC(chain_run(ctx, &ch));
      GH_CUDA(cudaStreamSynchronize(s));
      chain_snap e2;
      chain_take(&e2, &ch, T);
      snprintf(what, sizeof what, "eager T=%lld H=%lld ctx flags %u vs plain", (long long)T,
               (long long)H, ctx_flags[f]);
      failures += chain_equal(&e2, &eager, what);
      chain_free(&e2);

      /* capture */
      wipe(&dp, &second);
      cudaGraph_t graph = NULL;
      GH_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
      const mhc_status_t st = chain_run(ctx, &ch);
      const cudaError_t ce = cudaStreamEndCapture(s, &graph);
      if (st != MHC_SUCCESS)
        fail_msg("capture T=%lld H=%lld: %s: %s", (long long)T, (long long)H,
                 mhc_status_string(st), mhc_last_error_message());
      if (ce != cudaSuccess)
        fail_msg("cudaStreamEndCapture T=%lld H=%lld: %s (the ops did something a graph cannot hold)",
                 (long long)T, (long long)H, cudaGetErrorString(ce));
      size_t nnodes = 0;
      GH_CUDA(cudaGraphGetNodes(graph, NULL, &nnodes));
      cudaGraphExec_t exec = NULL;
      GH_CUDA(cudaGraphInstantiateWithFlags(&exec, graph, 0));
      chain_snap during;
      chain_take(&during, &ch, T);
      if (!all_zero(&during)) {
        printf("capture T=%lld H=%lld: outputs were written during capture\n", (long long)T,
               (long long)H);
        ++failures;
      }
      chain_free(&during);

      /* replays */
      const int n_wiped = quick() ? 2 : 5, n_b2b = quick() ? 1 : 3;
      int bad = 0;
      for (int rep = 0; rep < n_wiped; ++rep) {
        wipe(&dp, &second);
        GH_CUDA(cudaGraphLaunch(exec, s));
        GH_CUDA(cudaStreamSynchronize(s));
        chain_snap replay;
        chain_take(&replay, &ch, T);
        snprintf(what, sizeof what, "graph replay %d T=%lld H=%lld ctx flags %u", rep,
                 (long long)T, (long long)H, ctx_flags[f]);
        bad += chain_equal(&replay, &eager, what);
        chain_free(&replay);
      }
      /* replays back to back without wiping, then once more: still the same */
      for (int rep = 0; rep < n_b2b; ++rep) GH_CUDA(cudaGraphLaunch(exec, s));
      GH_CUDA(cudaStreamSynchronize(s));
      chain_snap last;
      chain_take(&last, &ch, T);
      snprintf(what, sizeof what, "graph back-to-back T=%lld H=%lld ctx flags %u", (long long)T,
               (long long)H, ctx_flags[f]);
      bad += chain_equal(&last, &eager, what);
      chain_free(&last);
      printf("graph T=%-5lld H=%-5lld ctx flags %u: %zu nodes, %d replays %s\n", (long long)T,
             (long long)H, ctx_flags[f], nnodes, n_wiped + n_b2b,
             bad ? "DIFFER from eager" : "bitwise equal to eager");
      failures += bad;
      GH_CUDA(cudaGraphExecDestroy(exec));
      GH_CUDA(cudaGraphDestroy(graph));
      GH_MHC(mhc_context_destroy(ctx));
    }
    chain_free(&eager);
    mhct_device_free(ch.ws[0]);
    mhct_device_free(ch.ws[1]);
    outset_free(&second);
    mhct_problem_free(&dp);
    mhct_problem_free(&hp);
  }
  GH_CUDA(cudaStreamDestroy(s));
  if (failures) fail_msg("%d graph comparison(s) failed", failures);
}

/* ---------------------------------------------------------------------------------------- */
/* unaligned tensors                                                                        */
/* ---------------------------------------------------------------------------------------- */

static void test_unaligned(void **state) {
  (void)state;
  const int64_t cases[][2] = {{1, 4096}, {7, 7168}, {17, 1000}, {33, 4096}, {128, 7168}, {3, 7}};
  const uint64_t offsets[][2] = {{2, 0}, {2, 4}, {16, 16}, {6, 12}}; /* bf16, f32 byte offsets */
  int failures = 0;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
    const int64_t T = cases[k][0], H = cases[k][1];
    mhct_problem hp, a;
    device_problem(&a, &hp, MHCT_INPUTS_VLLM, T, H, 0, 31 + (uint64_t)k);
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; ++o) {
      mhct_problem u;
      assert_int_equal(
          mhct_problem_alloc_ex(&u, gh_dev_type(), T, H, 0, offsets[o][0], offsets[o][1]), 0);
      assert_int_equal(mhct_problem_copy_inputs(&u, &hp), 0);
      assert_int_equal(mhct_problem_alloc_workspace(&u, g_gpu), 0);
      int bad = 0;
      for (int v = 0; v < 6; ++v) {
        const mhct_call ca = mhct_problem_call(&a, kVariants[v].op, kVariants[v].with_norm);
        const mhct_call cu = mhct_problem_call(&u, kVariants[v].op, kVariants[v].with_norm);
        poison_outputs(&ca);
        poison_outputs(&cu);
        gh_run_rows(g_gpu, &ca, 0, T);
        gh_run_rows(g_gpu, &cu, 0, T);
        snap sa, su;
        snap_take(&sa, &ca, 0, T);
        snap_take(&su, &cu, 0, T);
        char what[128];
        snprintf(what, sizeof what, "unaligned %s T=%lld H=%lld offsets bf16 %llu f32 %llu",
                 kVariants[v].name, (long long)T, (long long)H, (unsigned long long)offsets[o][0],
                 (unsigned long long)offsets[o][1]);
        bad += snap_equal(&su, &sa, what);
        snap_free(&sa);
        snap_free(&su);
      }
      printf("unaligned T=%-4lld H=%-5lld bf16 +%llu f32 +%llu: 6 ops %s\n", (long long)T,
             (long long)H, (unsigned long long)offsets[o][0], (unsigned long long)offsets[o][1],
             bad ? "DIFFER from aligned" : "bitwise equal to aligned");
      failures += bad;
      mhct_problem_free(&u);
    }
    mhct_problem_free(&a);
    mhct_problem_free(&hp);
  }
  if (failures) fail_msg("%d unaligned comparison(s) failed", failures);
}

/* ---------------------------------------------------------------------------------------- */
/* workspace rules                                                                          */
/* ---------------------------------------------------------------------------------------- */

static void test_workspace(void **state) {
  (void)state;
  const int32_t ops[3] = {MHC_OP_HC_PRE, MHC_OP_HC_POST_PRE, MHC_OP_HC_HEAD};
  const int64_t Ts[] = {1, 2, 4, 5, 15, 16, 17, 63, 64, 65, 128, 512, 2048, 8192};
  const int nT = (int)(sizeof Ts / sizeof Ts[0]);
  const int64_t Hs[3] = {4096, 7168, 1000};
  mhc_hc_params p = MHC_HC_PARAMS_INIT;
  /* never smaller for a larger T (one buffer for the largest batch serves all) */
  for (int oi = 0; oi < 3; ++oi)
    for (int hi = 0; hi < 3; ++hi)
      for (uint32_t flags = 0; flags <= MHC_FLAG_BATCH_INVARIANT; ++flags) {
        p.flags = flags;
        size_t prev = 0;
        for (int ti = 0; ti < nT; ++ti) {
          size_t b = 0;
          GH_MHC(mhc_workspace_size(g_gpu, ops[oi], &p, Ts[ti], Hs[hi], &b));
          if (b < prev)
            fail_msg("mhc_workspace_size(%s, T=%lld, H=%lld, flags %u) = %zu < %zu at a smaller T",
                     mhct_op_name(ops[oi]), (long long)Ts[ti], (long long)Hs[hi], flags, b, prev);
          prev = b;
        }
        size_t b0 = 1;
        GH_MHC(mhc_workspace_size(g_gpu, ops[oi], &p, 0, Hs[hi], &b0));
        assert_int_equal(b0, 0);
        printf("workspace %-12s H=%-5lld flags=%u: T=%lld needs %zu bytes\n", mhct_op_name(ops[oi]),
               (long long)Hs[hi], flags, (long long)Ts[nT - 1], prev);
      }
  size_t b = 7;
  GH_MHC(mhc_workspace_size(g_gpu, MHC_OP_HC_POST, &p, 2048, 7168, &b));
  assert_int_equal(b, 0);

  /* the rules, on real calls */
  const int64_t cases[][2] = {{1, 7168}, {17, 7168}, {2048, 4096}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
    const int64_t T = cases[k][0], H = cases[k][1];
    mhct_problem hp, dp;
    device_problem(&dp, &hp, MHCT_INPUTS_MODEL, T, H, 0, 3);
    for (int oi = 0; oi < 3; ++oi) {
      mhct_call c = mhct_problem_call(&dp, ops[oi], 1);
      size_t need = 0;
      GH_MHC(mhc_workspace_size(g_gpu, ops[oi], &dp.params, T, H, &need));
      char what[160], count[32];
      snprintf(count, sizeof count, "%zu", need);
      if (need == 0) {
        printf("workspace: %s T=%lld H=%lld needs none: the too-small rule does not apply\n",
               mhct_op_name(ops[oi]), (long long)T, (long long)H);
        continue;
      }
      char *buf = mhct_device_malloc(need + 256);
      assert_non_null(buf);
      c.workspace = buf;
      c.workspace_bytes = need;
      snprintf(what, sizeof what, "%s T=%lld H=%lld: exact workspace", mhct_op_name(ops[oi]),
               (long long)T, (long long)H);
      expect_status(mhct_call_run(g_gpu, &c), MHC_SUCCESS, NULL, NULL, what);
      c.workspace_bytes = need - 1;
      snprintf(what, sizeof what, "%s T=%lld H=%lld: workspace %zu < %zu", mhct_op_name(ops[oi]),
               (long long)T, (long long)H, need - 1, need);
      expect_status(mhct_call_run(g_gpu, &c), MHC_ERROR_WORKSPACE_TOO_SMALL, "workspace_bytes",
                    count, what);
      c.workspace = NULL;
      c.workspace_bytes = 0;
      snprintf(what, sizeof what, "%s T=%lld H=%lld: no workspace", mhct_op_name(ops[oi]),
               (long long)T, (long long)H);
      expect_status(mhct_call_run(g_gpu, &c), MHC_ERROR_WORKSPACE_TOO_SMALL, "workspace_bytes",
                    count, what);
      c.workspace = NULL;
      c.workspace_bytes = need;
      snprintf(what, sizeof what, "%s T=%lld H=%lld: workspace NULL", mhct_op_name(ops[oi]),
               (long long)T, (long long)H);
      expect_status(mhct_call_run(g_gpu, &c), MHC_ERROR_INVALID_ARGUMENT, "workspace", NULL, what);
      c.workspace = buf + 8;
      snprintf(what, sizeof what, "%s T=%lld H=%lld: workspace 8-byte aligned",
               mhct_op_name(ops[oi]), (long long)T, (long long)H);
      expect_status(mhct_call_run(g_gpu, &c), MHC_ERROR_INVALID_ARGUMENT, "workspace", NULL, what);
      /* the workspace may not overlap an output */
      const mhct_tensor *o = c.layer_input_out ? c.layer_input_out : c.out;
      c.workspace = mhct_tensor_ptr(o);
      snprintf(what, sizeof what, "%s T=%lld H=%lld: workspace overlaps an output",
               mhct_op_name(ops[oi]), (long long)T, (long long)H);
      expect_status(mhct_call_run(g_gpu, &c), MHC_ERROR_INVALID_ARGUMENT, "workspace", NULL, what);
      mhct_device_free(buf);
    }
    mhct_problem_free(&dp);
    mhct_problem_free(&hp);
  }
  if (!gh_on_cpu) GH_CUDA(cudaDeviceSynchronize());
}

/* ---------------------------------------------------------------------------------------- */
/* devices                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void test_devices(void **state) {
  (void)state;
  GH_REQUIRE_CUDA();
  int ndev = 0;
  GH_CUDA(cudaGetDeviceCount(&ndev));
  int32_t backend = 0, device = -1;
  GH_MHC(mhc_context_get_backend(g_gpu, &backend, &device));
  assert_int_equal(backend, MHC_BACKEND_CUDA);
  assert_int_equal(device, 0);

  /* a device id that does not exist */
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.device_id = ndev;
  mhc_context *bad = (mhc_context *)(uintptr_t)1;
  expect_status(mhc_context_create(&bad, &cfg), MHC_ERROR_INVALID_ARGUMENT, "device_id", NULL,
                "CUDA context on a device that does not exist");
  assert_null(bad);

  const int64_t T = 5, H = 256;
  mhct_problem hp, dp;
  device_problem(&dp, &hp, MHCT_INPUTS_VLLM, T, H, 0, 8);
  const mhct_call c = mhct_problem_call(&dp, MHC_OP_HC_POST_PRE, 1);
  GH_MHC(mhct_call_run(g_gpu, &c));
  snap ref;
  snap_take(&ref, &c, 0, T);

  /* host (kDLCPU) tensors on the CUDA backend */
  mhct_call m = c;
  m.x = &hp.x;
  expect_status(mhct_call_run(g_gpu, &m), MHC_ERROR_DEVICE_MISMATCH, "x", NULL,
                "CUDA backend, x in host memory (kDLCPU)");
  m = c;
  m.layer_input_out = &hp.layer_input_out;
  expect_status(mhct_call_run(g_gpu, &m), MHC_ERROR_DEVICE_MISMATCH, "layer_input_out", NULL,
                "CUDA backend, layer_input_out in host memory (kDLCPU)");
  /* another device id */
  mhct_tensor other;
  mhct_tensor_view(&other, &dp.residual);
  other.dl.device.device_id = ndev;
  m = c;
  m.residual = &other;
  expect_status(mhct_call_run(g_gpu, &m), MHC_ERROR_DEVICE_MISMATCH, "residual", NULL,
                "CUDA backend, residual on another device id");
  /* device tensors on the CPU backend */
  const mhct_call hc = mhct_problem_call(&hp, MHC_OP_HC_POST_PRE, 1);
  m = hc;
  m.fn = &dp.fn;
  expect_status(mhct_call_run(g_cpu, &m), MHC_ERROR_DEVICE_MISMATCH, "fn", NULL,
                "CPU backend, fn in device memory (kDLCUDA)");

  /* pinned host memory (kDLCUDAHost) is accepted by the CUDA backend: same bits */
  void *pinned = NULL;
  GH_CUDA(cudaMallocHost(&pinned, mhct_tensor_nbytes(&hp.x)));
  memcpy(pinned, mhct_tensor_ptr(&hp.x), mhct_tensor_nbytes(&hp.x));
  mhct_tensor px;
  mhct_tensor_wrap(&px, pinned, kDLCUDAHost, 0, MHCT_BF16, 2, hp.x.shape);
  m = c;
  m.x = &px;
  for (int i = 0; i < 4; ++i) {
    const mhct_tensor *t = i == 0 ? c.residual_out : i == 1 ? c.post_mix_out
                         : i == 2 ? c.comb_mix_out : c.layer_input_out;
    mhct_tensor_fill_bytes((mhct_tensor *)t, 0);
  }
  expect_status(mhct_call_run(g_gpu, &m), MHC_SUCCESS, NULL, NULL, "CUDA backend, x pinned");
  GH_CUDA(cudaDeviceSynchronize());
  snap pin;
  snap_take(&pin, &m, 0, T);
  if (snap_equal(&pin, &ref, "x in pinned host memory")) fail_msg("pinned x changed the result");
  snap_free(&pin);

  /* MHC_CONTEXT_FLAG_CHECK_POINTERS: a kDLCUDA label on pageable host memory is caught */
  mhc_context *checked = gh_cuda_context(MHC_CONTEXT_FLAG_CHECK_POINTERS);
  GH_MHC(mhct_call_run(checked, &c)); /* real device memory passes */
  mhct_tensor liar;
  mhct_tensor_view(&liar, &hp.x);
  liar.dl.device.device_type = kDLCUDA;
  liar.dl.device.device_id = 0;
  m = c;
  m.x = &liar;
  expect_status(mhct_call_run(checked, &m), MHC_ERROR_DEVICE_MISMATCH, "x", NULL,
                "CHECK_POINTERS: host memory labelled kDLCUDA");
  GH_MHC(mhc_context_destroy(checked));

  /* T = 0: success, nothing written, NULL data allowed */
  mhct_problem z;
  assert_int_equal(mhct_problem_alloc(&z, kDLCUDA, 0, H, 0), 0);
  unsigned char *sentinel = mhct_device_malloc(4096);
  assert_non_null(sentinel);
  GH_CUDA(cudaMemset(sentinel, 0xAB, 4096));
  mhct_tensor *tok[5] = {&z.residual_out, &z.post_mix_out, &z.comb_mix_out, &z.layer_input_out,
                         &z.out};
  for (int i = 0; i < 5; ++i) tok[i]->dl.data = sentinel + 512 * i, tok[i]->dl.byte_offset = 0;
  for (int v = 0; v < 6; ++v) {
    const mhct_call zc = mhct_problem_call(&z, kVariants[v].op, kVariants[v].with_norm);
    char what[64];
    snprintf(what, sizeof what, "CUDA %s T = 0", kVariants[v].name);
    expect_status(mhct_call_run(g_gpu, &zc), MHC_SUCCESS, NULL, NULL, what);
  }
  GH_CUDA(cudaDeviceSynchronize());
  unsigned char host[4096];
  GH_CUDA(cudaMemcpy(host, sentinel, sizeof host, cudaMemcpyDeviceToHost));
  for (int i = 0; i < 4096; ++i)
    if (host[i] != 0xAB) fail_msg("T = 0 on CUDA wrote byte %d of the sentinel", i);
  mhct_device_free(sentinel);
  for (int i = 0; i < 5; ++i) tok[i]->dl.data = tok[i]->alloc;

  snap_free(&ref);
  GH_CUDA(cudaFreeHost(pinned));
  mhct_problem_free(&z);
  mhct_problem_free(&dp);
  mhct_problem_free(&hp);
}

int main(void) {
  if (!gh_have_device("mhc_gpu_properties")) return GH_SKIP_RC;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_invariance), cmocka_unit_test(test_determinism),
      cmocka_unit_test(test_graph_capture),    cmocka_unit_test(test_unaligned),
      cmocka_unit_test(test_workspace),        cmocka_unit_test(test_devices),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
