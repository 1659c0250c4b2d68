/* mhc test helpers: see test_util.h. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reference64.h"

#ifdef MHCT_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

/* ---------------------------------------------------------------------------------------- */
/* bf16                                                                                     */
/* ---------------------------------------------------------------------------------------- */

uint16_t mhct_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

float mhct_bf16_to_f32(uint16_t b) {
  uint32_t u = (uint32_t)b << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t mhct_f64_to_bf16(double d) {
  if (isnan(d)) return 0x7fff;
  if (isinf(d)) return d > 0 ? 0x7f80 : 0xff80;
  if (d == 0.0) return signbit(d) ? 0x8000 : 0x0000;
  int e2;
  (void)frexp(fabs(d), &e2); /* |d| = m * 2^e2, m in [0.5, 1) */
  int e = e2 - 1;            /* |d| in [2^e, 2^(e+1)) */
  if (e < -126) e = -126;    /* subnormal spacing */
  const double ulp = ldexp(1.0, e - 7);
  const double q = rint(d / ulp); /* exact division by a power of two; rint: ties to even */
  const double r = q * ulp;
  if (fabs(r) >= ldexp(1.0, 128)) return d > 0 ? 0x7f80 : 0xff80;
  const float f = (float)r; /* exact: r has at most 8 significant bits */
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return (uint16_t)(u >> 16);
}

static int bf16_is_nan(uint16_t b) { return (b & 0x7fffu) > 0x7f80u; }

int32_t mhct_bf16_ulp_distance(uint16_t a, uint16_t b) {
  const int na = bf16_is_nan(a), nb = bf16_is_nan(b);
  if (na || nb) return (na && nb) ? 0 : INT32_MAX;
  const int32_t oa = (a & 0x8000u) ? -(int32_t)(a & 0x7fffu) : (int32_t)(a & 0x7fffu);
  const int32_t ob = (b & 0x8000u) ? -(int32_t)(b & 0x7fffu) : (int32_t)(b & 0x7fffu);
  const int32_t d = oa - ob;
  return d < 0 ? -d : d;
}

double mhct_bf16_ulp(double v) {
  v = fabs(v);
  if (!(v > 0.0) || isinf(v)) return ldexp(1.0, -133);
  int e2;
  (void)frexp(v, &e2);
  int e = e2 - 1;
  if (e < -126) e = -126;
  return ldexp(1.0, e - 7);
}

/* ---------------------------------------------------------------------------------------- */
/* RNG                                                                                      */
/* ---------------------------------------------------------------------------------------- */

static uint64_t splitmix_finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void mhct_rng_seed(mhct_rng *r, uint64_t seed) {
  r->state = seed;
  r->have_spare = 0;
  r->spare = 0.0;
}

uint64_t mhct_rng_u64(mhct_rng *r) {
  r->state += 0x9E3779B97F4A7C15ull;
  return splitmix_finalize(r->state);
}

double mhct_rng_uniform(mhct_rng *r) {
  return ((double)(mhct_rng_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double mhct_rng_normal(mhct_rng *r) {
  if (r->have_spare) {
    r->have_spare = 0;
    return r->spare;
  }
  const double u1 = mhct_rng_uniform(r), u2 = mhct_rng_uniform(r);
  const double rad = sqrt(-2.0 * log(u1));
  const double ang = 6.283185307179586476925286766559 * u2;
  r->spare = rad * sin(ang);
  r->have_spare = 1;
  return rad * cos(ang);
}

uint64_t mhct_seed_mix(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t h = splitmix_finalize(a + 0x9E3779B97F4A7C15ull);
  h = splitmix_finalize(h ^ splitmix_finalize(b + 0x632BE59BD9B4E019ull));
  h = splitmix_finalize(h ^ splitmix_finalize(c + 0x85157AF5ull));
  return h;
}

/* ---------------------------------------------------------------------------------------- */
/* Device helpers                                                                           */
/* ---------------------------------------------------------------------------------------- */

int mhct_have_cuda(void) {
#ifdef MHCT_HAVE_CUDA
  return 1;
#else
  return 0;
#endif
}

int mhct_cuda_device_count(void) {
#ifdef MHCT_HAVE_CUDA
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
#else
  return 0;
#endif
}

void *mhct_device_malloc(size_t bytes) {
#ifdef MHCT_HAVE_CUDA
  void *p = NULL;
  if (bytes == 0) return NULL;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    fprintf(stderr, "mhct: cudaMalloc(%zu): %s\n", bytes, cudaGetErrorString(e));
    return NULL;
  }
  return p;
#else
  (void)bytes;
  fprintf(stderr, "mhct: device memory requested, but the test library has no CUDA\n");
  return NULL;
#endif
}

void mhct_device_free(void *p) {
#ifdef MHCT_HAVE_CUDA
  if (p) cudaFree(p);
#else
  (void)p;
#endif
}

int mhct_device_synchronize(void) {
#ifdef MHCT_HAVE_CUDA
  cudaError_t e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    fprintf(stderr, "mhct: cudaDeviceSynchronize: %s\n", cudaGetErrorString(e));
    return -1;
  }
#endif
  return 0;
}

static int is_host(int32_t device_type) { return device_type == kDLCPU; }

/* Frees host (posix_memalign) or device memory allocated for `device_type`. */
static void free_bytes(void *p, int32_t device_type) {
  if (is_host(device_type))
    free(p);
  else
    mhct_device_free(p);
}

/* memcpy / cudaMemcpy(Default) between any two pointers. */
static int copy_bytes(void *dst, int dst_host, const void *src, int src_host, size_t n) {
  if (n == 0) return 0;
  if (dst_host && src_host) {
    memcpy(dst, src, n);
    return 0;
  }
#ifdef MHCT_HAVE_CUDA
  cudaError_t e = cudaMemcpy(dst, src, n, cudaMemcpyDefault);
  if (e != cudaSuccess) {
    fprintf(stderr, "mhct: cudaMemcpy(%zu): %s\n", n, cudaGetErrorString(e));
    return -1;
  }
  return 0;
#else
  fprintf(stderr, "mhct: device copy requested, but the test library has no CUDA\n");
  return -1;
#endif
}

static int set_bytes(void *dst, int host, int byte, size_t n) {
  if (n == 0) return 0;
  if (host) {
    memset(dst, byte, n);
    return 0;
  }
#ifdef MHCT_HAVE_CUDA
  cudaError_t e = cudaMemset(dst, byte, n);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) {
    fprintf(stderr, "mhct: cudaMemset(%zu): %s\n", n, cudaGetErrorString(e));
    return -1;
  }
  return 0;
#else
  return -1;
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* Tensors                                                                                  */
/* ---------------------------------------------------------------------------------------- */

static void describe(mhct_tensor *t, void *data, int32_t device_type, int32_t device_id,
                     mhct_dtype dtype, int ndim, const int64_t *shape) {
  memset(t, 0, sizeof *t);
  if (ndim > MHCT_MAX_DIMS) ndim = MHCT_MAX_DIMS;
  if (ndim < 0) ndim = 0;
  for (int i = 0; i < ndim; ++i) t->shape[i] = shape[i];
  t->dl.data = data;
  t->dl.device.device_type = (DLDeviceType)device_type;
  t->dl.device.device_id = device_id;
  t->dl.ndim = ndim;
  t->dl.dtype.code = dtype == MHCT_BF16 ? kDLBfloat : kDLFloat;
  t->dl.dtype.bits = dtype == MHCT_BF16 ? 16 : 32;
  t->dl.dtype.lanes = 1;
  t->dl.shape = t->shape;
  t->dl.strides = NULL;
  t->dl.byte_offset = 0;
}

int64_t mhct_tensor_numel(const mhct_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->dl.ndim; ++i) n *= t->dl.shape[i] > 0 ? t->dl.shape[i] : 0;
  return n;
}

size_t mhct_tensor_elem_size(const mhct_tensor *t) {
  return ((size_t)t->dl.dtype.bits * t->dl.dtype.lanes + 7) / 8;
}

size_t mhct_tensor_nbytes(const mhct_tensor *t) {
  return (size_t)mhct_tensor_numel(t) * mhct_tensor_elem_size(t);
}

void *mhct_tensor_ptr(const mhct_tensor *t) {
  if (t->dl.data == NULL) return NULL;
  return (char *)t->dl.data + t->dl.byte_offset;
}

int mhct_tensor_alloc_ex(mhct_tensor *t, int32_t device_type, mhct_dtype dtype, int ndim,
                         const int64_t *shape, uint64_t byte_offset, size_t slack) {
  int32_t device_id = 0;
#ifdef MHCT_HAVE_CUDA
  if (!is_host(device_type)) (void)cudaGetDevice(&device_id);
#endif
  describe(t, NULL, device_type, device_id, dtype, ndim, shape);
  const size_t bytes = mhct_tensor_nbytes(t) + (size_t)byte_offset + slack;
  const size_t alloc = bytes ? bytes : 1;
  void *p = NULL;
  if (is_host(device_type)) {
    if (posix_memalign(&p, 256, (alloc + 255) / 256 * 256) != 0) p = NULL;
  } else {
    p = mhct_device_malloc(alloc);
  }
  if (p == NULL) {
    fprintf(stderr, "mhct: cannot allocate %zu bytes (device type %d)\n", alloc, device_type);
    return -1;
  }
  t->alloc = p;
  t->alloc_bytes = alloc;
  t->dl.data = p;
  t->dl.byte_offset = byte_offset;
  return set_bytes(p, is_host(device_type), 0, alloc);
}

int mhct_tensor_alloc(mhct_tensor *t, int32_t device_type, mhct_dtype dtype, int ndim,
                      const int64_t *shape) {
  return mhct_tensor_alloc_ex(t, device_type, dtype, ndim, shape, 0, 0);
}

void mhct_tensor_wrap(mhct_tensor *t, void *data, int32_t device_type, int32_t device_id,
                      mhct_dtype dtype, int ndim, const int64_t *shape) {
  describe(t, data, device_type, device_id, dtype, ndim, shape);
}

void mhct_tensor_free(mhct_tensor *t) {
  if (t->alloc) free_bytes(t->alloc, t->dl.device.device_type);
  memset(t, 0, sizeof *t);
}

void mhct_tensor_view(mhct_tensor *view, const mhct_tensor *src) {
  if (view == src) return;
  const int nd = src->dl.ndim < 0 ? 0 : (src->dl.ndim > MHCT_MAX_DIMS ? MHCT_MAX_DIMS : src->dl.ndim);
  memset(view, 0, sizeof *view);
  view->dl = src->dl;
  for (int i = 0; i < nd; ++i) view->shape[i] = src->dl.shape ? src->dl.shape[i] : 0;
  view->dl.shape = src->dl.shape ? view->shape : NULL;
  if (src->dl.strides) {
    for (int i = 0; i < nd; ++i) view->strides[i] = src->dl.strides[i];
    view->dl.strides = view->strides;
  }
  view->alloc = NULL;
  view->alloc_bytes = 0;
}

void mhct_tensor_view_rows(mhct_tensor *view, const mhct_tensor *src, int64_t row0,
                           int64_t count) {
  mhct_tensor_view(view, src);
  int64_t row_elems = 1;
  for (int i = 1; i < src->dl.ndim; ++i) row_elems *= src->dl.shape[i];
  if (src->dl.ndim > 0) view->shape[0] = count;
  view->dl.byte_offset += (uint64_t)(row0 * row_elems) * mhct_tensor_elem_size(src);
}

void mhct_tensor_set_dense_strides(mhct_tensor *t) {
  int64_t s = 1;
  for (int i = t->dl.ndim - 1; i >= 0; --i) {
    t->strides[i] = s;
    s *= t->dl.shape[i];
  }
  t->dl.strides = t->strides;
}

void mhct_tensor_set_strides(mhct_tensor *t, const int64_t *strides) {
  if (strides == NULL) {
    t->dl.strides = NULL;
    return;
  }
  for (int i = 0; i < t->dl.ndim; ++i) t->strides[i] = strides[i];
  t->dl.strides = t->strides;
}

int mhct_tensor_upload(mhct_tensor *t, const void *host_src) {
  return copy_bytes(mhct_tensor_ptr(t), is_host(t->dl.device.device_type), host_src, 1,
                    mhct_tensor_nbytes(t));
}

int mhct_tensor_download(const mhct_tensor *t, void *host_dst) {
  return copy_bytes(host_dst, 1, mhct_tensor_ptr(t), is_host(t->dl.device.device_type),
                    mhct_tensor_nbytes(t));
}

int mhct_tensor_copy(mhct_tensor *dst, const mhct_tensor *src) {
  if (mhct_tensor_nbytes(dst) != mhct_tensor_nbytes(src)) {
    fprintf(stderr, "mhct: tensor copy of %zu bytes into %zu bytes\n", mhct_tensor_nbytes(src),
            mhct_tensor_nbytes(dst));
    return -1;
  }
  return copy_bytes(mhct_tensor_ptr(dst), is_host(dst->dl.device.device_type),
                    mhct_tensor_ptr(src), is_host(src->dl.device.device_type),
                    mhct_tensor_nbytes(src));
}

int mhct_tensor_fill_bytes(mhct_tensor *t, int byte) {
  return set_bytes(mhct_tensor_ptr(t), is_host(t->dl.device.device_type), byte,
                   mhct_tensor_nbytes(t));
}

void *mhct_tensor_to_host(const mhct_tensor *t) {
  const size_t n = mhct_tensor_nbytes(t);
  void *p = malloc(n ? n : 1);
  if (p == NULL) return NULL;
  if (mhct_tensor_download(t, p) != 0) {
    free(p);
    return NULL;
  }
  return p;
}

/* ---------------------------------------------------------------------------------------- */
/* Threads                                                                                  */
/* ---------------------------------------------------------------------------------------- */

int mhct_num_threads(void) {
  const char *env = getenv("MHCT_THREADS");
  if (env && atoi(env) > 0) return atoi(env);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n < 1) n = 1;
  if (n > 64) n = 64;
  return (int)n;
}

