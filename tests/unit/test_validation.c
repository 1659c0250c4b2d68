/* Argument validation of every entry point (DESIGN §2): each rule is broken on its own and
 * the test asserts the exact status AND that mhc_last_error_message() names the argument.
 * CPU backend (host tensors); the CUDA-only rules live in tests/gpu. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"
#include "test_util.h"

#ifndef MHCT_LIB_HAS_CUDA
#define MHCT_LIB_HAS_CUDA 0
#endif

enum { T0 = 3, H0 = 8 };
#define SLACK ((size_t)1 << 16) /* extra bytes after every buffer: a missed check reads junk, not a fault */

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* cmocka 1.1's fail_msg has no location argument; give it one. */
static void fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_at(const char *file, int line, const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  print_error("%s:%d: %s\n", file, line, buf);
  fail();
}

/* Asserts the status and that the message names name1 (and name2 when not NULL). */
static void expect_status_(mhc_status_t got, mhc_status_t want, const char *name1,
                           const char *name2, const char *what, const char *file, int line) {
  const char *msg = mhc_last_error_message();
  if (got != want)
    fail_at(file, line, "%s: got %s (%d), want %s; message: \"%s\"", what,
                  mhc_status_string(got), got, mhc_status_string(want), msg);
  if (want == MHC_SUCCESS) return;
  if (name1 && !mhct_names_arg(msg, name1))
    fail_at(file, line, "%s: message does not name '%s': \"%s\"", what, name1, msg);
  if (name2 && !mhct_names_arg(msg, name2))
    fail_at(file, line, "%s: message does not name '%s': \"%s\"", what, name2, msg);
}
#define expect_status(got, want, name1, name2, what) \
  expect_status_((got), (want), (name1), (name2), (what), __FILE__, __LINE__)

/* ---------------------------------------------------------------------------------------- */
/* the fixture: one valid problem and the baseline outputs of every op                      */
/* ---------------------------------------------------------------------------------------- */

static const int32_t kOps[4] = {MHC_OP_HC_POST, MHC_OP_HC_PRE, MHC_OP_HC_POST_PRE,
                                MHC_OP_HC_HEAD};

typedef enum slot {
  S_X, S_RESIDUAL, S_POST_MIX, S_COMB_MIX, S_FN, S_SCALE, S_BASE, S_NORM_WEIGHT, S_FN_HEAD,
  S_SCALE_HEAD, S_BASE_HEAD, S_RESIDUAL_OUT, S_POST_MIX_OUT, S_COMB_MIX_OUT,
  S_LAYER_INPUT_OUT, S_OUT, S_COUNT
} slot;

/* The argument name the library reports for each slot. */
static const char *const kSlotName[S_COUNT] = {
    "x",     "residual", "post_mix", "comb_mix", "fn",           "scale",
    "base",  "norm_weight", "fn_head", "scale", "base",          "residual_out",
    "post_mix_out", "comb_mix_out", "layer_input_out", "out"};

static const mhct_tensor **slot_ref(mhct_call *c, slot s) {
  switch (s) {
    case S_X: return &c->x;
    case S_RESIDUAL: return &c->residual;
    case S_POST_MIX: return &c->post_mix;
    case S_COMB_MIX: return &c->comb_mix;
    case S_FN: return &c->fn;
    case S_SCALE: return &c->scale;
    case S_BASE: return &c->base;
    case S_NORM_WEIGHT: return &c->norm_weight;
    case S_FN_HEAD: return &c->fn_head;
    case S_SCALE_HEAD: return &c->scale_head;
    case S_BASE_HEAD: return &c->base_head;
    case S_RESIDUAL_OUT: return &c->residual_out;
    case S_POST_MIX_OUT: return &c->post_mix_out;
    case S_COMB_MIX_OUT: return &c->comb_mix_out;
    case S_LAYER_INPUT_OUT: return &c->layer_input_out;
    default: return &c->out;
  }
}


typedef struct fixture {
  mhc_context *ctx;
  mhct_problem pb;
  mhct_call calls[4]; /* per kOps entry; pre and post_pre with norm_weight */
  void *baseline[4][S_COUNT]; /* host copies of each op's outputs on the valid call */
} fixture;

static fixture F;

static mhct_call base_call(int op_index) { return F.calls[op_index]; }

/* The tensor in slot s of the call (NULL when the call does not use the slot). */
static const mhct_tensor *slot_get(const mhct_call *c, slot s) {
  mhct_call tmp = *c;
  return *slot_ref(&tmp, s);
}

static int slot_used(const mhct_call *c, slot s) { return slot_get(c, s) != NULL; }

static void describe(char *buf, size_t n, int op_index, slot s, const char *mutation) {
  snprintf(buf, n, "%s, %s: %s", mhct_op_name(kOps[op_index]), kSlotName[s], mutation);
}

/* Clears every output of the call to a sentinel so that a later comparison sees real writes. */
static void poison_outputs(const mhct_call *c) {
  for (int s = S_RESIDUAL_OUT; s < S_COUNT; ++s) {
    const mhct_tensor *t = slot_get(c, (slot)s);
    if (t) mhct_tensor_fill_bytes((mhct_tensor *)t, 0x5A);
  }
}

/* Every output of the call equals the baseline bits of op op_index. */
static void expect_baseline_outputs(const mhct_call *c, int op_index, const char *what) {
  for (int s = S_RESIDUAL_OUT; s < S_COUNT; ++s) {
    const mhct_tensor *t = slot_get(c, (slot)s);
    if (!t) continue;
    const void *want = F.baseline[op_index][s];
    assert_non_null(want);
    if (memcmp(mhct_tensor_ptr(t), want, mhct_tensor_nbytes(t)) != 0)
      fail_msg("%s: output %s differs from the baseline", what, kSlotName[s]);
  }
}

/* Host copies of the outputs of the call into saved[s] (output slots the call uses only). */
static void save_outputs(const mhct_call *c, void *saved[S_COUNT]) {
  for (int s = S_RESIDUAL_OUT; s < S_COUNT; ++s) {
    const mhct_tensor *t = slot_get(c, (slot)s);
    if (t) saved[s] = mhct_tensor_to_host(t);
  }
}

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  F.ctx = mhct_cpu_context();
  if (!F.ctx) return -1;
  if (mhct_problem_alloc(&F.pb, kDLCPU, T0, H0, SLACK) != 0) return -1;
  mhct_problem_fill(&F.pb, MHCT_INPUTS_MODEL, 1234);
  for (int i = 0; i < 4; ++i) {
    F.calls[i] = mhct_problem_call(&F.pb, kOps[i], 1);
    const mhc_status_t st = mhct_call_run(F.ctx, &F.calls[i]);
    if (st != MHC_SUCCESS) {
      fprintf(stderr, "baseline %s failed: %s\n", mhct_op_name(kOps[i]), mhc_last_error_message());
      return -1;
    }
    save_outputs(&F.calls[i], F.baseline[i]);
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (int i = 0; i < 4; ++i)
    for (int s = 0; s < S_COUNT; ++s) free(F.baseline[i][s]);
  mhct_problem_free(&F.pb);
  mhc_context_destroy(F.ctx);
  return 0;
}

