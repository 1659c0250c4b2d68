/* libFuzzer harness of the whole public mhc C API (CPU backend).
 *
 * The input bytes are a small program: up to kMaxOps operations, each an opcode byte followed
 * by its arguments. Every operator call is assembled from arbitrary DLTensor descriptors
 * (shapes including negative values and values whose 64-bit products overflow, strides,
 * dtypes, device types/ids, ndim in and out of range, byte_offsets, NULL tensors, NULL shape
 * and data pointers, aliasing buffers), arbitrary mhc_hc_params and mhc_context_config structs,
 * live, NULL, destroyed and forged context handles.
 *
 * Memory: whenever a descriptor claims a size the harness can allocate, its data pointer is
 * backed by a heap buffer of exactly the claimed extent (byte_offset + numel * element size),
 * so AddressSanitizer reports any access outside of what the descriptor claims. Descriptors
 * whose claimed extent is too large to allocate point at a 16-byte buffer ("lying"
 * descriptors); they are only passed when the call must be rejected by the contract in
 * include/mhc/mhc.h, or when T = 0 (nothing is read). Otherwise the call is skipped.
 *
 * Besides "no crash, no leak, no undefined behaviour" every call is checked against the
 * contract (an independent model of include/mhc/mhc.h, kept in this file):
 *   - every status is one of MHC_SUCCESS .. MHC_ERROR_INTERNAL (0..9);
 *   - every failure leaves a non-empty mhc_last_error_message();
 *   - accept/reject agrees with the model of validation (verdict());
 *   - a rejected call writes nothing; an accepted call never writes its inputs;
 *   - an invalid handle gives MHC_ERROR_INVALID_HANDLE, on failure create sets *out = NULL;
 *   - a clean accepted hc_post_pre equals hc_post followed by hc_pre, bit for bit.
 * A broken check prints what was passed and aborts, which libFuzzer reports as a crash.
 *
 * Found so far (fixed in src/validate.cpp, regression tests in
 * tests/hardening/test_regressions.c): device_type values outside the DLDeviceType enum
 * loaded as the enum (UBSan), and pointer arithmetic on data + byte_offset of empty tensors
 * (UBSan pointer overflow).
 */
#include <mhc/mhc.h>

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define kMaxOps 8
#define kMaxTensors 12
#define kTensorCap (256u * 1024u) /* largest claimed extent the harness backs with memory */
#define kLieBytes 16              /* size of the buffer behind a lying descriptor */
#define kMaxHidden (INT64_C(1) << 22)
#define kMaxTokens (INT64_C(1) << 31)
#define kMaxBytes (INT64_C(1) << 60)

/* ---------------------------------------------------------------------------------------- */
/* Input decoding: reads past the end return zeros, which always decode to the plain, valid */
/* choice, so short inputs make valid calls.                                                 */
/* ---------------------------------------------------------------------------------------- */
typedef struct {
  const uint8_t *p;
  size_t n;
} Src;

static uint8_t u8(Src *s) {
  if (s->n == 0) return 0;
  s->n--;
  return *s->p++;
}
static uint16_t u16(Src *s) { uint16_t v = u8(s); return (uint16_t)(v | (uint16_t)u8(s) << 8); }
static uint32_t u32(Src *s) { uint32_t v = u16(s); return v | (uint32_t)u16(s) << 16; }
static uint64_t u64(Src *s) { uint64_t v = u32(s); return v | (uint64_t)u32(s) << 32; }

static const int64_t kI64[] = {
    0, 1, 2, 3, 4, 5, 7, 8, 16, 23, 24, 25, 63, 64, 65, 255, -1, -2, -4, -24,
    INT32_MAX, (int64_t)INT32_MAX + 1, (int64_t)1 << 32, ((int64_t)1 << 32) + 1,
    (int64_t)1 << 22, ((int64_t)1 << 22) + 1, ((int64_t)1 << 22) - 1, (int64_t)1 << 30,
    (int64_t)1 << 40, (int64_t)1 << 58, (int64_t)1 << 59, (int64_t)1 << 60, (int64_t)1 << 61,
    (int64_t)1 << 62, INT64_MAX, INT64_MIN, INT64_MIN + 1, INT64_MAX / 2 + 1,
    INT64_MAX / 3, INT64_MAX / 4 + 1, INT64_MAX / 24 + 1, INT64_MAX / 96 + 1,
    (int64_t)0x4000000000000001LL, (int64_t)0x8000000000000008ULL};
#define N_I64 (sizeof kI64 / sizeof kI64[0])

/* An arbitrary 64-bit value: a table entry, a small signed delta from `near`, or raw bits. */
static int64_t fuzz_i64(Src *s, int64_t near) {
  const uint8_t sel = u8(s);
  if (sel < N_I64) return kI64[sel];
  if (sel < 192) return (int64_t)((uint64_t)near + (uint64_t)(int64_t)(int8_t)u8(s));
  return (int64_t)u64(s);
}

static const uint64_t kU64[] = {0, 1, 2, 3, 4, 6, 7, 8, 15, 16, 17, 64, 4096,
                                (uint64_t)1 << 32, (uint64_t)1 << 40, (uint64_t)1 << 60,
                                ((uint64_t)1 << 60) + 2, ((uint64_t)1 << 60) + 4,
                                (uint64_t)1 << 63, UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 3,
                                UINT64_MAX - 63};
#define N_U64 (sizeof kU64 / sizeof kU64[0])
static uint64_t fuzz_u64(Src *s) {
  const uint8_t sel = u8(s);
  return sel < N_U64 ? kU64[sel] : u64(s);
}

static const int32_t kI32[] = {0, 1, 2, 3, 4, 5, 8, 9, 16, 64, 1000, 1001, -1, -3, INT32_MAX,
                               INT32_MIN, 127, 128, 255, 256};
#define N_I32 (sizeof kI32 / sizeof kI32[0])
static int32_t fuzz_i32(Src *s) {
  const uint8_t sel = u8(s);
  return sel < N_I32 ? kI32[sel] : (int32_t)u32(s);
}