typedef struct pf_job {
  void (*fn)(void *, int64_t, int64_t);
  void *ctx;
  int64_t begin, end;
} pf_job;

static void *pf_thread(void *arg) {
  pf_job *j = (pf_job *)arg;
  j->fn(j->ctx, j->begin, j->end);
  return NULL;
}

void mhct_parallel_for(int64_t n, int nthreads, void (*fn)(void *ctx, int64_t begin, int64_t end),
                       void *ctx) {
  if (n <= 0) return;
  if (nthreads <= 0) nthreads = mhct_num_threads();
  if (nthreads > n) nthreads = (int)n;
  if (nthreads <= 1) {
    fn(ctx, 0, n);
    return;
  }
  pf_job jobs[64];
  pthread_t tids[64];
  int started[64] = {0};
  if (nthreads > 64) nthreads = 64;
  for (int i = 0; i < nthreads; ++i) {
    jobs[i].fn = fn;
    jobs[i].ctx = ctx;
    jobs[i].begin = n * i / nthreads;
    jobs[i].end = n * (i + 1) / nthreads;
  }
  for (int i = 1; i < nthreads; ++i)
    started[i] = pthread_create(&tids[i], NULL, pf_thread, &jobs[i]) == 0;
  for (int i = 1; i < nthreads; ++i)
    if (!started[i]) pf_thread(&jobs[i]); /* could not start a thread: run it here */
  pf_thread(&jobs[0]);
  for (int i = 1; i < nthreads; ++i)
    if (started[i]) pthread_join(tids[i], NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Calls                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static const DLTensor *dl_of(const mhct_tensor *t) { return t ? &t->dl : NULL; }

int64_t mhct_call_tokens(const mhct_call *c) {
  if (c->residual == NULL || c->residual->dl.ndim < 1) return 0;
  return c->residual->dl.shape[0];
}

mhc_status_t mhct_call_run(mhc_context *ctx, const mhct_call *c) {
  mhc_hc_weights w;
  w.fn = dl_of(c->fn);
  w.scale = dl_of(c->scale);
  w.base = dl_of(c->base);
  w.norm_weight = dl_of(c->norm_weight);
  switch (c->op) {
    case MHC_OP_HC_POST:
      return mhc_hc_post(ctx, dl_of(c->x), dl_of(c->residual), dl_of(c->post_mix),
                         dl_of(c->comb_mix), dl_of(c->residual_out), c->stream);
    case MHC_OP_HC_PRE:
      return mhc_hc_pre(ctx, c->p, &w, dl_of(c->residual), dl_of(c->post_mix_out),
                        dl_of(c->comb_mix_out), dl_of(c->layer_input_out), c->workspace,
                        c->workspace_bytes, c->stream);
    case MHC_OP_HC_POST_PRE:
      return mhc_hc_post_pre(ctx, c->p, &w, dl_of(c->x), dl_of(c->residual),
                             dl_of(c->post_mix), dl_of(c->comb_mix), dl_of(c->residual_out),
                             dl_of(c->post_mix_out), dl_of(c->comb_mix_out),
                             dl_of(c->layer_input_out), c->workspace, c->workspace_bytes,
                             c->stream);
    case MHC_OP_HC_HEAD:
      return mhc_hc_head(ctx, c->p, dl_of(c->fn_head), dl_of(c->scale_head),
                         dl_of(c->base_head), dl_of(c->residual), dl_of(c->out), c->workspace,
                         c->workspace_bytes, c->stream);
    default:
      fprintf(stderr, "mhct: unknown op %d\n", c->op);
      return MHC_ERROR_INVALID_ARGUMENT;
  }
}

mhc_status_t mhct_call_run_rows(mhc_context *ctx, const mhct_call *c, int64_t t0, int64_t count) {
  mhct_tensor v[9];
  const mhct_tensor *src[9] = {c->x,            c->residual,     c->post_mix,
                               c->comb_mix,     c->residual_out, c->post_mix_out,
                               c->comb_mix_out, c->layer_input_out, c->out};
  for (int i = 0; i < 9; ++i)
    if (src[i]) mhct_tensor_view_rows(&v[i], src[i], t0, count);
  mhct_call s = *c;
  s.x = c->x ? &v[0] : NULL;
  s.residual = c->residual ? &v[1] : NULL;
  s.post_mix = c->post_mix ? &v[2] : NULL;
  s.comb_mix = c->comb_mix ? &v[3] : NULL;
  s.residual_out = c->residual_out ? &v[4] : NULL;
  s.post_mix_out = c->post_mix_out ? &v[5] : NULL;
  s.comb_mix_out = c->comb_mix_out ? &v[6] : NULL;
  s.layer_input_out = c->layer_input_out ? &v[7] : NULL;
  s.out = c->out ? &v[8] : NULL;
  return mhct_call_run(ctx, &s);
}

typedef struct par_call {
  mhc_context *ctx;
  const mhct_call *c;
  pthread_mutex_t mu;
  mhc_status_t status;
} par_call;

static void par_call_chunk(void *arg, int64_t begin, int64_t end) {
  par_call *pc = (par_call *)arg;
  const mhc_status_t st = mhct_call_run_rows(pc->ctx, pc->c, begin, end - begin);
  if (st != MHC_SUCCESS) {
    fprintf(stderr, "mhct: %s on tokens [%lld, %lld) failed: %s: %s\n", mhct_op_name(pc->c->op),
            (long long)begin, (long long)end, mhc_status_string(st), mhc_last_error_message());
    pthread_mutex_lock(&pc->mu);
    if (pc->status == MHC_SUCCESS) pc->status = st;
    pthread_mutex_unlock(&pc->mu);
  }
}

mhc_status_t mhct_call_run_parallel(mhc_context *ctx, const mhct_call *c, int nthreads) {
  const int64_t T = mhct_call_tokens(c);
  if (T <= 1) return mhct_call_run(ctx, c);
  par_call pc;
  pc.ctx = ctx;
  pc.c = c;
  pc.status = MHC_SUCCESS;
  pthread_mutex_init(&pc.mu, NULL);
  mhct_parallel_for(T, nthreads, par_call_chunk, &pc);
  pthread_mutex_destroy(&pc.mu);
  return pc.status;
}

mhc_context *mhct_cpu_context(void) {
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = MHC_BACKEND_CPU;
  mhc_context *ctx = NULL;
  const mhc_status_t st = mhc_context_create(&ctx, &cfg);
  if (st != MHC_SUCCESS) {
    fprintf(stderr, "mhct: CPU context: %s: %s\n", mhc_status_string(st), mhc_last_error_message());
    return NULL;
  }
  return ctx;
}

mhc_context *mhct_shared_cpu_ctx;

int mhct_setup_cpu_context(void **state) {
  (void)state;
  mhct_shared_cpu_ctx = mhct_cpu_context();
  return mhct_shared_cpu_ctx ? 0 : -1;
}

int mhct_teardown_cpu_context(void **state) {
  (void)state;
  return mhc_context_destroy(mhct_shared_cpu_ctx) == MHC_SUCCESS ? 0 : -1;
}

const char *mhct_op_name(int32_t op) {
  switch (op) {
    case MHC_OP_HC_PRE: return "hc_pre";
    case MHC_OP_HC_POST_PRE: return "hc_post_pre";
    case MHC_OP_HC_HEAD: return "hc_head";
    case MHC_OP_HC_POST: return "hc_post";
    default: return "unknown_op";
  }
}

int mhct_names_arg(const char *msg, const char *name) {
  const size_t n = strlen(name);
  for (const char *p = strstr(msg, name); p; p = strstr(p + 1, name)) {
    const int before = p == msg || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');
    const int after = !(isalnum((unsigned char)p[n]) || p[n] == '_');
    if (before && after) return 1;
  }
  return 0;
}

double mhct_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------------- */
/* Problems                                                                                 */
/* ---------------------------------------------------------------------------------------- */

#define PB_TENSORS(pb)                                                                        \
  {&(pb)->x,        &(pb)->residual,     &(pb)->post_mix,     &(pb)->comb_mix,              \
   &(pb)->fn,       &(pb)->scale,        &(pb)->base,         &(pb)->norm_weight,           \
   &(pb)->fn_head,  &(pb)->scale_head,   &(pb)->base_head,    &(pb)->residual_out,          \
   &(pb)->post_mix_out, &(pb)->comb_mix_out, &(pb)->layer_input_out, &(pb)->out}
#define PB_NUM_TENSORS 16
#define PB_NUM_INPUTS 11

int mhct_problem_alloc(mhct_problem *pb, int32_t device_type, int64_t T, int64_t H,
                       size_t slack) {
  return mhct_problem_alloc_ex(pb, device_type, T, H, slack, 0, 0);
}

int mhct_problem_alloc_ex(mhct_problem *pb, int32_t device_type, int64_t T, int64_t H,
                          size_t slack, uint64_t ob, uint64_t of) {
  memset(pb, 0, sizeof *pb);
  pb->T = T;
  pb->H = H;
  pb->device_type = device_type;
  const mhc_hc_params init = MHC_HC_PARAMS_INIT;
  pb->params = init;
  const int64_t s_x[2] = {T, H}, s_res[3] = {T, 4, H}, s_post[2] = {T, 4}, s_comb[3] = {T, 4, 4};
  const int64_t s_fn[2] = {24, 4 * H}, s_scale[1] = {3}, s_base[1] = {24}, s_nw[1] = {H};
  const int64_t s_fnh[2] = {4, 4 * H}, s_sh[1] = {1}, s_bh[1] = {4};
  int rc = 0;
  rc |= mhct_tensor_alloc_ex(&pb->x, device_type, MHCT_BF16, 2, s_x, ob, slack);
  rc |= mhct_tensor_alloc_ex(&pb->residual, device_type, MHCT_BF16, 3, s_res, ob, slack);
  rc |= mhct_tensor_alloc_ex(&pb->post_mix, device_type, MHCT_F32, 2, s_post, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->comb_mix, device_type, MHCT_F32, 3, s_comb, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->fn, device_type, MHCT_F32, 2, s_fn, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->scale, device_type, MHCT_F32, 1, s_scale, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->base, device_type, MHCT_F32, 1, s_base, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->norm_weight, device_type, MHCT_BF16, 1, s_nw, ob, slack);
  rc |= mhct_tensor_alloc_ex(&pb->fn_head, device_type, MHCT_F32, 2, s_fnh, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->scale_head, device_type, MHCT_F32, 1, s_sh, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->base_head, device_type, MHCT_F32, 1, s_bh, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->residual_out, device_type, MHCT_BF16, 3, s_res, ob, slack);
  rc |= mhct_tensor_alloc_ex(&pb->post_mix_out, device_type, MHCT_F32, 2, s_post, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->comb_mix_out, device_type, MHCT_F32, 3, s_comb, of, slack);
  rc |= mhct_tensor_alloc_ex(&pb->layer_input_out, device_type, MHCT_BF16, 2, s_x, ob, slack);
  rc |= mhct_tensor_alloc_ex(&pb->out, device_type, MHCT_BF16, 2, s_x, ob, slack);
  if (rc != 0) {
    mhct_problem_free(pb);
    return -1;
  }
  return 0;
}

void mhct_problem_free(mhct_problem *pb) {
  mhct_tensor *all[PB_NUM_TENSORS] = PB_TENSORS(pb);
  for (int i = 0; i < PB_NUM_TENSORS; ++i) mhct_tensor_free(all[i]);
  if (pb->workspace) free_bytes(pb->workspace, pb->device_type);
  memset(pb, 0, sizeof *pb);
}

enum {
  TAG_X = 1, TAG_RES, TAG_POST, TAG_COMB, TAG_FN, TAG_SCALE, TAG_BASE, TAG_NW,
  TAG_FNH, TAG_SH, TAG_BH
};

typedef struct fill_job {
  mhct_problem *pb;
  mhct_inputs family;
  uint64_t seed;
} fill_job;

static void fill_tokens(void *arg, int64_t begin, int64_t end) {
  fill_job *j = (fill_job *)arg;
  mhct_problem *pb = j->pb;
  const int64_t H = pb->H;
  uint16_t *x = (uint16_t *)mhct_tensor_ptr(&pb->x);
  uint16_t *res = (uint16_t *)mhct_tensor_ptr(&pb->residual);
  float *post = (float *)mhct_tensor_ptr(&pb->post_mix);
  float *comb = (float *)mhct_tensor_ptr(&pb->comb_mix);
  mhct_rng r;
  for (int64_t t = begin; t < end; ++t) {
    mhct_rng_seed(&r, mhct_seed_mix(j->seed, TAG_X, (uint64_t)t));
    for (int64_t h = 0; h < H; ++h) x[t * H + h] = mhct_f64_to_bf16(mhct_rng_normal(&r));
    mhct_rng_seed(&r, mhct_seed_mix(j->seed, TAG_RES, (uint64_t)t));
    for (int64_t k = 0; k < 4 * H; ++k) res[t * 4 * H + k] = mhct_f64_to_bf16(mhct_rng_normal(&r));
    mhct_rng_seed(&r, mhct_seed_mix(j->seed, TAG_POST, (uint64_t)t));
    for (int i = 0; i < 4; ++i) {
      const double z = mhct_rng_normal(&r);
      post[t * 4 + i] =
          (float)(j->family == MHCT_INPUTS_MODEL ? 2.0 / (1.0 + exp(-z)) : z);
    }
    mhct_rng_seed(&r, mhct_seed_mix(j->seed, TAG_COMB, (uint64_t)t));
    double c[4][4];
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) c[a][b] = mhct_rng_normal(&r);
    if (j->family == MHCT_INPUTS_MODEL) mhcr_sinkhorn(c, 20, 1e-6);
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 4; ++b) comb[t * 16 + a * 4 + b] = (float)c[a][b];
  }
}

