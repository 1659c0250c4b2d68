/* A DeepSeek-V4-shaped layer loop on one pipeline stage, driven through the mhc C API.
 * The program is defined in examples/LAYER_LOOP.md; every binding's example runs the same
 * loop and prints the same checksum.
 *
 *   layer_loop [--tokens T] [--hidden H] [--layers L] [--seed S] [--cuda]
 */
#define _POSIX_C_SOURCE 199309L
#include <mhc/mhc.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef MHC_EXAMPLE_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

/* ---- seeded inputs (LAYER_LOOP.md) ---- */
static uint64_t rng_state;
static uint64_t rng_next(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
static float rng_u(void) {
  volatile float k = (float)(rng_next() >> 40); /* volatile: no contraction across steps */
  volatile float scaled = k * (1.0f / 16777216.0f);
  volatile float twice = scaled * 2.0f;
  return twice - 1.0f;
}
static float mulf(float a, float b) { volatile float r = a * b; return r; }
static float addf(float a, float b) { volatile float r = a + b; return r; }

static uint16_t bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static float f32(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static uint64_t fnv1a(uint64_t h, const uint16_t *v, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    h = (h ^ (v[i] & 0xffu)) * 0x100000001b3ull;
    h = (h ^ (v[i] >> 8)) * 0x100000001b3ull;
  }
  return h;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

#define CHECK(call)                                                                     \
  do {                                                                                  \
    mhc_status_t st_ = (call);                                                          \
    if (st_ != MHC_SUCCESS) {                                                           \
      fprintf(stderr, "%s failed: %s: %s\n", #call, mhc_status_string(st_),             \
              mhc_last_error_message());                                                \
      exit(1);                                                                          \
    }                                                                                   \
  } while (0)

/* ---- memory: host for the CPU backend, device for --cuda ---- */
static int use_cuda = 0;

static void *buf_alloc(size_t bytes) {
  void *p = NULL;
#ifdef MHC_EXAMPLE_HAVE_CUDA
  if (use_cuda) {
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) { fprintf(stderr, "cudaMalloc failed\n"); exit(1); }
    return p;
  }
#endif
  p = calloc(bytes ? bytes : 1, 1);
  if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
  return p;
}
static void buf_free(void *p) {
#ifdef MHC_EXAMPLE_HAVE_CUDA
  if (use_cuda) { cudaFree(p); return; }
#endif
  free(p);
}
static void buf_store(void *p, const void *host, size_t bytes) {
  if (bytes == 0) return;
#ifdef MHC_EXAMPLE_HAVE_CUDA
  if (use_cuda) { cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice); return; }
#endif
  memcpy(p, host, bytes);
}
static void *buf_upload(const void *host, size_t bytes) {
  void *p = buf_alloc(bytes);
  buf_store(p, host, bytes);
  return p;
}
static void buf_download(void *host, const void *p, size_t bytes) {
  if (bytes == 0) return;
#ifdef MHC_EXAMPLE_HAVE_CUDA
  if (use_cuda) { cudaMemcpy(host, p, bytes, cudaMemcpyDeviceToHost); return; }
#endif
  memcpy(host, p, bytes);
}
static void sync_device(void) {
#ifdef MHC_EXAMPLE_HAVE_CUDA
  if (use_cuda) cudaDeviceSynchronize();
#endif
}

/* A tensor descriptor with its own shape storage. */
typedef struct {
  DLTensor t;
  int64_t shape[3];
} tensor;

/* Fills *x; x->t.shape points into x itself, so tensors are never copied by value. */
static DLTensor *init_tensor(tensor *x, void *data, int bf16_dtype, int ndim, int64_t d0,
                             int64_t d1, int64_t d2) {
  memset(x, 0, sizeof *x);
  x->shape[0] = d0; x->shape[1] = d1; x->shape[2] = d2;
  x->t.data = data;
  x->t.device.device_type = use_cuda ? kDLCUDA : kDLCPU;
  x->t.device.device_id = 0;
  x->t.ndim = ndim;
  x->t.dtype.code = bf16_dtype ? kDLBfloat : kDLFloat;
  x->t.dtype.bits = bf16_dtype ? 16 : 32;
  x->t.dtype.lanes = 1;
  x->t.shape = x->shape;
  x->t.strides = NULL;
  x->t.byte_offset = 0;
  return &x->t;
}

typedef struct {
  void *fn, *scale, *base;
  float *gain; /* host: the stand-in sub-layer runs on the host for clarity */
  tensor fn_t, scale_t, base_t;
  mhc_hc_weights w;
} sublayer;