/* Runs c with slot s replaced by m; returns the status. */
static mhc_status_t run_with(const mhct_call *base, slot s, const mhct_tensor *m) {
  mhct_call c = *base;
  *slot_ref(&c, s) = m;
  return mhct_call_run(F.ctx, &c);
}

/* Runs base with slot s replaced by m and asserts `want` and a message naming that slot. */
#define expect_slot_status(base, s, m, want, what) \
  expect_status(run_with((base), (slot)(s), (m)), (want), kSlotName[(s)], NULL, (what))

/* ---------------------------------------------------------------------------------------- */
/* tensors: NULL, device, dtype, ndim, shape, strides, byte_offset, data, overlap            */
/* ---------------------------------------------------------------------------------------- */

static void test_null_tensor(void **state) {
  (void)state;
  char what[160];
  for (int i = 0; i < 4; ++i) {
    const mhct_call base = base_call(i);
    for (int s = 0; s < S_COUNT; ++s) {
      if (!slot_used(&base, (slot)s)) continue;
      describe(what, sizeof what, i, (slot)s, "NULL tensor");
      const mhc_status_t st = run_with(&base, (slot)s, NULL);
      if (s == S_NORM_WEIGHT) { /* NULL norm_weight means: no fused RMSNorm */
        expect_status(st, MHC_SUCCESS, NULL, NULL, what);
        continue;
      }
      expect_status(st, MHC_ERROR_INVALID_ARGUMENT, kSlotName[s], NULL, what);
    }
  }
}

static void test_wrong_device(void **state) {
  (void)state;
  const int32_t devices[3] = {kDLCUDA, kDLOpenCL, kDLCUDAManaged};
  char what[160];
  for (int i = 0; i < 4; ++i) {
    const mhct_call base = base_call(i);
    for (int s = 0; s < S_COUNT; ++s) {
      if (!slot_used(&base, (slot)s)) continue;
      for (int d = 0; d < 3; ++d) {
        mhct_tensor m;
        mhct_tensor_view(&m, slot_get(&base, (slot)s));
        m.dl.device.device_type = (DLDeviceType)devices[d];
        snprintf(what, sizeof what, "%s, %s: device type %d on the CPU backend",
                 mhct_op_name(kOps[i]), kSlotName[s], devices[d]);
        expect_slot_status(&base, s, &m, MHC_ERROR_DEVICE_MISMATCH, what);
      }
    }
  }
}

static void test_wrong_dtype(void **state) {
  (void)state;
  const DLDataType for_bf16[4] = {{kDLFloat, 32, 1}, {kDLFloat, 16, 1}, {kDLBfloat, 16, 2},
                                  {kDLInt, 16, 1}};
  const DLDataType for_f32[4] = {{kDLBfloat, 16, 1}, {kDLFloat, 64, 1}, {kDLInt, 32, 1},
                                 {kDLFloat, 32, 2}};
  char what[160];
  for (int i = 0; i < 4; ++i) {
    const mhct_call base = base_call(i);
    for (int s = 0; s < S_COUNT; ++s) {
      if (!slot_used(&base, (slot)s)) continue;
      const mhct_tensor *orig = slot_get(&base, (slot)s);
      const int is_bf16 = orig->dl.dtype.code == kDLBfloat;
      for (int d = 0; d < 4; ++d) {
        mhct_tensor m;
        mhct_tensor_view(&m, orig);
        m.dl.dtype = is_bf16 ? for_bf16[d] : for_f32[d];
        snprintf(what, sizeof what, "%s, %s: dtype code %u bits %u lanes %u",
                 mhct_op_name(kOps[i]), kSlotName[s], m.dl.dtype.code, m.dl.dtype.bits,
                 m.dl.dtype.lanes);
        expect_slot_status(&base, s, &m, MHC_ERROR_NOT_SUPPORTED, what);
      }
    }
  }
}

static void test_wrong_ndim(void **state) {
  (void)state;
  char what[160];
  for (int i = 0; i < 4; ++i) {
    const mhct_call base = base_call(i);
    for (int s = 0; s < S_COUNT; ++s) {
      if (!slot_used(&base, (slot)s)) continue;
      const mhct_tensor *orig = slot_get(&base, (slot)s);
      mhct_tensor m;
      /* one dimension fewer */
      mhct_tensor_view(&m, orig);
      m.dl.ndim -= 1;
      describe(what, sizeof what, i, (slot)s, "ndim - 1");
      expect_slot_status(&base, s, &m, MHC_ERROR_INVALID_ARGUMENT, what);
      /* one more dimension (of size 2: a trailing 1 would be the valid [T,4,1] post_mix) */
      mhct_tensor_view(&m, orig);
      m.shape[m.dl.ndim] = 2;
      m.dl.ndim += 1;
      describe(what, sizeof what, i, (slot)s, "ndim + 1");
      expect_slot_status(&base, s, &m, MHC_ERROR_INVALID_ARGUMENT, what);
    }
  }
}

/* Every dimension of every argument, +1, -1 and negative. A wrong T or H of `residual` (the
 * tensor T and H are taken from) is reported on the first argument that disagrees. */
static void test_wrong_shape(void **state) {
  (void)state;
  char what[160];
  const int64_t deltas[3] = {+1, -1, 0};
  for (int i = 0; i < 4; ++i) {
    const mhct_call base = base_call(i);
    for (int s = 0; s < S_COUNT; ++s) {
      if (!slot_used(&base, (slot)s)) continue;
      const mhct_tensor *orig = slot_get(&base, (slot)s);
      for (int d = 0; d < orig->dl.ndim; ++d) {
        for (int k = 0; k < 3; ++k) {
          mhct_tensor m;
          mhct_tensor_view(&m, orig);
          m.shape[d] = k == 2 ? -1 : m.shape[d] + deltas[k];
          snprintf(what, sizeof what, "%s, %s: shape[%d] = %lld", mhct_op_name(kOps[i]),
                   kSlotName[s], d, (long long)m.shape[d]);
          const mhc_status_t st = run_with(&base, (slot)s, &m);
          if (s == S_SCALE_HEAD && m.shape[d] >= 1) {
            /* hc_head's scale is [S] with S >= 1 (element 0 is used) */
            expect_status(st, MHC_SUCCESS, NULL, NULL, what);
          } else if (s == S_RESIDUAL && d != 1 && m.shape[d] >= 0) {
            /* T or H of the call changes: another argument is now inconsistent */
            expect_status(st, MHC_ERROR_INVALID_ARGUMENT, NULL, NULL, what);
            int named = 0;
            for (int o = 0; o < S_COUNT; ++o)
              if (o != S_RESIDUAL && slot_used(&base, (slot)o) &&
                  mhct_names_arg(mhc_last_error_message(), kSlotName[o]))
                named = 1;
            if (!named)
              fail_msg("%s: message names no inconsistent argument: %s", what,
                       mhc_last_error_message());
          } else {
            expect_status(st, MHC_ERROR_INVALID_ARGUMENT, kSlotName[s], NULL, what);
          }
        }
      }
    }
  }
}