/* fn-like [rows, 4H]: randn * 1e-4 * (1 + 0.01 * stream), stream = k / H. */
static void fill_fn(float *fn, int rows, int64_t H, uint64_t seed, int tag) {
  mhct_rng r;
  for (int o = 0; o < rows; ++o) {
    mhct_rng_seed(&r, mhct_seed_mix(seed, (uint64_t)tag, (uint64_t)o));
    for (int64_t k = 0; k < 4 * H; ++k) {
      const double stream = (double)(k / H);
      fn[o * 4 * H + k] = (float)(mhct_rng_normal(&r) * 1e-4 * (1.0 + 0.01 * stream));
    }
  }
}

static void fill_vec(float *v, int n, double mul, uint64_t seed, int tag) {
  mhct_rng r;
  mhct_rng_seed(&r, mhct_seed_mix(seed, (uint64_t)tag, 0));
  for (int i = 0; i < n; ++i) v[i] = (float)(mhct_rng_normal(&r) * mul);
}

void mhct_problem_fill(mhct_problem *pb, mhct_inputs family, uint64_t seed) {
  fill_job j;
  j.pb = pb;
  j.family = family;
  j.seed = seed;
  mhct_parallel_for(pb->T, 0, fill_tokens, &j);
  const int64_t H = pb->H;
  fill_fn((float *)mhct_tensor_ptr(&pb->fn), 24, H, seed, TAG_FN);
  fill_vec((float *)mhct_tensor_ptr(&pb->scale), 3, 0.1, seed, TAG_SCALE);
  fill_vec((float *)mhct_tensor_ptr(&pb->base), 24, 0.1, seed, TAG_BASE);
  {
    uint16_t *nw = (uint16_t *)mhct_tensor_ptr(&pb->norm_weight);
    mhct_rng r;
    mhct_rng_seed(&r, mhct_seed_mix(seed, TAG_NW, 0));
    for (int64_t h = 0; h < H; ++h) nw[h] = mhct_f64_to_bf16(1.0 + 0.1 * mhct_rng_normal(&r));
  }
  fill_fn((float *)mhct_tensor_ptr(&pb->fn_head), 4, H, seed, TAG_FNH);
  fill_vec((float *)mhct_tensor_ptr(&pb->scale_head), 1, 0.1, seed, TAG_SH);
  fill_vec((float *)mhct_tensor_ptr(&pb->base_head), 4, 0.1, seed, TAG_BH);
  pb->params.post_mult = family == MHCT_INPUTS_MODEL ? 2.0f : 1.0f;
}