static float *gen_f32(size_t n, float mul, float add) {
  float *v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; ++i) v[i] = addf(mulf(rng_u(), mul), add);
  return v;
}

int main(int argc, char **argv) {
  int64_t T = 4, H = 256, L = 2;
  uint64_t seed = 42;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "--cuda")) use_cuda = 1;
    else if (i + 1 < argc && !strcmp(argv[i], "--tokens")) T = atoll(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--hidden")) H = atoll(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--layers")) L = atoll(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--seed")) seed = strtoull(argv[++i], NULL, 0);
    else { fprintf(stderr, "usage: %s [--tokens T] [--hidden H] [--layers L] [--seed S] [--cuda]\n", argv[0]); return 2; }
  }
  if (T < 0 || H < 1 || L < 0) { fprintf(stderr, "need T >= 0, H >= 1, L >= 0\n"); return 2; }
#ifndef MHC_EXAMPLE_HAVE_CUDA
  if (use_cuda) { fprintf(stderr, "this example was built without CUDA\n"); return 2; }
#endif
  rng_state = seed;
  const int64_t S = 2 * L, K = 4 * H;
  const size_t nres = (size_t)(T * 4 * H), nx = (size_t)(T * H);

  /* 1. embeddings, 2. sub-layer weights, 3. head weights: in this order (LAYER_LOOP.md) */
  uint16_t *emb = malloc(nx * 2 + 2);
  for (size_t i = 0; i < nx; ++i) emb[i] = bf16(rng_u());
  sublayer *sl = calloc((size_t)S + 1, sizeof *sl);
  for (int64_t s = 0; s < S; ++s) {
    float *fn = gen_f32((size_t)(24 * K), 0.02f, 0.0f);
    float *scale = gen_f32(3, 0.1f, 1.0f);
    float *base = gen_f32(24, 0.1f, 0.0f);
    sl[s].gain = gen_f32((size_t)H, 0.5f, 1.0f);
    sl[s].fn = buf_upload(fn, (size_t)(24 * K) * 4);
    sl[s].scale = buf_upload(scale, 3 * 4);
    sl[s].base = buf_upload(base, 24 * 4);
    free(fn); free(scale); free(base);
    sl[s].w.fn = init_tensor(&sl[s].fn_t, sl[s].fn, 0, 2, 24, K, 0);
    sl[s].w.scale = init_tensor(&sl[s].scale_t, sl[s].scale, 0, 1, 3, 0, 0);
    sl[s].w.base = init_tensor(&sl[s].base_t, sl[s].base, 0, 1, 24, 0, 0);
    sl[s].w.norm_weight = NULL;
  }
  float *hfn = gen_f32((size_t)(4 * K), 0.02f, 0.0f);
  float *hscale = gen_f32(1, 0.1f, 1.0f);
  float *hbase = gen_f32(4, 0.1f, 0.0f);
  void *d_hfn = buf_upload(hfn, (size_t)(4 * K) * 4), *d_hscale = buf_upload(hscale, 4),
       *d_hbase = buf_upload(hbase, 16);
  tensor hfn_t, hscale_t, hbase_t;
  init_tensor(&hfn_t, d_hfn, 0, 2, 4, K, 0);
  init_tensor(&hscale_t, d_hscale, 0, 1, 1, 0, 0);
  init_tensor(&hbase_t, d_hbase, 0, 1, 4, 0, 0);

  /* context, params, workspace */
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = use_cuda ? MHC_BACKEND_CUDA : MHC_BACKEND_CPU;
  mhc_context *ctx = NULL;
  CHECK(mhc_context_create(&ctx, &cfg));
  mhc_hc_params p = MHC_HC_PARAMS_INIT;
  size_t ws_bytes = 0, b;
  CHECK(mhc_workspace_size(ctx, MHC_OP_HC_PRE, &p, T, H, &b)); if (b > ws_bytes) ws_bytes = b;
  CHECK(mhc_workspace_size(ctx, MHC_OP_HC_POST_PRE, &p, T, H, &b)); if (b > ws_bytes) ws_bytes = b;
  CHECK(mhc_workspace_size(ctx, MHC_OP_HC_HEAD, &p, T, H, &b)); if (b > ws_bytes) ws_bytes = b;
  void *ws = ws_bytes ? buf_alloc(ws_bytes) : NULL;

  /* state: two buffers of each, swapped at every boundary */
  uint16_t *h_res = malloc(nres * 2 + 2);
  for (int64_t t = 0; t < T; ++t)
    for (int j = 0; j < 4; ++j) memcpy(h_res + (t * 4 + j) * H, emb + t * H, (size_t)H * 2);
  void *res[2] = {buf_upload(h_res, nres * 2), buf_alloc(nres * 2)};
  void *post[2] = {buf_alloc((size_t)T * 16), buf_alloc((size_t)T * 16)};
  void *comb[2] = {buf_alloc((size_t)T * 64), buf_alloc((size_t)T * 64)};
  void *li[2] = {buf_alloc(nx * 2), buf_alloc(nx * 2)};
  void *y = buf_alloc(nx * 2), *out = buf_alloc(nx * 2);
  uint16_t *h_li = malloc(nx * 2 + 2), *h_y = malloc(nx * 2 + 2);
  int cur = 0;

  /* descriptors of both buffers of each state tensor */
  tensor t_res[2], t_post[2], t_comb[2], t_li[2], ty, tout;
  for (int i = 0; i < 2; ++i) {
    init_tensor(&t_res[i], res[i], 1, 3, T, 4, H);
    init_tensor(&t_post[i], post[i], 0, 2, T, 4, 0);
    init_tensor(&t_comb[i], comb[i], 0, 3, T, 4, 4);
    init_tensor(&t_li[i], li[i], 1, 2, T, H, 0);
  }
  init_tensor(&ty, y, 1, 2, T, H, 0);
  init_tensor(&tout, out, 1, 2, T, H, 0);

  double t0 = now_us(), t_layer = t0;
  if (S > 0) {
    CHECK(mhc_hc_pre(ctx, &p, &sl[0].w, &t_res[0].t, &t_post[0].t, &t_comb[0].t, &t_li[0].t, ws,
                     ws_bytes, NULL));
  }
  for (int64_t s = 0; s < S; ++s) {
    /* stand-in sub-layer on the host: y = bf16(li * gain_s) */
    buf_download(h_li, li[cur], nx * 2);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h) h_y[t * H + h] = bf16(mulf(f32(h_li[t * H + h]), sl[s].gain[h]));
    buf_store(y, h_y, nx * 2);
    const int nxt = 1 - cur;
    if (s < S - 1) {
      CHECK(mhc_hc_post_pre(ctx, &p, &sl[s + 1].w, &ty.t, &t_res[cur].t, &t_post[cur].t,
                            &t_comb[cur].t, &t_res[nxt].t, &t_post[nxt].t, &t_comb[nxt].t,
                            &t_li[nxt].t, ws, ws_bytes, NULL));
    } else {
      CHECK(mhc_hc_post(ctx, &ty.t, &t_res[cur].t, &t_post[cur].t, &t_comb[cur].t, &t_res[nxt].t,
                        NULL));
    }
    cur = 1 - cur;
    if (s % 2 == 1) {
      sync_device();
      double now = now_us();
      printf("layer %lld: %.1f us\n", (long long)(s / 2), now - t_layer);
      t_layer = now;
    }
  }
  CHECK(mhc_hc_head(ctx, &p, &hfn_t.t, &hscale_t.t, &hbase_t.t, &t_res[cur].t, &tout.t, ws,
                    ws_bytes, NULL));
  sync_device();
  printf("stage: %lld layers, T=%lld, H=%lld, backend=%s, total %.1f us\n", (long long)L,
         (long long)T, (long long)H, use_cuda ? "cuda" : "cpu", now_us() - t0);

  uint16_t *h_out = malloc(nx * 2 + 2);
  buf_download(h_out, out, nx * 2);
  buf_download(h_res, res[cur], nres * 2);
  uint64_t sum = fnv1a(0xcbf29ce484222325ull, h_out, nx);
  sum = fnv1a(sum, h_res, nres);
  printf("checksum: 0x%016llx\n", (unsigned long long)sum);

  for (int i = 0; i < 2; ++i) { buf_free(res[i]); buf_free(post[i]); buf_free(comb[i]); buf_free(li[i]); }
  for (int64_t s = 0; s < S; ++s) { buf_free(sl[s].fn); buf_free(sl[s].scale); buf_free(sl[s].base); free(sl[s].gain); }
  buf_free(y); buf_free(out); buf_free(d_hfn); buf_free(d_hscale); buf_free(d_hbase);
  if (ws) buf_free(ws);
  free(sl); free(emb); free(h_res); free(h_li); free(h_y); free(h_out); free(hfn); free(hscale); free(hbase);
  CHECK(mhc_context_destroy(ctx));
  return 0;
}