static float f32_from_bits(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
static float fuzz_f32(Src *s) {
  static const uint32_t kBits[] = {
      0x00000000u /* 0 */,        0x80000000u /* -0 */,      0x7fc00000u /* NaN */,
      0xffc00000u /* -NaN */,     0x7f800001u /* sNaN */,    0x7f800000u /* inf */,
      0xff800000u /* -inf */,     0x00000001u /* denorm */,  0x00800000u /* FLT_MIN */,
      0x7f7fffffu /* FLT_MAX */,  0xff7fffffu /* -FLT_MAX */, 0x3f800000u /* 1 */,
      0xbf800000u /* -1 */,       0x358637bdu /* 1e-6 */,    0x40000000u /* 2 */,
      0x7149f2cau /* 1e30 */};
  const uint8_t sel = u8(s);
  if (sel < sizeof kBits / sizeof kBits[0]) return f32_from_bits(kBits[sel]);
  return f32_from_bits(u32(s));
}

/* ---------------------------------------------------------------------------------------- */
/* Contract checks                                                                          */
/* ---------------------------------------------------------------------------------------- */
static const char *g_what = ""; /* the operation being checked, for failure reports */
static int g_trace;             /* MHC_FUZZ_TRACE=1: print every operator call */

static void die(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "\n*** mhc contract violation in %s: ", g_what);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n    last error message: \"%s\"\n", mhc_last_error_message());
  abort();
}

/* Every status in 0..9; every failure leaves a message; the status has a name. */
static void check_status(mhc_status_t st) {
  if (st < MHC_SUCCESS || st > MHC_ERROR_INTERNAL) die("status %d is outside 0..9", (int)st);
  const char *name = mhc_status_string(st);
  if (name == NULL || strncmp(name, "MHC_", 4) != 0) die("status %d has no name", (int)st);
  const char *msg = mhc_last_error_message();
  if (msg == NULL) die("mhc_last_error_message() returned NULL");
  if (st != MHC_SUCCESS && msg[0] == '\0') die("%s without an error message", name);
  (void)strlen(msg);
}

/* ---------------------------------------------------------------------------------------- */
/* Contexts: one long-lived CPU context plus per-input slots                               */
/* ---------------------------------------------------------------------------------------- */
#define N_SLOTS 4
static mhc_context *g_ctx;         /* created once, never destroyed (reachable: no leak) */
static mhc_context *slot[N_SLOTS]; /* live contexts created by this input */
static mhc_context *dead[N_SLOTS]; /* handles of contexts this input destroyed */
static struct { uint64_t words[8]; } g_forged; /* an address that never was a context */

static int is_live(const mhc_context *c) {
  if (c == NULL) return 0;
  if (c == g_ctx) return 1;
  for (int i = 0; i < N_SLOTS; ++i)
    if (slot[i] == c) return 1;
  return 0;
}