int mhct_problem_copy_inputs(mhct_problem *dst, const mhct_problem *src) {
  if (dst->T != src->T || dst->H != src->H) {
    fprintf(stderr, "mhct: problem copy between different sizes\n");
    return -1;
  }
  mhct_tensor *d[PB_NUM_TENSORS] = PB_TENSORS(dst);
  const mhct_problem *s_pb = src;
  const mhct_tensor *s[PB_NUM_TENSORS] = PB_TENSORS(s_pb);
  dst->params = src->params;
  for (int i = 0; i < PB_NUM_INPUTS; ++i)
    if (mhct_tensor_copy(d[i], s[i]) != 0) return -1;
  return 0;
}

int mhct_problem_alloc_workspace(mhct_problem *pb, const mhc_context *ctx) {
  const int32_t ops[3] = {MHC_OP_HC_PRE, MHC_OP_HC_POST_PRE, MHC_OP_HC_HEAD};
  size_t need = 0;
  for (int i = 0; i < 3; ++i) {
    size_t b = 0;
    const mhc_status_t st = mhc_workspace_size(ctx, ops[i], &pb->params, pb->T, pb->H, &b);
    if (st != MHC_SUCCESS) {
      fprintf(stderr, "mhct: mhc_workspace_size(%s): %s: %s\n", mhct_op_name(ops[i]),
              mhc_status_string(st), mhc_last_error_message());
      return -1;
    }
    if (b > need) need = b;
  }
  if (pb->workspace) {
    free_bytes(pb->workspace, pb->device_type);
    pb->workspace = NULL;
  }
  pb->workspace_bytes = need;
  if (need == 0) return 0;
  if (is_host(pb->device_type)) {
    if (posix_memalign(&pb->workspace, 256, need) != 0) pb->workspace = NULL;
  } else {
    pb->workspace = mhct_device_malloc(need);
  }
  return pb->workspace ? 0 : -1;
}