/* post_mix may be [T,4] or [T,4,1], as input (hc_post, hc_post_pre) and as output (hc_pre,
 * hc_post_pre): both give the same bits. */
static void test_post_mix_shapes(void **state) {
  (void)state;
  char what[160];
  for (int i = 0; i < 4; ++i) {
    const mhct_call base = base_call(i);
    const slot slots[2] = {S_POST_MIX, S_POST_MIX_OUT};
    for (int k = 0; k < 2; ++k) {
      if (!slot_used(&base, slots[k])) continue;
      mhct_tensor m;
      mhct_tensor_view(&m, slot_get(&base, slots[k]));
      m.shape[2] = 1;
      m.dl.ndim = 3;
      mhct_call c = base;
      *slot_ref(&c, slots[k]) = &m;
      poison_outputs(&c);
      describe(what, sizeof what, i, slots[k], "[T,4,1]");
      expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL, what);
      expect_baseline_outputs(&c, i, what);
      /* the size-1 dimension's stride is ignored */
      const int64_t strides[3] = {4, 1, 77};
      mhct_tensor_set_strides(&m, strides);
      poison_outputs(&c);
      describe(what, sizeof what, i, slots[k], "[T,4,1] with strides {4,1,77}");
      expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL, what);
      expect_baseline_outputs(&c, i, what);
      /* [T,1,4] and [T,4,2] are not post_mix shapes */
      mhct_tensor_view(&m, slot_get(&base, slots[k]));
      m.shape[1] = 1;
      m.shape[2] = 4;
      m.dl.ndim = 3;
      describe(what, sizeof what, i, slots[k], "[T,1,4]");
      expect_status(mhct_call_run(F.ctx, &c), MHC_ERROR_INVALID_ARGUMENT, kSlotName[slots[k]],
                    NULL, what);
    }
  }
}

static void test_strides(void **state) {
  (void)state;
  char what[160];
  for (int i = 0; i < 4; ++i) {
    const mhct_call base = base_call(i);
    /* explicit dense strides on every argument at once: accepted, same bits */
    mhct_tensor ms[S_COUNT];
    mhct_call c = base;
    for (int s = 0; s < S_COUNT; ++s) {
      if (!slot_used(&base, (slot)s)) continue;
      mhct_tensor_view(&ms[s], *slot_ref(&c, (slot)s));
      mhct_tensor_set_dense_strides(&ms[s]);
      *slot_ref(&c, (slot)s) = &ms[s];
    }
    poison_outputs(&c);
    snprintf(what, sizeof what, "%s: explicit dense strides everywhere", mhct_op_name(kOps[i]));
    expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL, what);
    expect_baseline_outputs(&c, i, what);

    /* a non-dense stride in any dimension of size > 1 of any argument: rejected */
    for (int s = 0; s < S_COUNT; ++s) {
      if (!slot_used(&base, (slot)s)) continue;
      const mhct_tensor *orig = slot_get(&base, (slot)s);
      for (int d = 0; d < orig->dl.ndim; ++d) {
        if (orig->dl.shape[d] == 1) continue;
        mhct_tensor m;
        mhct_tensor_view(&m, orig);
        mhct_tensor_set_dense_strides(&m);
        m.strides[d] += 1;
        snprintf(what, sizeof what, "%s, %s: stride[%d] = %lld (dense %lld)",
                 mhct_op_name(kOps[i]), kSlotName[s], d, (long long)m.strides[d],
                 (long long)m.strides[d] - 1);
        expect_slot_status(&base, s, &m, MHC_ERROR_INVALID_ARGUMENT, what);
      }
      if (orig->dl.ndim == 2 && orig->dl.shape[0] > 1 && orig->dl.shape[1] > 1) { /* column-major */
        mhct_tensor m;
        {
          mhct_tensor_view(&m, orig);
          const int64_t cm[2] = {1, orig->dl.shape[0]};
          mhct_tensor_set_strides(&m, cm);
          snprintf(what, sizeof what, "%s, %s: column-major strides", mhct_op_name(kOps[i]),
                   kSlotName[s]);
          expect_slot_status(&base, s, &m, MHC_ERROR_INVALID_ARGUMENT, what);
        }
      }
    }
  }
}

/* With T = 1 every token-major tensor has a size-1 leading dimension: any stride there is
 * ignored, and the results are those of NULL strides. */
static void test_strides_of_size_one_dims_ignored(void **state) {
  (void)state;
  mhct_problem pb;
  assert_int_equal(mhct_problem_alloc(&pb, kDLCPU, 1, H0, 0), 0);
  mhct_problem_fill(&pb, MHCT_INPUTS_VLLM, 99);
  char what[160];
  for (int i = 0; i < 4; ++i) {
    mhct_call c = mhct_problem_call(&pb, kOps[i], 1);
    assert_int_equal(mhct_call_run(F.ctx, &c), MHC_SUCCESS);
    void *want[S_COUNT] = {0};
    save_outputs(&c, want);
    mhct_tensor ms[S_COUNT];
    const slot token_slots[9] = {S_X,           S_RESIDUAL,     S_POST_MIX,
                                 S_COMB_MIX,    S_RESIDUAL_OUT, S_POST_MIX_OUT,
                                 S_COMB_MIX_OUT, S_LAYER_INPUT_OUT, S_OUT};
    mhct_call m = c;
    for (int k = 0; k < 9; ++k) {
      const slot s = token_slots[k];
      if (!*slot_ref(&m, s)) continue;
      mhct_tensor_view(&ms[s], *slot_ref(&m, s));
      mhct_tensor_set_dense_strides(&ms[s]);
      ms[s].strides[0] = 12345;
      *slot_ref(&m, s) = &ms[s];
    }
    poison_outputs(&m);
    snprintf(what, sizeof what, "%s: T = 1 with stride[0] = 12345", mhct_op_name(kOps[i]));
    expect_status(mhct_call_run(F.ctx, &m), MHC_SUCCESS, NULL, NULL, what);
    for (int s = S_RESIDUAL_OUT; s < S_COUNT; ++s)
      if (want[s]) {
        assert_memory_equal(mhct_tensor_ptr(*slot_ref(&m, (slot)s)), want[s],
                            mhct_tensor_nbytes(*slot_ref(&m, (slot)s)));
        free(want[s]);
      }
  }
  mhct_problem_free(&pb);
}