/* Picks a context handle: mostly the live global one. */
static mhc_context *pick_ctx(Src *s) {
  const uint8_t sel = u8(s);
  switch (sel % 16) {
    case 1: case 2: case 3: case 4: return slot[(sel % 16) - 1]; /* may be NULL */
    case 5: return NULL;
    case 6: return (mhc_context *)&g_forged;
    case 7: case 8: return dead[(sel >> 4) % N_SLOTS]; /* destroyed (or NULL) */
    case 9: return (mhc_context *)((char *)g_ctx + 8); /* inside a live context */
    default: return g_ctx;
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Tensors                                                                                  */
/* ---------------------------------------------------------------------------------------- */
enum Shape { S_RES, S_TH, S_PM, S_COMB, S_FN24, S_FN4, S_3, S_24, S_4, S_H, S_S };

typedef struct {
  const char *name;
  int bf16;     /* else float32 */
  int output;
  int optional; /* NULL allowed */
  enum Shape shape;
} Role;

typedef struct {
  DLTensor t;
  int present;       /* 0: the call gets NULL */
  int64_t *shape;    /* heap, exactly max(ndim, 0) entries when 0 <= ndim <= 64, else 8 */
  int64_t *strides;  /* heap, same length, or NULL */
  uint8_t *buf;      /* heap buffer owned by this tensor (NULL if data is NULL/aliased) */
  size_t buf_bytes;
  uint8_t *snap;     /* copy of buf before the call */
  int lying;         /* data does not back the claimed extent */
  int fill;          /* how the buffer content is generated */
  uint32_t seed;
} HT;

typedef struct {
  int n;
  const Role *roles;
  HT ht[kMaxTensors];
  int64_t T, H;          /* the shape the clean descriptors claim */
  int mutated;           /* any descriptor was mutated */
} Call;

static int64_t esize(const Role *r) { return r->bf16 ? 2 : 4; }

/* Shape of a clean descriptor of role r for (T, H); returns ndim. */
static int clean_shape(const Role *r, int64_t T, int64_t H, int pm3, int64_t S, int64_t d[3]) {
  switch (r->shape) {
    case S_RES: d[0] = T; d[1] = 4; d[2] = H; return 3;
    case S_TH: d[0] = T; d[1] = H; return 2;
    case S_PM: d[0] = T; d[1] = 4; d[2] = 1; return pm3 ? 3 : 2;
    case S_COMB: d[0] = T; d[1] = 4; d[2] = 4; return 3;
    case S_FN24: d[0] = 24; d[1] = 4 * H; return 2;
    case S_FN4: d[0] = 4; d[1] = 4 * H; return 2;
    case S_3: d[0] = 3; return 1;
    case S_24: d[0] = 24; return 1;
    case S_4: d[0] = 4; return 1;
    case S_H: d[0] = H; return 1;
    case S_S: d[0] = S; return 1;
  }
  return 0;
}

/* Hot loops of the harness itself get no coverage instrumentation (it would only slow the
 * fuzzer down: they do not depend on the input's structure). */
#if defined(__clang__) && __clang_major__ >= 13
#define NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else
#define NO_COVERAGE
#endif

static inline uint32_t xorshift(uint32_t *st) {
  uint32_t x = *st ? *st : 0x9e3779b9u;
  x ^= x << 13; x ^= x >> 17; x ^= x << 5;
  return *st = x;
}

static inline uint16_t bf16_of(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* Fills an input buffer: moderate random values, raw bits, special values or zeros. */
NO_COVERAGE static void fill_buffer(uint8_t *b, size_t bytes, int bf16, int mode, uint32_t seed) {
  static const uint32_t kSpecial[] = {0x7fc00000u, 0x7f800000u, 0xff800000u, 0x80000000u,
                                      0x00000001u, 0x7f7fffffu, 0x00800000u, 0x3f800000u};
  uint32_t st = seed * 2654435761u + 1u;
  if (mode == 3) { memset(b, 0, bytes); return; }
  if (bf16) {
    for (size_t i = 0; i + 1 < bytes; i += 2) {
      uint32_t r = xorshift(&st);
      uint16_t v;
      if (mode == 1) v = (uint16_t)r;
      else if (mode == 2 && (r & 7) == 0) v = (uint16_t)(kSpecial[(r >> 3) & 7] >> 16);
      else v = bf16_of(((float)(int32_t)(r >> 8) / 8388608.0f) - 1.0f);
      memcpy(b + i, &v, 2);
    }
    if (bytes & 1) b[bytes - 1] = 0x5a;
  } else {
    for (size_t i = 0; i + 3 < bytes; i += 4) {
      uint32_t r = xorshift(&st);
      float v;
      if (mode == 1) v = f32_from_bits(r);
      else if (mode == 2 && (r & 7) == 0) v = f32_from_bits(kSpecial[(r >> 3) & 7]);
      else v = ((float)(r >> 8) / 8388608.0f - 1.0f) * 0.05f;
      memcpy(b + i, &v, 4);
    }
    for (size_t i = bytes & ~(size_t)3; i < bytes; ++i) b[i] = 0x5a;
  }
}

static void ht_free(HT *h) {
  free(h->shape);
  free(h->strides);
  free(h->buf);
  free(h->snap);
  memset(h, 0, sizeof *h);
}

static void call_free(Call *c) {
  for (int i = 0; i < c->n; ++i) ht_free(&c->ht[i]);
}

/* Claimed element count of a descriptor (ndim 0..8, shape set, dims >= 0, no overflow). */
static int claimed_numel(const DLTensor *t, int64_t *numel) {
  if (t->ndim < 0 || t->ndim > 8) return 0;
  if (t->ndim > 0 && t->shape == NULL) return 0;
  int64_t n = 1;
  for (int i = 0; i < t->ndim; ++i) {
    if (t->shape[i] < 0) return 0;
    if (__builtin_mul_overflow(n, t->shape[i], &n)) return 0;
  }
  *numel = n;
  return 1;
}

/* Builds the descriptor of role r: clean for (T, H) unless the input mutates it. */
static void build_tensor(Src *s, Call *c, int i) {
  const Role *r = &c->roles[i];
  HT *h = &c->ht[i];
  memset(h, 0, sizeof *h);
  h->present = !(r->optional && (u8(s) & 1)); /* optional: present or NULL */
  const uint8_t var = u8(s);                   /* variations of a clean descriptor */
  const uint8_t mut = u8(s);                   /* >= 0xC0: mutate */
  h->fill = u8(s) & 3;
  h->seed = u8(s);

  int64_t d[3];
  const int ndim = clean_shape(r, c->T, c->H, var & 16, 1 + ((var >> 5) & 3), d);
  h->t.ndim = ndim;
  h->t.dtype.code = r->bf16 ? kDLBfloat : kDLFloat;
  h->t.dtype.bits = r->bf16 ? 16 : 32;
  h->t.dtype.lanes = 1;
  h->t.device.device_type = (var & 1) ? kDLCUDAHost : kDLCPU;
  h->t.device.device_id = 0;
  h->t.byte_offset = (var & 4) ? (uint64_t)esize(r) * (1 + ((var >> 3) & 1)) : 0;
  h->shape = calloc(ndim > 0 ? (size_t)ndim : 1, sizeof(int64_t));
  memcpy(h->shape, d, (size_t)ndim * sizeof(int64_t));
  if (var & 2) { /* explicit dense strides; any value on size-1 dims */
    h->strides = calloc(ndim > 0 ? (size_t)ndim : 1, sizeof(int64_t));
    int64_t st = 1;
    for (int k = ndim - 1; k >= 0; --k) {
      h->strides[k] = (d[k] == 1 && (var & 128)) ? 12345 : st;
      st *= d[k];
    }
  }
  int data_mode = 0; /* 0 alloc, 1 NULL, 2 small buffer, 3 alias */
  int alias_of = -1;
  uint64_t alias_off = 0;

  if (mut >= 0xC0) {
    c->mutated = 1;
    const uint16_t m = u16(s);
    if (m & 1) h->present = 0;
    if (m & 2) { /* ndim */
      int32_t nd = fuzz_i32(s);
      int64_t *ns;
      size_t len = (nd >= 0 && nd <= 64) ? (size_t)nd : 8;
      ns = calloc(len ? len : 1, sizeof(int64_t));
      for (size_t k = 0; k < len; ++k) ns[k] = k < (size_t)ndim ? h->shape[k] : 1;
      free(h->shape);
      h->shape = ns;
      free(h->strides);
      h->strides = NULL;
      h->t.ndim = nd;
    }
    const int len = (h->t.ndim >= 0 && h->t.ndim <= 64) ? h->t.ndim : 8;
    if ((m & 4) && len > 0) { /* one or two dims */
      int k = u8(s) % len;
      h->shape[k] = fuzz_i64(s, h->shape[k]);
      if (m & 0x800) {
        k = u8(s) % len;
        h->shape[k] = fuzz_i64(s, h->shape[k]);
      }
    }
    if (m & 8) { /* arbitrary strides */
      free(h->strides);
      h->strides = calloc(len ? (size_t)len : 1, sizeof(int64_t));
      int64_t st = 1;
      for (int k = len - 1; k >= 0; --k) {
        h->strides[k] = st;
        st *= h->shape[k] > 0 && h->shape[k] < 4096 ? h->shape[k] : 1;
      }
      if (len > 0) {
        int k = u8(s) % len;
        h->strides[k] = fuzz_i64(s, h->strides[k]);
      }
    }
    if (m & 16) {
      h->t.dtype.code = u8(s);
      h->t.dtype.bits = u8(s);
      h->t.dtype.lanes = (u8(s) & 1) ? u16(s) : 1;
    }
    if (m & 32) {
      static const int32_t kDev[] = {kDLCPU, kDLCUDA, kDLCUDAHost, kDLOpenCL, kDLVulkan,
                                     kDLMetal, kDLROCM, kDLCUDAManaged, 0, 15, -1, 16, 17};
      const uint8_t sel = u8(s);
      int32_t type = sel < 13 ? kDev[sel] : (int32_t)u32(s);
      h->t.device.device_type = (DLDeviceType)type;
      h->t.device.device_id = fuzz_i32(s);
    }
    if (m & 64) h->t.byte_offset = fuzz_u64(s);
    if (m & 128) data_mode = 1;
    if (m & 256) data_mode = 2;
    if (m & 512) { free(h->shape); h->shape = NULL; }
    if (m & 1024) { data_mode = 3; alias_of = u8(s) % c->n; alias_off = u8(s) & 15; }
  }
  h->t.shape = h->shape;
  h->t.strides = h->strides;
  if (!h->present) return;

  /* Back the claimed extent with memory where possible. */
  int64_t numel = 0;
  uint64_t extent = 0;
  int sized = claimed_numel(&h->t, &numel) && numel <= kMaxBytes / esize(r);
  if (sized) sized = !__builtin_add_overflow(h->t.byte_offset, (uint64_t)(numel * esize(r)), &extent);
  if (data_mode == 3 && alias_of != i && sized) {
    HT *o = &c->ht[alias_of];
    if (alias_of < i && o->present && o->buf != NULL && !o->lying &&
        extent + alias_off <= o->buf_bytes) {
      h->t.data = o->buf + alias_off;
      if ((uintptr_t)h->t.data % 2) h->t.data = o->buf; /* keep the alias readable */
      return;
    }
    data_mode = 0;
  }
  if (data_mode == 1) { h->t.data = NULL; return; }
  if (data_mode == 0 && sized && extent <= kTensorCap) {
    h->buf_bytes = extent ? (size_t)extent : 1;
    h->buf = malloc(h->buf_bytes);
    if (r->output) memset(h->buf, 0xA5, h->buf_bytes);
    else fill_buffer(h->buf, h->buf_bytes, r->bf16, h->fill, h->seed);
    h->t.data = h->buf;
    if ((var & 8) && !(mut >= 0xC0)) { /* data already advanced, byte_offset 0 */
      h->t.data = h->buf + h->t.byte_offset;
      h->t.byte_offset = 0;
    }
    return;
  }
  /* Too large (or asked for): a lying descriptor over a tiny buffer. */
  h->buf_bytes = kLieBytes;
  h->buf = malloc(kLieBytes);
  memset(h->buf, r->output ? 0xA5 : 0, kLieBytes);
  h->t.data = h->buf;
  h->lying = !(sized && extent <= kLieBytes);
}

/* ---------------------------------------------------------------------------------------- */
/* The model of validation (include/mhc/mhc.h)                                              */
/* ---------------------------------------------------------------------------------------- */
enum { V_ACCEPT = 0, V_REJECT = 1 };

/* mhc_hc_params as documented; the library additionally caps sinkhorn_iters at 1000 and
 * requires finite pre_eps/post_mult and finite eps values (modelled here as well). */
static int params_ok(const mhc_hc_params *p) {
  if (p == NULL) return 0;
  if (p->size != sizeof(mhc_hc_params) || p->version != MHC_HC_PARAMS_VERSION) return 0;
  if (p->hc_mult != 4) return 0;
  if (p->sinkhorn_iters < 1 || p->sinkhorn_iters > 1000) return 0;
  if (!isfinite(p->rms_eps) || p->rms_eps < 0) return 0;
  if (!isfinite(p->pre_eps)) return 0;
  if (!isfinite(p->sinkhorn_eps) || p->sinkhorn_eps < 0) return 0;
  if (!isfinite(p->post_mult)) return 0;
  if (!isfinite(p->norm_eps) || p->norm_eps < 0) return 0;
  if (p->flags & ~(uint32_t)MHC_FLAG_BATCH_INVARIANT) return 0;
  return 1;
}

static int sizes_ok(int64_t T, int64_t H) {
  return T >= 0 && T < kMaxTokens && H >= 1 && H <= kMaxHidden;
}

/* Claimed bytes of tensor i, or -1 if not computable or above 2^60. */
static int64_t t_bytes(const Call *c, int i) {
  int64_t n = 0;
  if (!claimed_numel(&c->ht[i].t, &n) || n > kMaxBytes / esize(&c->roles[i])) return -1;
  return n * esize(&c->roles[i]);
}

/* Which rule of verdict_tensors() rejected the call (for failure reports). */
static int g_reject_rule;
#define REJECT(rule) return (g_reject_rule = (rule), V_REJECT)

/* Would a correct library accept this call? (Assumes ctx, params and weights struct are ok.) */
static int verdict_tensors(const Call *c, int res_index) {
  for (int i = 0; i < c->n; ++i) {
    const Role *r = &c->roles[i];
    const HT *h = &c->ht[i];
    if (!h->present) {
      if (r->optional) continue;
      REJECT(1);
    }
    const DLTensor *t = &h->t;
    const int want_nd = r->shape == S_RES || r->shape == S_COMB ? 3
                        : r->shape == S_TH || r->shape == S_FN24 || r->shape == S_FN4 ? 2
                                                                                          : 1;
    if (!(t->ndim == want_nd || (r->shape == S_PM && (t->ndim == 2 || t->ndim == 3))))
      REJECT(2);
    if (t->shape == NULL) REJECT(3);
    if (t->dtype.code != (r->bf16 ? kDLBfloat : kDLFloat) || t->dtype.bits != (r->bf16 ? 16 : 32) ||
        t->dtype.lanes != 1)
      REJECT(4);
    if (t->device.device_type != kDLCPU && t->device.device_type != kDLCUDAHost) REJECT(5);
    for (int k = 0; k < t->ndim; ++k)
      if (t->shape[k] < 0) REJECT(6);
  }
  const DLTensor *res = &c->ht[res_index].t;
  const int64_t T = res->shape[0], H = res->shape[2];
  if (res->shape[1] != 4 || !sizes_ok(T, H)) REJECT(7);
  for (int i = 0; i < c->n; ++i) {
    const HT *h = &c->ht[i];
    if (!h->present) continue;
    const DLTensor *t = &h->t;
    int64_t d[3];
    const Role *r = &c->roles[i];
    const int nd = clean_shape(r, T, H, t->ndim == 3, t->shape[0], d);
    if (nd != t->ndim) REJECT(8);
    for (int k = 0; k < nd; ++k)
      if (t->shape[k] != d[k]) REJECT(9);
    if (r->shape == S_S && t->shape[0] < 1) REJECT(10);
    if (t_bytes(c, i) < 0) REJECT(11); /* more than 2^60 bytes (only [S] can be) */
    if (t->strides != NULL && t_bytes(c, i) > 0) { /* an empty tensor has no layout */
      int64_t st = 1;
      for (int k = nd - 1; k >= 0; --k) {
        if (t->shape[k] != 1 && t->strides[k] != st) REJECT(12);
        st *= t->shape[k];
      }
    }
  }
  /* Data pointers of non-empty tensors. */
  for (int i = 0; i < c->n; ++i) {
    const HT *h = &c->ht[i];
    if (!h->present) continue;
    const int64_t bytes = t_bytes(c, i);
    if (bytes <= 0) continue;
    if (h->t.data == NULL) REJECT(13);
    if (h->t.byte_offset > (uint64_t)kMaxBytes) REJECT(14);
    uintptr_t a;
    if (__builtin_add_overflow((uintptr_t)h->t.data, (uintptr_t)h->t.byte_offset, &a) ||
        a + (uintptr_t)bytes < a)
      REJECT(15);
    if (a % (uintptr_t)esize(&c->roles[i]) != 0) REJECT(16);
  }
  /* Outputs overlap nothing. */
  for (int i = 0; i < c->n; ++i) {
    for (int j = 0; j < i; ++j) {
      if (!c->roles[i].output && !c->roles[j].output) continue;
      if (!c->ht[i].present || !c->ht[j].present) continue;
      const int64_t bi = t_bytes(c, i), bj = t_bytes(c, j);
      if (bi <= 0 || bj <= 0) continue;
      const uintptr_t ai = (uintptr_t)c->ht[i].t.data + (uintptr_t)c->ht[i].t.byte_offset;
      const uintptr_t aj = (uintptr_t)c->ht[j].t.data + (uintptr_t)c->ht[j].t.byte_offset;
      if (ai < aj + (uintptr_t)bj && aj < ai + (uintptr_t)bi) REJECT(17);
    }
  }
  return V_ACCEPT;
}

/* T of the call if the residual is well-formed, else -1. */
static int64_t call_tokens(const Call *c, int res_index) {
  const HT *h = &c->ht[res_index];
  if (!h->present || h->t.ndim != 3 || h->t.shape == NULL) return -1;
  return h->t.shape[0];
}

static int any_lying(const Call *c) {
  for (int i = 0; i < c->n; ++i)
    if (c->ht[i].present && c->ht[i].lying && t_bytes(c, i) != 0) return 1;
  return 0;
}

static void snapshot(Call *c) {
  for (int i = 0; i < c->n; ++i) {
    HT *h = &c->ht[i];
    if (h->buf == NULL) continue;
    h->snap = malloc(h->buf_bytes);
    memcpy(h->snap, h->buf, h->buf_bytes);
  }
}

/* After the call: a rejected call changed nothing, an accepted one only its outputs. */
static void check_writes(const Call *c, mhc_status_t st) {
  for (int i = 0; i < c->n; ++i) {
    const HT *h = &c->ht[i];
    if (h->buf == NULL) continue;
    if (st != MHC_SUCCESS || !c->roles[i].output) {
      /* a buffer written by an accepted call can only be an output's (aliases were checked) */
      int written_by_output = 0;
      if (st == MHC_SUCCESS)
        for (int j = 0; j < c->n; ++j)
          if (c->roles[j].output && c->ht[j].present && c->ht[j].t.data != NULL &&
              (uint8_t *)c->ht[j].t.data >= h->buf &&
              (uint8_t *)c->ht[j].t.data < h->buf + h->buf_bytes)
            written_by_output = 1;
      if (!written_by_output && memcmp(h->snap, h->buf, h->buf_bytes) != 0)
        die("%s call modified %s (%s)", st == MHC_SUCCESS ? "an accepted" : "a rejected",
            c->roles[i].name, st == MHC_SUCCESS ? "an input" : "nothing may be written");
    }
  }
}

static void describe(const Call *c) {
  for (int i = 0; i < c->n; ++i) {
    const HT *h = &c->ht[i];
    fprintf(stderr, "    %-16s", c->roles[i].name);
    if (!h->present) { fprintf(stderr, "NULL\n"); continue; }
    fprintf(stderr, "ndim %d shape ", h->t.ndim);
    if (h->t.shape == NULL) fprintf(stderr, "NULL");
    else
      for (int k = 0; k < (h->t.ndim >= 0 && h->t.ndim <= 8 ? h->t.ndim : 0); ++k)
        fprintf(stderr, "%s%lld", k ? "," : "[", (long long)h->t.shape[k]);
    fprintf(stderr, "] strides ");
    if (h->t.strides == NULL) fprintf(stderr, "NULL");
    else
      for (int k = 0; k < (h->t.ndim >= 0 && h->t.ndim <= 8 ? h->t.ndim : 0); ++k)
        fprintf(stderr, "%s%lld", k ? "," : "[", (long long)h->t.strides[k]);
    fprintf(stderr, "%s dtype %u/%u/%u dev %d:%d off %llu data %p%s\n",
            h->t.strides ? "]" : "", h->t.dtype.code, h->t.dtype.bits, h->t.dtype.lanes,
            (int)h->t.device.device_type, h->t.device.device_id,
            (unsigned long long)h->t.byte_offset, h->t.data, h->lying ? " (lying)" : "");
  }
}

/* ---------------------------------------------------------------------------------------- */
/* Parameters and configs                                                                   */
/* ---------------------------------------------------------------------------------------- */
static const mhc_hc_params *make_params(Src *s, mhc_hc_params *p, int *clean) {
  const mhc_hc_params init = MHC_HC_PARAMS_INIT;
  *p = init;
  *clean = 1;
  const uint8_t mode = u8(s);
  if (mode < 0xA0) { /* valid, with a few ordinary variations */
    if (mode & 1) p->post_mult = 1.0f;
    if (mode & 2) p->flags = MHC_FLAG_BATCH_INVARIANT;
    if (mode & 4) p->sinkhorn_iters = 1 + (mode >> 3);
    return p;
  }
  *clean = 0;
  if (mode < 0xF0) { /* one to three fields fuzzed */
    const int nf = 1 + (mode & 1) + ((mode >> 1) & 1);
    for (int k = 0; k < nf; ++k) {
      switch (u8(s) % 12) {
        case 0: p->size = (size_t)fuzz_u64(s); break;
        case 1: p->version = (uint32_t)fuzz_i32(s); break;
        case 2: p->hc_mult = fuzz_i32(s); break;
        case 3: p->sinkhorn_iters = fuzz_i32(s); break;
        case 4: p->rms_eps = fuzz_f32(s); break;
        case 5: p->pre_eps = fuzz_f32(s); break;
        case 6: p->sinkhorn_eps = fuzz_f32(s); break;
        case 7: p->post_mult = fuzz_f32(s); break;
        case 8: p->norm_eps = fuzz_f32(s); break;
        case 9: p->flags = (uint32_t)fuzz_i32(s); break;
        case 10: p->size = sizeof(mhc_hc_params) - 4; break;
        default: p->size = sizeof(mhc_hc_params) + 8; break;
      }
    }
    return p;
  }
  if (mode < 0xF8) return NULL;
  /* raw bytes */
  uint8_t raw[sizeof(mhc_hc_params)];
  for (size_t k = 0; k < sizeof raw; ++k) raw[k] = u8(s);
  memcpy(p, raw, sizeof raw);
  if (mode & 1) { p->size = sizeof(mhc_hc_params); p->version = MHC_HC_PARAMS_VERSION; }
  return p;
}

/* ---------------------------------------------------------------------------------------- */
/* Operators                                                                                */
/* ---------------------------------------------------------------------------------------- */
static const Role kPreRoles[] = {
    {"residual", 1, 0, 0, S_RES},      {"fn", 0, 0, 0, S_FN24},
    {"scale", 0, 0, 0, S_3},           {"base", 0, 0, 0, S_24},
    {"norm_weight", 1, 0, 1, S_H},     {"post_mix_out", 0, 1, 0, S_PM},
    {"comb_mix_out", 0, 1, 0, S_COMB}, {"layer_input_out", 1, 1, 0, S_TH}};
static const Role kPostRoles[] = {{"x", 1, 0, 0, S_TH},
                                  {"residual", 1, 0, 0, S_RES},
                                  {"post_mix", 0, 0, 0, S_PM},
                                  {"comb_mix", 0, 0, 0, S_COMB},
                                  {"residual_out", 1, 1, 0, S_RES}};
static const Role kPostPreRoles[] = {
    {"x", 1, 0, 0, S_TH},           {"residual", 1, 0, 0, S_RES},
    {"post_mix", 0, 0, 0, S_PM},    {"comb_mix", 0, 0, 0, S_COMB},
    {"fn", 0, 0, 0, S_FN24},        {"scale", 0, 0, 0, S_3},
    {"base", 0, 0, 0, S_24},        {"norm_weight", 1, 0, 1, S_H},
    {"residual_out", 1, 1, 0, S_RES}, {"post_mix_out", 0, 1, 0, S_PM},
    {"comb_mix_out", 0, 1, 0, S_COMB}, {"layer_input_out", 1, 1, 0, S_TH}};
static const Role kHeadRoles[] = {{"fn_head", 0, 0, 0, S_FN4}, {"scale", 0, 0, 0, S_S},
                                  {"base", 0, 0, 0, S_4},      {"residual", 1, 0, 0, S_RES},
                                  {"out", 1, 1, 0, S_TH}};

enum { OP_PRE, OP_POST, OP_POST_PRE, OP_HEAD };

static const DLTensor *arg(const Call *c, int i) { return c->ht[i].present ? &c->ht[i].t : NULL; }

/* hc_post then hc_pre into fresh buffers must give the bits hc_post_pre gave. */
static void check_fused_equals_unfused(const Call *c, mhc_context *ctx, const mhc_hc_params *p,
                                       const mhc_hc_weights *w) {
  const int64_t T = c->T, H = c->H;
  int64_t sr[3] = {T, 4, H}, spm[2] = {T, 4}, sc[3] = {T, 4, 4}, sl[2] = {T, H};
  const size_t nr = (size_t)(T * 4 * H), nl = (size_t)(T * H);
  uint16_t *r2 = malloc(nr * 2), *l2 = malloc(nl * 2);
  float *pm2 = malloc((size_t)T * 16), *cm2 = malloc((size_t)T * 64);
  DLTensor tr = {r2, {kDLCPU, 0}, 3, {kDLBfloat, 16, 1}, sr, NULL, 0};
  DLTensor tpm = {pm2, {kDLCPU, 0}, 2, {kDLFloat, 32, 1}, spm, NULL, 0};
  DLTensor tcm = {cm2, {kDLCPU, 0}, 3, {kDLFloat, 32, 1}, sc, NULL, 0};
  DLTensor tl = {l2, {kDLCPU, 0}, 2, {kDLBfloat, 16, 1}, sl, NULL, 0};
  mhc_status_t st = mhc_hc_post(ctx, arg(c, 0), arg(c, 1), arg(c, 2), arg(c, 3), &tr, NULL);
  if (st != MHC_SUCCESS) die("hc_post of an accepted hc_post_pre failed: %d", (int)st);
  st = mhc_hc_pre(ctx, p, w, &tr, &tpm, &tcm, &tl, NULL, 0, NULL);
  if (st != MHC_SUCCESS) die("hc_pre of an accepted hc_post_pre failed: %d", (int)st);
  const void *d_r = (const char *)c->ht[8].t.data + c->ht[8].t.byte_offset;
  const void *d_pm = (const char *)c->ht[9].t.data + c->ht[9].t.byte_offset;
  const void *d_cm = (const char *)c->ht[10].t.data + c->ht[10].t.byte_offset;
  const void *d_l = (const char *)c->ht[11].t.data + c->ht[11].t.byte_offset;
  if (memcmp(d_r, r2, nr * 2) != 0) die("hc_post_pre residual_out != hc_post");
  if (memcmp(d_pm, pm2, (size_t)T * 16) != 0) die("hc_post_pre post_mix_out != hc_pre");
  if (memcmp(d_cm, cm2, (size_t)T * 64) != 0) die("hc_post_pre comb_mix_out != hc_pre");
  if (memcmp(d_l, l2, nl * 2) != 0) die("hc_post_pre layer_input_out != hc_pre");
  free(r2); free(l2); free(pm2); free(cm2);
}

static void run_op(Src *s, int op) {
  static const char *kNames[] = {"mhc_hc_pre", "mhc_hc_post", "mhc_hc_post_pre", "mhc_hc_head"};
  g_what = kNames[op];
  Call c;
  memset(&c, 0, sizeof c);
  mhc_context *ctx = pick_ctx(s);
  const uint8_t tsel = u8(s);
  static const int64_t kT[] = {1, 2, 3, 4, 0, 1, 2, 1};
  c.T = kT[tsel & 7];
  c.H = 1 + (u8(s) % 64);
  mhc_hc_params pbuf;
  int p_clean = 1;
  const mhc_hc_params *p = op == OP_POST ? NULL : make_params(s, &pbuf, &p_clean);
  (void)p_clean;
  const int w_null = (op == OP_PRE || op == OP_POST_PRE) && u8(s) == 0xFF;

  switch (op) {
    case OP_PRE: c.roles = kPreRoles; c.n = 8; break;
    case OP_POST: c.roles = kPostRoles; c.n = 5; break;
    case OP_POST_PRE: c.roles = kPostPreRoles; c.n = 12; break;
    default: c.roles = kHeadRoles; c.n = 5; break;
  }
  for (int i = 0; i < c.n; ++i) build_tensor(s, &c, i);
  const int res_index = op == OP_PRE ? 0 : op == OP_HEAD ? 3 : 1;

  /* Workspace: the CPU backend needs none; pass anything. */
  static uint8_t ws_small[32];
  const uint8_t wsel = u8(s);
  void *ws = (wsel & 3) == 0 ? NULL : (wsel & 3) == 1 ? (void *)ws_small : (void *)(ws_small + 1);
  const size_t ws_bytes = (wsel & 4) ? (size_t)fuzz_u64(s) : 0;
  /* Stream: ignored by the CPU backend, so any value (never dereferenced). */
  struct CUstream_st *stream = (u8(s) & 1) ? (struct CUstream_st *)(uintptr_t)0xdeadbeef0ull : NULL;

  const int live = is_live(ctx);
  int v = V_REJECT;
  g_reject_rule = -1; /* -1: context, parameters or weights struct */
  if (live && (op == OP_POST || params_ok(p)) && !w_null) v = verdict_tensors(&c, res_index);
  const int64_t T = call_tokens(&c, res_index);
  if (v != V_REJECT && T != 0 && any_lying(&c)) { /* cannot back it with memory: skip */
    call_free(&c);
    return;
  }

  mhc_hc_weights w = {0};
  if (op == OP_PRE) w = (mhc_hc_weights){arg(&c, 1), arg(&c, 2), arg(&c, 3), arg(&c, 4)};
  if (op == OP_POST_PRE) w = (mhc_hc_weights){arg(&c, 4), arg(&c, 5), arg(&c, 6), arg(&c, 7)};

  snapshot(&c);
  mhc_status_t st;
  switch (op) {
    case OP_PRE:
      st = mhc_hc_pre(ctx, p, w_null ? NULL : &w, arg(&c, 0), arg(&c, 5), arg(&c, 6), arg(&c, 7),
                      ws, ws_bytes, stream);
      break;
    case OP_POST:
      st = mhc_hc_post(ctx, arg(&c, 0), arg(&c, 1), arg(&c, 2), arg(&c, 3), arg(&c, 4), stream);
      break;
    case OP_POST_PRE:
      st = mhc_hc_post_pre(ctx, p, w_null ? NULL : &w, arg(&c, 0), arg(&c, 1), arg(&c, 2),
                           arg(&c, 3), arg(&c, 8), arg(&c, 9), arg(&c, 10), arg(&c, 11), ws,
                           ws_bytes, stream);
      break;
    default:
      st = mhc_hc_head(ctx, p, arg(&c, 0), arg(&c, 1), arg(&c, 2), arg(&c, 3), arg(&c, 4), ws,
                       ws_bytes, stream);
      break;
  }
  check_status(st);
  if (g_trace)
    fprintf(stderr, "%s T=%lld H=%lld%s -> %s %s\n", g_what, (long long)c.T, (long long)c.H,
            c.mutated ? " (mutated)" : "", mhc_status_string(st),
            st ? mhc_last_error_message() : "");
  if (!live && st != MHC_ERROR_INVALID_HANDLE) die("invalid handle gave status %d", (int)st);
  if ((st == MHC_SUCCESS) != (v == V_ACCEPT)) {
    fprintf(stderr, "\n%s: library %s, the contract says %s (T=%lld H=%lld, rule %d)\n", g_what,
            st == MHC_SUCCESS ? "accepted" : mhc_status_string(st),
            v == V_ACCEPT ? "accept" : "reject", (long long)c.T, (long long)c.H,
            v == V_ACCEPT ? 0 : g_reject_rule);
    describe(&c);
    die("accept/reject disagrees with the contract");
  }
  check_writes(&c, st);
  if (op == OP_POST_PRE && st == MHC_SUCCESS && !c.mutated && c.T > 0)
    check_fused_equals_unfused(&c, ctx, p, &w);
  call_free(&c);
}

static void run_workspace_size(Src *s) {
  g_what = "mhc_workspace_size";
  mhc_context *ctx = pick_ctx(s);
  const int32_t op = (u8(s) & 1) ? fuzz_i32(s) : 1 + (u8(s) & 3);
  mhc_hc_params pbuf;
  int clean;
  const mhc_hc_params *p = make_params(s, &pbuf, &clean);
  const int64_t T = (u8(s) & 1) ? fuzz_i64(s, 4) : (u8(s) & 7);
  const int64_t H = (u8(s) & 1) ? fuzz_i64(s, 64) : 1 + (u8(s) & 63);
  const int null_out = u8(s) == 0xFF;
  size_t bytes = 12345;
  const mhc_status_t st = mhc_workspace_size(ctx, op, p, T, H, null_out ? NULL : &bytes);
  check_status(st);
  if (!is_live(ctx)) {
    if (st != MHC_ERROR_INVALID_HANDLE) die("invalid handle gave status %d", (int)st);
    return;
  }
  const int ok = !null_out && op >= 1 && op <= 4 && params_ok(p) && sizes_ok(T, H);
  if ((st == MHC_SUCCESS) != ok)
    die("op %d T %lld H %lld out %s: status %d, the contract says %s", (int)op, (long long)T,
        (long long)H, null_out ? "NULL" : "set", (int)st, ok ? "accept" : "reject");
  if (st == MHC_SUCCESS && bytes != 0) die("CPU backend workspace %zu != 0", bytes);
}

static void run_create(Src *s) {
  g_what = "mhc_context_create";
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = MHC_BACKEND_CPU;
  const uint8_t mode = u8(s);
  const mhc_context_config *pc = &cfg;
  if (mode & 1) cfg.flags = u8(s) & 3;
  if (mode >= 0xC0) {
    switch (mode & 0x0E) {
      case 0: pc = NULL; break; /* CUDA device 0: not available in this build */
      case 2: cfg.size = (size_t)fuzz_u64(s); break;
      case 4: cfg.version = (uint32_t)fuzz_i32(s); break;
      case 6: cfg.backend = fuzz_i32(s); break;
      case 8: cfg.device_id = fuzz_i32(s); break;
      case 10: cfg.flags = (uint32_t)fuzz_i32(s); break;
      case 12: { uint8_t raw[sizeof cfg]; for (size_t k = 0; k < sizeof raw; ++k) raw[k] = u8(s);
                 memcpy(&cfg, raw, sizeof cfg); break; }
      default: cfg.backend = MHC_BACKEND_CUDA; cfg.device_id = fuzz_i32(s); break;
    }
  }
  const int k = u8(s) % N_SLOTS;
  if (mode == 0xFF) { /* out == NULL */
    const mhc_status_t st = mhc_context_create(NULL, pc);
    check_status(st);
    if (st != MHC_ERROR_INVALID_ARGUMENT) die("create(NULL, cfg) gave %d", (int)st);
    return;
  }
  mhc_context *out = (mhc_context *)&g_forged; /* must be overwritten */
  const mhc_status_t st = mhc_context_create(&out, pc);
  check_status(st);
  const int ok = pc != NULL && pc->size == sizeof(mhc_context_config) &&
                 pc->version == MHC_CONTEXT_CONFIG_VERSION && pc->backend == MHC_BACKEND_CPU &&
                 pc->device_id == 0 && (pc->flags & ~3u) == 0;
  if ((st == MHC_SUCCESS) != ok) die("create: status %d, the contract says %s", (int)st, ok ? "accept" : "reject");
  if (st != MHC_SUCCESS) {
    if (out != NULL) die("failed create left *out = %p", (void *)out);
    return;
  }
  if (out == NULL) die("successful create returned NULL");
  if (slot[k] != NULL) {
    g_what = "mhc_context_destroy";
    const mhc_status_t d = mhc_context_destroy(slot[k]);
    check_status(d);
    if (d != MHC_SUCCESS) die("destroying a live context gave %d", (int)d);
    dead[k] = slot[k];
  }
  slot[k] = out;
  for (int j = 0; j < N_SLOTS; ++j) /* the allocator may reuse a dead context's address */
    if (dead[j] == out) dead[j] = NULL;
}

static void run_destroy(Src *s) {
  g_what = "mhc_context_destroy";
  const uint8_t sel = u8(s);
  const int k = sel % N_SLOTS;
  if (sel & 0x10) { /* a destroyed, forged or interior handle */
    mhc_context *h = (sel & 0x20) ? dead[k] : (sel & 0x40) ? (mhc_context *)((char *)g_ctx + 8)
                                                           : (mhc_context *)&g_forged;
    if (is_live(h)) return;
    const mhc_status_t st = mhc_context_destroy(h);
    check_status(st);
    const mhc_status_t want = h == NULL ? MHC_SUCCESS : MHC_ERROR_INVALID_HANDLE;
    if (st != want) die("destroy(%p) gave %d, expected %d", (void *)h, (int)st, (int)want);
    return;
  }
  const mhc_status_t st = mhc_context_destroy(slot[k]);
  check_status(st);
  if (st != MHC_SUCCESS) die("destroy of a live or NULL context gave %d", (int)st);
  if (slot[k] != NULL) dead[k] = slot[k];
  slot[k] = NULL;
}

static void run_get_backend(Src *s) {
  g_what = "mhc_context_get_backend";
  mhc_context *ctx = pick_ctx(s);
  const uint8_t sel = u8(s);
  int32_t b = -7, d = -7;
  const mhc_status_t st =
      mhc_context_get_backend(ctx, (sel & 1) ? NULL : &b, (sel & 2) ? NULL : &d);
  check_status(st);
  const int live = is_live(ctx);
  if (!live && st != MHC_ERROR_INVALID_HANDLE) die("invalid handle gave %d", (int)st);
  if (live && (sel & 3) == 3 && st != MHC_ERROR_INVALID_ARGUMENT) die("both NULL gave %d", (int)st);
  if (live && (sel & 3) != 3) {
    if (st != MHC_SUCCESS) die("get_backend failed: %d", (int)st);
    if (!(sel & 1) && b != MHC_BACKEND_CPU) die("backend %d", (int)b);
    if (!(sel & 2) && d != 0) die("device %d", (int)d);
  }
}

static void run_strings(Src *s) {
  g_what = "mhc_status_string";
  const int32_t v = fuzz_i32(s);
  const char *name = mhc_status_string(v);
  if (name == NULL) die("mhc_status_string(%d) is NULL", (int)v);
  const int known = v >= 0 && v <= 9;
  if (!known && strcmp(name, "MHC_ERROR_UNKNOWN") != 0) die("unknown %d named %s", (int)v, name);
  if (known && strcmp(name, "MHC_ERROR_UNKNOWN") == 0) die("known %d unnamed", (int)v);
  const char *msg = mhc_last_error_message();
  if (msg == NULL) die("mhc_last_error_message() is NULL");
  (void)strlen(msg);
  if (mhc_get_version() != MHC_VERSION) die("mhc_get_version %d != %d", mhc_get_version(), MHC_VERSION);
}

static void run_env(Src *s) {
  switch (u8(s) % 4) {
    case 0: unsetenv("MHC_CHECK_POINTERS"); break;
    case 1: setenv("MHC_CHECK_POINTERS", "1", 1); break;
    case 2: setenv("MHC_CHECK_POINTERS", "0", 1); break;
    default: setenv("MHC_CHECK_POINTERS", "", 1); break;
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  g_trace = getenv("MHC_FUZZ_TRACE") != NULL;
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = MHC_BACKEND_CPU;
  if (mhc_context_create(&g_ctx, &cfg) != MHC_SUCCESS) {
    fprintf(stderr, "cannot create the CPU context: %s\n", mhc_last_error_message());
    abort();
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Src s = {data, size};
  memset(slot, 0, sizeof slot);
  memset(dead, 0, sizeof dead);
  for (int k = 0; k < kMaxOps && (k == 0 || s.n > 0); ++k) {
    const uint8_t opcode = u8(&s);
    switch (opcode % 10) {
      case 0: run_op(&s, OP_PRE); break;
      case 1: run_op(&s, OP_POST); break;
      case 2: run_op(&s, OP_POST_PRE); break;
      case 3: run_op(&s, OP_HEAD); break;
      case 4: run_workspace_size(&s); break;
      case 5: run_create(&s); break;
      case 6: run_destroy(&s); break;
      case 7: run_get_backend(&s); break;
      case 8: run_strings(&s); break;
      default: run_env(&s); break;
    }
  }
  for (int k = 0; k < N_SLOTS; ++k) {
    if (slot[k] == NULL) continue;
    g_what = "mhc_context_destroy";
    const mhc_status_t st = mhc_context_destroy(slot[k]);
    if (st != MHC_SUCCESS) die("destroy at the end of the input gave %d", (int)st);
    slot[k] = NULL;
  }
  unsetenv("MHC_CHECK_POINTERS");
  return 0;
}