mhct_call mhct_problem_call(const mhct_problem *pb, int32_t op, int with_norm) {
  mhct_call c;
  memset(&c, 0, sizeof c);
  c.op = op;
  c.p = &pb->params;
  c.workspace = pb->workspace;
  c.workspace_bytes = pb->workspace_bytes;
  switch (op) {
    case MHC_OP_HC_POST:
      c.x = &pb->x;
      c.residual = &pb->residual;
      c.post_mix = &pb->post_mix;
      c.comb_mix = &pb->comb_mix;
      c.residual_out = &pb->residual_out;
      c.p = NULL;
      c.workspace = NULL;
      c.workspace_bytes = 0;
      break;
    case MHC_OP_HC_POST_PRE:
      c.x = &pb->x;
      c.post_mix = &pb->post_mix;
      c.comb_mix = &pb->comb_mix;
      c.residual_out = &pb->residual_out;
      /* fall through */
    case MHC_OP_HC_PRE:
      c.residual = &pb->residual;
      c.fn = &pb->fn;
      c.scale = &pb->scale;
      c.base = &pb->base;
      c.norm_weight = with_norm ? &pb->norm_weight : NULL;
      c.post_mix_out = &pb->post_mix_out;
      c.comb_mix_out = &pb->comb_mix_out;
      c.layer_input_out = &pb->layer_input_out;
      break;
    case MHC_OP_HC_HEAD:
      c.residual = &pb->residual;
      c.fn_head = &pb->fn_head;
      c.scale_head = &pb->scale_head;
      c.base_head = &pb->base_head;
      c.out = &pb->out;
      break;
    default:
      break;
  }
  return c;
}