/* byte_offset is honoured: the same data moved behind an offset gives the same bits; an offset
 * that misaligns the element type is rejected. */
static void test_byte_offset(void **state) {
  (void)state;
  char what[160];
  for (int i = 0; i < 4; ++i) {
    const mhct_call base = base_call(i);
    for (int s = 0; s < S_COUNT; ++s) {
      if (!slot_used(&base, (slot)s)) continue;
      const mhct_tensor *orig = slot_get(&base, (slot)s);
      const size_t esize = mhct_tensor_elem_size(orig);
      const uint64_t offsets[3] = {64, 2 * esize, 6 * esize};
      for (int k = 0; k < 3; ++k) {
        /* a copy of the data at `offset` bytes into a fresh buffer; data points either at the
         * buffer (byte_offset = offset) or half-way (byte_offset = offset / 2) */
        char *buf = NULL;
        assert_int_equal(posix_memalign((void **)&buf, 256, mhct_tensor_nbytes(orig) + 256), 0);
        memcpy(buf + offsets[k], mhct_tensor_ptr(orig), mhct_tensor_nbytes(orig));
        mhct_tensor m;
        mhct_tensor_view(&m, orig);
        const uint64_t half = (offsets[k] / 2) / esize * esize;
        m.dl.data = k == 2 ? buf + half : buf;
        m.dl.byte_offset = k == 2 ? offsets[k] - half : offsets[k];
        mhct_call c = base;
        *slot_ref(&c, (slot)s) = &m;
        poison_outputs(&c);
        snprintf(what, sizeof what, "%s, %s: data + %llu, byte_offset %llu",
                 mhct_op_name(kOps[i]), kSlotName[s],
                 (unsigned long long)((char *)m.dl.data - buf), (unsigned long long)m.dl.byte_offset);
        expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL, what);
        expect_baseline_outputs(&c, i, what);
        free(buf);
      }
      /* misaligned: an offset that is not a multiple of the element size */
      mhct_tensor m;
      mhct_tensor_view(&m, orig);
      m.dl.byte_offset = esize / 2; /* 1 for bf16, 2 for f32 */
      describe(what, sizeof what, i, (slot)s, "misaligned byte_offset");
      expect_slot_status(&base, s, &m, MHC_ERROR_INVALID_ARGUMENT, what);
      /* misaligned data pointer with byte_offset 0 */
      mhct_tensor_view(&m, orig);
      m.dl.data = (char *)orig->dl.data + 1;
      m.dl.byte_offset = 0;
      describe(what, sizeof what, i, (slot)s, "misaligned data pointer");
      expect_slot_status(&base, s, &m, MHC_ERROR_INVALID_ARGUMENT, what);
      /* data NULL with elements */
      mhct_tensor_view(&m, orig);
      m.dl.data = NULL;
      m.dl.byte_offset = 0;
      describe(what, sizeof what, i, (slot)s, "data NULL");
      expect_slot_status(&base, s, &m, MHC_ERROR_INVALID_ARGUMENT, what);
    }
  }
}

/* Outputs may not overlap any input or any other output: fully or partially. */
static void test_overlap(void **state) {
  (void)state;
  char what[200];
  for (int i = 0; i < 4; ++i) {
    const mhct_call base = base_call(i);
    for (int o = S_RESIDUAL_OUT; o < S_COUNT; ++o) {
      if (!slot_used(&base, (slot)o)) continue;
      for (int s = 0; s < S_COUNT; ++s) {
        if (s == o || !slot_used(&base, (slot)s)) continue;
        const mhct_tensor *out = slot_get(&base, (slot)o);
        const mhct_tensor *other = slot_get(&base, (slot)s);
        for (int partial = 0; partial < 2; ++partial) {
          mhct_tensor m;
          mhct_tensor_view(&m, out);
          /* same start, or starting inside the last 4-byte-aligned word of the other tensor */
          const size_t shift = partial ? ((mhct_tensor_nbytes(other) - 1) & ~(size_t)3) : 0;
          m.dl.data = (char *)mhct_tensor_ptr(other) + shift;
          m.dl.byte_offset = 0;
          snprintf(what, sizeof what, "%s: %s %s %s", mhct_op_name(kOps[i]), kSlotName[o],
                   partial ? "overlaps the end of" : "aliases", kSlotName[s]);
          expect_status(run_with(&base, (slot)o, &m), MHC_ERROR_INVALID_ARGUMENT, kSlotName[o],
                        kSlotName[s], what);
        }
      }
    }
  }
}

/* Touching is not overlapping, and inputs may overlap each other. */
static void test_adjacent_and_aliased_inputs(void **state) {
  (void)state;
  const mhct_call base = base_call(0); /* hc_post */
  const size_t rb = mhct_tensor_nbytes(base.residual), xb = mhct_tensor_nbytes(base.x);
  char *buf = NULL;
  assert_int_equal(posix_memalign((void **)&buf, 256, 2 * rb + xb + 256), 0);
  /* [residual | residual_out | x] back to back */
  mhct_tensor r, ro, x;
  mhct_tensor_view(&r, base.residual);
  mhct_tensor_view(&ro, base.residual_out);
  mhct_tensor_view(&x, base.x);
  r.dl.data = buf;
  ro.dl.data = buf + rb;
  x.dl.data = buf + 2 * rb;
  r.dl.byte_offset = ro.dl.byte_offset = x.dl.byte_offset = 0;
  memcpy(buf, mhct_tensor_ptr(base.residual), rb);
  memcpy(buf + 2 * rb, mhct_tensor_ptr(base.x), xb);
  mhct_call c = base;
  c.residual = &r;
  c.residual_out = &ro;
  c.x = &x;
  poison_outputs(&c);
  expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL,
                "hc_post: residual_out directly between residual and x");
  expect_baseline_outputs(&c, 0, "adjacent buffers");
  /* x reads the first T*H elements of residual: two inputs sharing memory is fine */
  mhct_tensor xa;
  mhct_tensor_view(&xa, base.x);
  xa.dl.data = mhct_tensor_ptr(base.residual);
  xa.dl.byte_offset = 0;
  c = base;
  c.x = &xa;
  expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL, "hc_post: x aliases residual");
  free(buf);
}

/* ---------------------------------------------------------------------------------------- */
/* params and weights                                                                        */
/* ---------------------------------------------------------------------------------------- */

typedef struct param_case {
  const char *what;
  void (*mutate)(mhc_hc_params *p);
  mhc_status_t want;
  const char *name;
} param_case;

static void m_size_small(mhc_hc_params *p) { p->size -= 4; }
static void m_size_big(mhc_hc_params *p) { p->size += 8; }
static void m_size_zero(mhc_hc_params *p) { p->size = 0; }
static void m_version0(mhc_hc_params *p) { p->version = 0; }
static void m_version2(mhc_hc_params *p) { p->version = MHC_HC_PARAMS_VERSION + 1; }
static void m_mult2(mhc_hc_params *p) { p->hc_mult = 2; }
static void m_mult3(mhc_hc_params *p) { p->hc_mult = 3; }
static void m_mult8(mhc_hc_params *p) { p->hc_mult = 8; }
static void m_mult0(mhc_hc_params *p) { p->hc_mult = 0; }
static void m_mult_neg(mhc_hc_params *p) { p->hc_mult = -4; }
static void m_iters0(mhc_hc_params *p) { p->sinkhorn_iters = 0; }
static void m_iters_neg(mhc_hc_params *p) { p->sinkhorn_iters = -1; }
static void m_iters1(mhc_hc_params *p) { p->sinkhorn_iters = 1; }
static void m_rms_neg(mhc_hc_params *p) { p->rms_eps = -1e-6f; }
static void m_rms_nan(mhc_hc_params *p) { p->rms_eps = NAN; }
static void m_rms_inf(mhc_hc_params *p) { p->rms_eps = INFINITY; }
static void m_rms_zero(mhc_hc_params *p) { p->rms_eps = 0.0f; }
static void m_sk_neg(mhc_hc_params *p) { p->sinkhorn_eps = -1e-6f; }
static void m_sk_nan(mhc_hc_params *p) { p->sinkhorn_eps = NAN; }
static void m_sk_zero(mhc_hc_params *p) { p->sinkhorn_eps = 0.0f; }
static void m_norm_neg(mhc_hc_params *p) { p->norm_eps = -1.0f; }
static void m_norm_nan(mhc_hc_params *p) { p->norm_eps = NAN; }
static void m_pre_nan(mhc_hc_params *p) { p->pre_eps = NAN; }
static void m_pre_inf(mhc_hc_params *p) { p->pre_eps = -INFINITY; }
static void m_post_nan(mhc_hc_params *p) { p->post_mult = NAN; }
static void m_post_inf(mhc_hc_params *p) { p->post_mult = INFINITY; }
static void m_flags_bit1(mhc_hc_params *p) { p->flags = 1u << 1; }
static void m_flags_high(mhc_hc_params *p) { p->flags = MHC_FLAG_BATCH_INVARIANT | 0x80000000u; }
static void m_flags_bi(mhc_hc_params *p) { p->flags = MHC_FLAG_BATCH_INVARIANT; }

static const param_case kParamCases[] = {
    {"size - 4", m_size_small, MHC_ERROR_VERSION_MISMATCH, "p"},
    {"size + 8", m_size_big, MHC_ERROR_VERSION_MISMATCH, "p"},
    {"size 0", m_size_zero, MHC_ERROR_VERSION_MISMATCH, "p"},
    {"version 0", m_version0, MHC_ERROR_VERSION_MISMATCH, "p"},
    {"version + 1", m_version2, MHC_ERROR_VERSION_MISMATCH, "p"},
    {"hc_mult 2", m_mult2, MHC_ERROR_NOT_SUPPORTED, "hc_mult"},
    {"hc_mult 3", m_mult3, MHC_ERROR_NOT_SUPPORTED, "hc_mult"},
    {"hc_mult 8", m_mult8, MHC_ERROR_NOT_SUPPORTED, "hc_mult"},
    {"hc_mult 0", m_mult0, MHC_ERROR_INVALID_ARGUMENT, "hc_mult"},
    {"hc_mult -4", m_mult_neg, MHC_ERROR_INVALID_ARGUMENT, "hc_mult"},
    {"sinkhorn_iters 0", m_iters0, MHC_ERROR_INVALID_ARGUMENT, "sinkhorn_iters"},
    {"sinkhorn_iters -1", m_iters_neg, MHC_ERROR_INVALID_ARGUMENT, "sinkhorn_iters"},
    {"sinkhorn_iters 1", m_iters1, MHC_SUCCESS, NULL},
    {"rms_eps -1e-6", m_rms_neg, MHC_ERROR_INVALID_ARGUMENT, "rms_eps"},
    {"rms_eps NaN", m_rms_nan, MHC_ERROR_INVALID_ARGUMENT, "rms_eps"},
    {"rms_eps inf", m_rms_inf, MHC_ERROR_INVALID_ARGUMENT, "rms_eps"},
    {"rms_eps 0", m_rms_zero, MHC_SUCCESS, NULL},
    {"sinkhorn_eps -1e-6", m_sk_neg, MHC_ERROR_INVALID_ARGUMENT, "sinkhorn_eps"},
    {"sinkhorn_eps NaN", m_sk_nan, MHC_ERROR_INVALID_ARGUMENT, "sinkhorn_eps"},
    {"sinkhorn_eps 0", m_sk_zero, MHC_SUCCESS, NULL},
    {"norm_eps -1", m_norm_neg, MHC_ERROR_INVALID_ARGUMENT, "norm_eps"},
    {"norm_eps NaN", m_norm_nan, MHC_ERROR_INVALID_ARGUMENT, "norm_eps"},
    {"pre_eps NaN", m_pre_nan, MHC_ERROR_INVALID_ARGUMENT, "pre_eps"},
    {"pre_eps -inf", m_pre_inf, MHC_ERROR_INVALID_ARGUMENT, "pre_eps"},
    {"post_mult NaN", m_post_nan, MHC_ERROR_INVALID_ARGUMENT, "post_mult"},
    {"post_mult inf", m_post_inf, MHC_ERROR_INVALID_ARGUMENT, "post_mult"},
    {"flags bit 1", m_flags_bit1, MHC_ERROR_INVALID_ARGUMENT, "flags"},
    {"flags bit 31", m_flags_high, MHC_ERROR_INVALID_ARGUMENT, "flags"},
    {"flags BATCH_INVARIANT", m_flags_bi, MHC_SUCCESS, NULL},
};

static void test_params(void **state) {
  (void)state;
  char what[160];
  const size_t ncases = sizeof kParamCases / sizeof kParamCases[0];
  for (int i = 0; i < 4; ++i) {
    if (kOps[i] == MHC_OP_HC_POST) continue; /* hc_post takes no params */
    const mhct_call base = base_call(i);
    for (size_t k = 0; k < ncases; ++k) {
      mhc_hc_params p = *base.p;
      kParamCases[k].mutate(&p);
      mhct_call c = base;
      c.p = &p;
      snprintf(what, sizeof what, "%s: params %s", mhct_op_name(kOps[i]), kParamCases[k].what);
      expect_status(mhct_call_run(F.ctx, &c), kParamCases[k].want, kParamCases[k].name, NULL,
                    what);
      size_t bytes = 7;
      snprintf(what, sizeof what, "mhc_workspace_size(%s): params %s", mhct_op_name(kOps[i]),
               kParamCases[k].what);
      expect_status(mhc_workspace_size(F.ctx, kOps[i], &p, T0, H0, &bytes), kParamCases[k].want,
                    kParamCases[k].name, NULL, what);
    }
    mhct_call c = base;
    c.p = NULL;
    snprintf(what, sizeof what, "%s: params NULL", mhct_op_name(kOps[i]));
    expect_status(mhct_call_run(F.ctx, &c), MHC_ERROR_INVALID_ARGUMENT, "p", NULL, what);
  }
}

static void test_weights_null(void **state) {
  (void)state;
  const mhct_problem *pb = &F.pb;
  const mhc_hc_params *p = &pb->params;
  expect_status(mhc_hc_pre(F.ctx, p, NULL, &pb->residual.dl, &pb->post_mix_out.dl,
                           &pb->comb_mix_out.dl, &pb->layer_input_out.dl, NULL, 0, NULL),
                MHC_ERROR_INVALID_ARGUMENT, "w", NULL, "hc_pre: w NULL");
  expect_status(mhc_hc_post_pre(F.ctx, p, NULL, &pb->x.dl, &pb->residual.dl, &pb->post_mix.dl,
                                &pb->comb_mix.dl, &pb->residual_out.dl, &pb->post_mix_out.dl,
                                &pb->comb_mix_out.dl, &pb->layer_input_out.dl, NULL, 0, NULL),
                MHC_ERROR_INVALID_ARGUMENT, "next", NULL, "hc_post_pre: next NULL");
}

/* ---------------------------------------------------------------------------------------- */
/* contexts                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void expect_all_entry_points(mhc_context *ctx, mhc_status_t want, const char *name,
                                    const char *label) {
  char what[160];
  for (int i = 0; i < 4; ++i) {
    snprintf(what, sizeof what, "%s: %s", mhct_op_name(kOps[i]), label);
    const mhct_call c = base_call(i);
    expect_status(mhct_call_run(ctx, &c), want, name, NULL, what);
    size_t bytes = 0;
    snprintf(what, sizeof what, "mhc_workspace_size(%s): %s", mhct_op_name(kOps[i]), label);
    expect_status(mhc_workspace_size(ctx, kOps[i], c.p ? c.p : &F.pb.params, T0, H0, &bytes), want,
                  name, NULL, what);
  }
  int32_t backend = 0, device = 0;
  snprintf(what, sizeof what, "mhc_context_get_backend: %s", label);
  expect_status(mhc_context_get_backend(ctx, &backend, &device), want, name, NULL, what);
}

static void test_null_context(void **state) {
  (void)state;
  expect_all_entry_points(NULL, MHC_ERROR_INVALID_HANDLE, "ctx", "ctx NULL");
}

static void test_destroyed_context(void **state) {
  (void)state;
  mhc_context *ctx = mhct_cpu_context();
  assert_non_null(ctx);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
  expect_all_entry_points(ctx, MHC_ERROR_INVALID_HANDLE, "ctx", "destroyed ctx");
  expect_status(mhc_context_destroy(ctx), MHC_ERROR_INVALID_HANDLE, "ctx", NULL,
                "mhc_context_destroy twice");
  expect_status(mhc_context_destroy(NULL), MHC_SUCCESS, NULL, NULL, "mhc_context_destroy(NULL)");
}

static void test_context_create(void **state) {
  (void)state;
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  mhc_context *ctx = (mhc_context *)(uintptr_t)0x1; /* must be reset to NULL on failure */
  cfg.backend = MHC_BACKEND_CPU;

  expect_status(mhc_context_create(NULL, &cfg), MHC_ERROR_INVALID_ARGUMENT, "out", NULL,
                "create: out NULL");

  mhc_context_config bad = cfg;
  bad.size -= 4;
  expect_status(mhc_context_create(&ctx, &bad), MHC_ERROR_VERSION_MISMATCH, "cfg", NULL,
                "create: cfg size");
  assert_null(ctx);
  bad = cfg;
  bad.size = sizeof(mhc_context_config) + 8;
  expect_status(mhc_context_create(&ctx, &bad), MHC_ERROR_VERSION_MISMATCH, "cfg", NULL,
                "create: cfg size + 8");
  bad = cfg;
  bad.version = MHC_CONTEXT_CONFIG_VERSION + 1;
  ctx = (mhc_context *)(uintptr_t)0x1;
  expect_status(mhc_context_create(&ctx, &bad), MHC_ERROR_VERSION_MISMATCH, "cfg", NULL,
                "create: cfg version");
  assert_null(ctx);

  const int32_t backends[4] = {0, 3, -1, 1000};
  for (int i = 0; i < 4; ++i) {
    bad = cfg;
    bad.backend = backends[i];
    char what[80];
    snprintf(what, sizeof what, "create: backend %d", backends[i]);
    expect_status(mhc_context_create(&ctx, &bad), MHC_ERROR_INVALID_ARGUMENT, "backend", NULL,
                  what);
    assert_null(ctx);
  }
  bad = cfg;
  bad.device_id = 1;
  expect_status(mhc_context_create(&ctx, &bad), MHC_ERROR_INVALID_ARGUMENT, "device_id", NULL,
                "create: CPU backend with device_id 1");
  bad.device_id = -1;
  expect_status(mhc_context_create(&ctx, &bad), MHC_ERROR_INVALID_ARGUMENT, "device_id", NULL,
                "create: CPU backend with device_id -1");
  bad = cfg;
  bad.flags = 1u << 7;
  expect_status(mhc_context_create(&ctx, &bad), MHC_ERROR_INVALID_ARGUMENT, "flags", NULL,
                "create: unknown context flag");
  assert_null(ctx);

  /* the known flags are accepted by the CPU backend */
  bad = cfg;
  bad.flags = MHC_CONTEXT_FLAG_CHECK_POINTERS | MHC_CONTEXT_FLAG_PDL;
  expect_status(mhc_context_create(&ctx, &bad), MHC_SUCCESS, NULL, NULL,
                "create: CPU with CHECK_POINTERS | PDL");
  assert_non_null(ctx);
  const mhct_call c = base_call(2);
  expect_status(mhct_call_run(ctx, &c), MHC_SUCCESS, NULL, NULL, "hc_post_pre with CHECK_POINTERS");
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);

  /* get_backend */
  assert_int_equal(mhc_context_create(&ctx, &cfg), MHC_SUCCESS);
  int32_t backend = -1, device = -1;
  assert_int_equal(mhc_context_get_backend(ctx, &backend, &device), MHC_SUCCESS);
  assert_int_equal(backend, MHC_BACKEND_CPU);
  assert_int_equal(device, 0);
  backend = -1;
  assert_int_equal(mhc_context_get_backend(ctx, &backend, NULL), MHC_SUCCESS);
  assert_int_equal(backend, MHC_BACKEND_CPU);
  device = -1;
  assert_int_equal(mhc_context_get_backend(ctx, NULL, &device), MHC_SUCCESS);
  assert_int_equal(device, 0);
  expect_status(mhc_context_get_backend(ctx, NULL, NULL), MHC_ERROR_INVALID_ARGUMENT, "backend",
                "device_id", "get_backend: both outputs NULL");
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
}

static void test_cuda_backend_in_cpu_only_build(void **state) {
  (void)state;
  if (MHCT_LIB_HAS_CUDA) {
    print_message("libmhc has CUDA: the CPU-only-build rule is not checked here\n");
    skip();
  }
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT; /* CUDA, device 0 */
  mhc_context *ctx = (mhc_context *)(uintptr_t)0x1;
  expect_status(mhc_context_create(&ctx, &cfg), MHC_ERROR_NOT_SUPPORTED, "backend", NULL,
                "create: CUDA backend in a CPU-only build");
  assert_null(ctx);
  ctx = (mhc_context *)(uintptr_t)0x1;
  expect_status(mhc_context_create(&ctx, NULL), MHC_ERROR_NOT_SUPPORTED, "backend", NULL,
                "create: cfg NULL (CUDA) in a CPU-only build");
  assert_null(ctx);
}

/* ---------------------------------------------------------------------------------------- */
/* workspace                                                                                */
/* ---------------------------------------------------------------------------------------- */

static void test_workspace_size(void **state) {
  (void)state;
  const mhc_hc_params *p = &F.pb.params;
  size_t bytes = 99;
  const int32_t ops[4] = {MHC_OP_HC_PRE, MHC_OP_HC_POST_PRE, MHC_OP_HC_HEAD, MHC_OP_HC_POST};
  for (int i = 0; i < 4; ++i) {
    bytes = 99;
    assert_int_equal(mhc_workspace_size(F.ctx, ops[i], p, 2048, 7168, &bytes), MHC_SUCCESS);
    assert_int_equal(bytes, 0); /* CPU backend: no workspace */
    bytes = 99;
    assert_int_equal(mhc_workspace_size(F.ctx, ops[i], p, 0, 7168, &bytes), MHC_SUCCESS);
    assert_int_equal(bytes, 0);
  }
  const int32_t bad_ops[4] = {0, 5, -1, 1 << 20};
  for (int i = 0; i < 4; ++i) {
    char what[80];
    snprintf(what, sizeof what, "mhc_workspace_size: op %d", bad_ops[i]);
    expect_status(mhc_workspace_size(F.ctx, bad_ops[i], p, 1, 64, &bytes),
                  MHC_ERROR_INVALID_ARGUMENT, "op", NULL, what);
  }
  expect_status(mhc_workspace_size(F.ctx, MHC_OP_HC_PRE, p, -1, 64, &bytes),
                MHC_ERROR_INVALID_ARGUMENT, "num_tokens", NULL, "mhc_workspace_size: T -1");
  expect_status(mhc_workspace_size(F.ctx, MHC_OP_HC_PRE, p, 1, 0, &bytes),
                MHC_ERROR_INVALID_ARGUMENT, "hidden", NULL, "mhc_workspace_size: hidden 0");
  expect_status(mhc_workspace_size(F.ctx, MHC_OP_HC_HEAD, p, 1, -64, &bytes),
                MHC_ERROR_INVALID_ARGUMENT, "hidden", NULL, "mhc_workspace_size: hidden -64");
  expect_status(mhc_workspace_size(F.ctx, MHC_OP_HC_PRE, p, 1, 64, NULL),
                MHC_ERROR_INVALID_ARGUMENT, "out_bytes", NULL, "mhc_workspace_size: out NULL");
  expect_status(mhc_workspace_size(F.ctx, MHC_OP_HC_PRE, NULL, 1, 64, &bytes),
                MHC_ERROR_INVALID_ARGUMENT, "p", NULL, "mhc_workspace_size: p NULL");
}

/* The too-small rule, generically: where the backend needs workspace, one byte less is
 * WORKSPACE_TOO_SMALL with the needed count in the message. The CPU backend needs none, so
 * here any workspace (NULL/0 or a buffer) is accepted; tests/gpu exercises the rule. */
static void test_workspace_too_small(void **state) {
  (void)state;
  char what[160], count[32];
  int exercised = 0;
  for (int i = 0; i < 4; ++i) {
    if (kOps[i] == MHC_OP_HC_POST) continue;
    mhct_call c = base_call(i);
    size_t need = 0;
    assert_int_equal(mhc_workspace_size(F.ctx, kOps[i], c.p, T0, H0, &need), MHC_SUCCESS);
    if (need == 0) {
      c.workspace = NULL;
      c.workspace_bytes = 0;
      snprintf(what, sizeof what, "%s: no workspace needed, none given", mhct_op_name(kOps[i]));
      expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL, what);
      char buf[64] __attribute__((aligned(16)));
      c.workspace = buf;
      c.workspace_bytes = sizeof buf;
      snprintf(what, sizeof what, "%s: unneeded workspace given", mhct_op_name(kOps[i]));
      expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL, what);
      continue;
    }
    exercised = 1;
    snprintf(count, sizeof count, "%zu", need);
    c.workspace_bytes = need - 1;
    snprintf(what, sizeof what, "%s: workspace %zu < %zu", mhct_op_name(kOps[i]), need - 1, need);
    expect_status(mhct_call_run(F.ctx, &c), MHC_ERROR_WORKSPACE_TOO_SMALL, "workspace_bytes",
                  count, what);
  }
  if (!exercised) print_message("CPU backend needs no workspace: see tests/gpu for the rule\n");
}

/* ---------------------------------------------------------------------------------------- */
/* T = 0                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static void test_zero_tokens(void **state) {
  (void)state;
  mhct_problem pb;
  assert_int_equal(mhct_problem_alloc(&pb, kDLCPU, 0, H0, 0), 0);
  mhct_problem_fill(&pb, MHCT_INPUTS_VLLM, 5);
  /* every token-major tensor points at a sentinel buffer (they have no elements) */
  unsigned char *sentinel = malloc(4096);
  assert_non_null(sentinel);
  memset(sentinel, 0xAB, 4096);
  mhct_tensor *token[9] = {&pb.x,           &pb.residual,     &pb.post_mix,
                           &pb.comb_mix,    &pb.residual_out, &pb.post_mix_out,
                           &pb.comb_mix_out, &pb.layer_input_out, &pb.out};
  void *saved[9];
  for (int k = 0; k < 9; ++k) {
    saved[k] = token[k]->dl.data;
    token[k]->dl.data = sentinel + 256 * k;
  }
  char what[80];
  for (int with_norm = 0; with_norm < 2; ++with_norm)
    for (int i = 0; i < 4; ++i) {
      const mhct_call c = mhct_problem_call(&pb, kOps[i], with_norm);
      snprintf(what, sizeof what, "%s: T = 0", mhct_op_name(kOps[i]));
      expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL, what);
    }
  for (int b = 0; b < 4096; ++b)
    if (sentinel[b] != 0xAB) fail_msg("T = 0 wrote byte %d of the sentinel buffers", b);
  /* T = 0 with NULL data pointers */
  for (int k = 0; k < 9; ++k) token[k]->dl.data = NULL;
  for (int i = 0; i < 4; ++i) {
    const mhct_call c = mhct_problem_call(&pb, kOps[i], 1);
    snprintf(what, sizeof what, "%s: T = 0, data NULL", mhct_op_name(kOps[i]));
    expect_status(mhct_call_run(F.ctx, &c), MHC_SUCCESS, NULL, NULL, what);
  }
  for (int k = 0; k < 9; ++k) token[k]->dl.data = saved[k];
  free(sentinel);
  mhct_problem_free(&pb);
}

/* ---------------------------------------------------------------------------------------- */
/* status strings, version, error message                                                   */
/* ---------------------------------------------------------------------------------------- */

static void test_status_strings(void **state) {
  (void)state;
  static const char *const names[10] = {
      "MHC_SUCCESS",           "MHC_ERROR_INVALID_ARGUMENT",    "MHC_ERROR_INVALID_HANDLE",
      "MHC_ERROR_NOT_SUPPORTED", "MHC_ERROR_DEVICE_MISMATCH",   "MHC_ERROR_WORKSPACE_TOO_SMALL",
      "MHC_ERROR_OUT_OF_MEMORY", "MHC_ERROR_CUDA",              "MHC_ERROR_VERSION_MISMATCH",
      "MHC_ERROR_INTERNAL"};
  for (int s = 0; s < 10; ++s) assert_string_equal(mhc_status_string(s), names[s]);
  const mhc_status_t unknown[5] = {10, -1, 1000, INT32_MIN, INT32_MAX};
  for (int i = 0; i < 5; ++i) {
    assert_non_null(mhc_status_string(unknown[i]));
    assert_string_equal(mhc_status_string(unknown[i]), "MHC_ERROR_UNKNOWN");
  }
}

static void test_version(void **state) {
  (void)state;
  assert_int_equal(mhc_get_version(), MHC_VERSION);
  assert_int_equal(MHC_VERSION,
                   MHC_VERSION_MAJOR * 10000 + MHC_VERSION_MINOR * 100 + MHC_VERSION_PATCH);
  char s[32];
  snprintf(s, sizeof s, "%d.%d.%d", MHC_VERSION_MAJOR, MHC_VERSION_MINOR, MHC_VERSION_PATCH);
  assert_string_equal(s, MHC_VERSION_STRING);
}

typedef struct msg_thread {
  char first[256];   /* message before any call */
  char after[256];   /* after a failing call */
  char success[256]; /* after a later successful call */
} msg_thread;

static void *msg_thread_main(void *arg) {
  msg_thread *m = (msg_thread *)arg;
  snprintf(m->first, sizeof m->first, "%s", mhc_last_error_message());
  size_t b;
  (void)mhc_workspace_size(F.ctx, 42, &F.pb.params, 1, 64, &b);
  snprintf(m->after, sizeof m->after, "%s", mhc_last_error_message());
  (void)mhc_workspace_size(F.ctx, MHC_OP_HC_PRE, &F.pb.params, 1, 64, &b);
  snprintf(m->success, sizeof m->success, "%s", mhc_last_error_message());
  return NULL;
}

/* The message is per thread, "" before any failure, and a success does not clear it. */
static void test_last_error_message(void **state) {
  (void)state;
  size_t b;
  (void)mhc_workspace_size(F.ctx, MHC_OP_HC_PRE, &F.pb.params, -5, 64, &b);
  char mine[256];
  snprintf(mine, sizeof mine, "%s", mhc_last_error_message());
  assert_true(mhct_names_arg(mine, "num_tokens"));
  msg_thread m;
  pthread_t tid;
  assert_int_equal(pthread_create(&tid, NULL, msg_thread_main, &m), 0);
  assert_int_equal(pthread_join(tid, NULL), 0);
  assert_string_equal(m.first, "");
  assert_true(mhct_names_arg(m.after, "op"));
  assert_string_equal(m.success, m.after);
  assert_string_equal(mhc_last_error_message(), mine); /* the other thread did not touch ours */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_null_tensor),
      cmocka_unit_test(test_wrong_device),
      cmocka_unit_test(test_wrong_dtype),
      cmocka_unit_test(test_wrong_ndim),
      cmocka_unit_test(test_wrong_shape),
      cmocka_unit_test(test_post_mix_shapes),
      cmocka_unit_test(test_strides),
      cmocka_unit_test(test_strides_of_size_one_dims_ignored),
      cmocka_unit_test(test_byte_offset),
      cmocka_unit_test(test_overlap),
      cmocka_unit_test(test_adjacent_and_aliased_inputs),
      cmocka_unit_test(test_params),
      cmocka_unit_test(test_weights_null),
      cmocka_unit_test(test_null_context),
      cmocka_unit_test(test_destroyed_context),
      cmocka_unit_test(test_context_create),
      cmocka_unit_test(test_cuda_backend_in_cpu_only_build),
      cmocka_unit_test(test_workspace_size),
      cmocka_unit_test(test_workspace_too_small),
      cmocka_unit_test(test_zero_tokens),
      cmocka_unit_test(test_status_strings),
      cmocka_unit_test(test_version),
      cmocka_unit_test(test_last_error_message),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
