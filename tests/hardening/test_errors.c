/*
 * Errors that must be clear (CPU backend; with --cuda the CUDA backend, label gpu).
 *
 *  - misaligned data pointers: an odd byte_offset on any bf16 tensor, or a byte_offset that
 *    is not a multiple of 4 on any float32 tensor, gives MHC_ERROR_INVALID_ARGUMENT with a
 *    message naming that tensor; a 2-byte offset on every bf16 tensor (4 on float32) is valid
 *    and gives the same bits as aligned data (on CUDA: the element-wise path);
 *  - a context used after destroy gives MHC_ERROR_INVALID_HANDLE from every entry point,
 *    destroying it again too;
 *  - MHC_CONTEXT_FLAG_CHECK_POINTERS and MHC_CHECK_POINTERS=1 are accepted and change no
 *    result on memory of the right kind (in a CPU-only build the CPU backend cannot tell
 *    pointer kinds apart, so the flag does nothing there); wrong-kind pointers are
 *    tests/hardening/test_gpu_pointers.c;
 *  - the stream argument is ignored by the CPU backend, whatever its value.
 */
#define _POSIX_C_SOURCE 200809L
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


/* Which tensors of the problem an op reads or writes, with their argument names. */
typedef struct slot {
  const char *name;
  size_t offset; /* offsetof(mhct_problem, tensor) */
  int bf16;
} slot;

#define SLOT(field, bf) {#field, offsetof(mhct_problem, field), bf}
static const slot kPostSlots[] = {SLOT(x, 1), SLOT(residual, 1), SLOT(post_mix, 0),
                                  SLOT(comb_mix, 0), SLOT(residual_out, 1)};
static const slot kPreSlots[] = {SLOT(residual, 1),       SLOT(fn, 0),           SLOT(scale, 0),
                                 SLOT(base, 0),           SLOT(norm_weight, 1),  SLOT(post_mix_out, 0),
                                 SLOT(comb_mix_out, 0),   SLOT(layer_input_out, 1)};
static const slot kPostPreSlots[] = {
    SLOT(x, 1),        SLOT(residual, 1),     SLOT(post_mix, 0),     SLOT(comb_mix, 0),
    SLOT(fn, 0),       SLOT(scale, 0),        SLOT(base, 0),         SLOT(norm_weight, 1),
    SLOT(residual_out, 1), SLOT(post_mix_out, 0), SLOT(comb_mix_out, 0), SLOT(layer_input_out, 1)};
static const slot kHeadSlots[] = {SLOT(fn_head, 0), SLOT(scale_head, 0), SLOT(base_head, 0),
                                  SLOT(residual, 1), SLOT(out, 1)};

/* The library's argument name of a problem tensor (as it appears in messages). */
static const char *arg_name(const char *field, int32_t op) {
  if (strcmp(field, "scale_head") == 0) return "scale";
  if (strcmp(field, "base_head") == 0) return "base";
  (void)op;
  return field;
}

static void ops_and_slots(int k, int32_t *op, const slot **slots, int *n) {
  switch (k) {
    case 0: *op = MHC_OP_HC_POST; *slots = kPostSlots; *n = 5; break;
    case 1: *op = MHC_OP_HC_PRE; *slots = kPreSlots; *n = 8; break;
    case 2: *op = MHC_OP_HC_POST_PRE; *slots = kPostPreSlots; *n = 12; break;
    default: *op = MHC_OP_HC_HEAD; *slots = kHeadSlots; *n = 5; break;
  }
}

static mhct_tensor *tensor_of(mhct_problem *pb, const slot *s) {
  return (mhct_tensor *)((char *)pb + s->offset);
}

/* Replaces tensor *t by a copy of its data that starts `offset` bytes into a fresh allocation
 * (dl.byte_offset = offset). */
static void reallocate_with_offset(mhct_tensor *t, uint64_t offset) {
  mhct_tensor fresh;
  assert_int_equal(mhct_tensor_alloc_ex(&fresh, t->dl.device.device_type,
                                        t->dl.dtype.bits == 16 ? MHCT_BF16 : MHCT_F32,
                                        t->dl.ndim, t->dl.shape, offset, 0),
                   0);
  assert_int_equal(mhct_tensor_copy(&fresh, t), 0);
  mhct_tensor_free(t);
  /* fresh.dl.shape points into fresh: move it into *t and re-point */
  memcpy(t, &fresh, sizeof fresh);
  t->dl.shape = t->shape;
}

static void test_odd_byte_offset_is_invalid_argument(void **state) {
  (void)state;
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, hz_shared_ctx, 3, 64, MHCT_INPUTS_MODEL, 11), 0);
  int checked = 0;
  for (int k = 0; k < 4; ++k) {
    int32_t op;
    const slot *slots;
    int n;
    ops_and_slots(k, &op, &slots, &n);
    for (int i = 0; i < n; ++i) {
      mhct_tensor *t = tensor_of(&d, &slots[i]);
      const uint64_t saved = t->dl.byte_offset;
      const uint64_t bad[3] = {1, 3, slots[i].bf16 ? 5 : 2};
      for (int b = 0; b < 3; ++b) {
        t->dl.byte_offset = saved + bad[b];
        const mhc_status_t st = hz_run(hz_shared_ctx, &d, op, 1, NULL);
        const char *msg = mhc_last_error_message();
        if (st != MHC_ERROR_INVALID_ARGUMENT || strstr(msg, arg_name(slots[i].name, op)) == NULL ||
            strstr(msg, "aligned") == NULL) {
          fprintf(stderr, "%s: byte_offset %llu on %s gave %s: \"%s\"\n", mhct_op_name(op),
                  (unsigned long long)bad[b], slots[i].name, mhc_status_string(st), msg);
          fail();
        }
        ++checked;
      }
      t->dl.byte_offset = saved;
    }
    assert_int_equal(hz_run(hz_shared_ctx, &d, op, 1, NULL), MHC_SUCCESS);
  }
  printf("checked %d misaligned tensors\n", checked);
  mhct_problem_free(&h);
  mhct_problem_free(&d);
}

/* Every tensor of every op 2 (bf16) or 4 (float32) bytes past a 256-byte boundary: valid, and
 * the same bits as with aligned tensors. H = 64 so that aligned data takes the vectorised
 * path on CUDA and the offset one the element-wise path. */
static void test_element_aligned_offset_same_bits(void **state) {
  (void)state;
  for (int shape = 0; shape < 2; ++shape) {
    const int64_t T = shape ? 5 : 16, H = shape ? 24 : 64;
    mhct_problem h, aligned, shifted;
    assert_int_equal(hz_problem_pair(&h, &aligned, hz_shared_ctx, T, H, MHCT_INPUTS_MODEL, 21), 0);
    assert_int_equal(mhct_problem_alloc(&shifted, hz_device_type, T, H, 0), 0);
    assert_int_equal(mhct_problem_copy_inputs(&shifted, &h), 0);
    assert_int_equal(mhct_problem_alloc_workspace(&shifted, hz_shared_ctx), 0);
    mhct_tensor *all[16] = {&shifted.x, &shifted.residual, &shifted.post_mix, &shifted.comb_mix,
                            &shifted.fn, &shifted.scale, &shifted.base, &shifted.norm_weight,
                            &shifted.fn_head, &shifted.scale_head, &shifted.base_head,
                            &shifted.residual_out, &shifted.post_mix_out, &shifted.comb_mix_out,
                            &shifted.layer_input_out, &shifted.out};
    for (int i = 0; i < 16; ++i) reallocate_with_offset(all[i], all[i]->dl.dtype.bits / 8);
    for (int k = 0; k < 4; ++k) {
      int32_t op;
      const slot *slots;
      int n;
      ops_and_slots(k, &op, &slots, &n);
      for (int norm = 0; norm < 2; ++norm) {
        if (norm && (op == MHC_OP_HC_POST || op == MHC_OP_HC_HEAD)) continue;
        assert_int_equal(hz_run(hz_shared_ctx, &aligned, op, norm, NULL), MHC_SUCCESS);
        const mhc_status_t st = hz_run(hz_shared_ctx, &shifted, op, norm, NULL);
        if (st != MHC_SUCCESS) {
          fprintf(stderr, "%s with 2-byte aligned tensors: %s: %s\n", mhct_op_name(op),
                  mhc_status_string(st), mhc_last_error_message());
          fail();
        }
        hz_outputs ref;
        assert_int_equal(hz_outputs_save(&ref, &aligned), 0);
        char what[64];
        snprintf(what, sizeof what, "%s%s T=%lld H=%lld offset vs aligned", mhct_op_name(op),
                 norm ? "+norm" : "", (long long)T, (long long)H);
        assert_true(hz_outputs_equal(&ref, &shifted, what));
        hz_outputs_free(&ref);
      }
    }
    mhct_problem_free(&h);
    mhct_problem_free(&aligned);
    mhct_problem_free(&shifted);
  }
}

static void expect_handle_error(mhc_status_t st, const char *what) {
  if (st != MHC_ERROR_INVALID_HANDLE) {
    fprintf(stderr, "%s on a destroyed context gave %s: %s\n", what, mhc_status_string(st),
            mhc_last_error_message());
    fail();
  }
  assert_non_null(strstr(mhc_last_error_message(), "ctx"));
}

static void test_use_after_destroy(void **state) {
  (void)state;
  mhc_context *ctx = hz_context(0);
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, ctx, 2, 32, MHCT_INPUTS_MODEL, 3), 0);
  assert_int_equal(hz_run(ctx, &d, MHC_OP_HC_POST, 0, NULL), MHC_SUCCESS);
  assert_int_equal(mhc_context_destroy(ctx), MHC_SUCCESS);
  /* ctx now dangles; the library must recognise it without dereferencing it */
  for (int k = 0; k < 4; ++k) {
    int32_t op;
    const slot *slots;
    int n;
    ops_and_slots(k, &op, &slots, &n);
    expect_handle_error(hz_run(ctx, &d, op, 1, NULL), mhct_op_name(op));
  }
  size_t bytes = 0;
  expect_handle_error(mhc_workspace_size(ctx, MHC_OP_HC_PRE, &d.params, 2, 32, &bytes),
                      "mhc_workspace_size");
  int32_t backend = 0, device = 0;
  expect_handle_error(mhc_context_get_backend(ctx, &backend, &device), "mhc_context_get_backend");
  expect_handle_error(mhc_context_destroy(ctx), "mhc_context_destroy (second time)");
  mhct_problem_free(&h);
  mhct_problem_free(&d);
}

static void run_all_ops(mhc_context *ctx, mhct_problem *d, hz_outputs out[6]) {
  const int32_t ops[6] = {MHC_OP_HC_POST, MHC_OP_HC_PRE, MHC_OP_HC_PRE, MHC_OP_HC_POST_PRE,
                          MHC_OP_HC_POST_PRE, MHC_OP_HC_HEAD};
  mhct_tensor *outs[5] = HZ_OUTPUT_TENSORS(d);
  for (int i = 0; i < 5; ++i) assert_int_equal(mhct_tensor_fill_bytes(outs[i], 0), 0);
  for (int k = 0; k < 6; ++k) {
    const mhc_status_t st = hz_run(ctx, d, ops[k], k == 2 || k == 4, NULL);
    if (st != MHC_SUCCESS) {
      fprintf(stderr, "%s: %s: %s\n", mhct_op_name(ops[k]), mhc_status_string(st),
              mhc_last_error_message());
      fail();
    }
    assert_int_equal(hz_outputs_save(&out[k], d), 0);
  }
}

static void test_check_pointers_accepted(void **state) {
  (void)state;
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, hz_shared_ctx, 4, 40, MHCT_INPUTS_MODEL, 8), 0);
  hz_outputs plain[6], flagged[6], env[6];
  run_all_ops(hz_shared_ctx, &d, plain);

  mhc_context *cf = hz_context(MHC_CONTEXT_FLAG_CHECK_POINTERS);
  run_all_ops(cf, &d, flagged);
  assert_int_equal(mhc_context_destroy(cf), MHC_SUCCESS);

  setenv("MHC_CHECK_POINTERS", "1", 1);
  mhc_context *ce = hz_context(0);
  unsetenv("MHC_CHECK_POINTERS");
  run_all_ops(ce, &d, env);
  assert_int_equal(mhc_context_destroy(ce), MHC_SUCCESS);

  for (int k = 0; k < 6; ++k)
    for (int i = 0; i < 5; ++i) {
      assert_memory_equal(plain[k].data[i], flagged[k].data[i], plain[k].bytes[i]);
      assert_memory_equal(plain[k].data[i], env[k].data[i], plain[k].bytes[i]);
    }
  for (int k = 0; k < 6; ++k) {
    hz_outputs_free(&plain[k]);
    hz_outputs_free(&flagged[k]);
    hz_outputs_free(&env[k]);
  }
  mhct_problem_free(&h);
  mhct_problem_free(&d);
}

static void test_cpu_ignores_stream(void **state) {
  (void)state;
  if (hz_device_type != kDLCPU) skip();
  mhct_problem h, d;
  assert_int_equal(hz_problem_pair(&h, &d, hz_shared_ctx, 2, 16, MHCT_INPUTS_MODEL, 4), 0);
  struct CUstream_st *garbage[3] = {(struct CUstream_st *)(uintptr_t)0x1,
                                    (struct CUstream_st *)(uintptr_t)0xdeadbeef0,
                                    (struct CUstream_st *)(uintptr_t)UINTPTR_MAX};
  for (int k = 0; k < 3; ++k)
    for (int32_t op = 1; op <= 4; ++op)
      assert_int_equal(hz_run(hz_shared_ctx, &d, op, 1, garbage[k]), MHC_SUCCESS);
  mhct_problem_free(&h);
  mhct_problem_free(&d);
}

int main(int argc, char **argv) {
  const int rc = hz_init(argc, argv);
  if (rc != 0) return rc;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_odd_byte_offset_is_invalid_argument),
      cmocka_unit_test(test_element_aligned_offset_same_bits),
      cmocka_unit_test(test_use_after_destroy),
      cmocka_unit_test(test_check_pointers_accepted),
      cmocka_unit_test(test_cpu_ignores_stream),
  };
  return cmocka_run_group_tests_name(hz_device_type == kDLCUDA ? "errors (CUDA backend)"
                                                               : "errors (CPU backend)",
                                     tests, hz_setup_shared_context,
                                     hz_teardown_shared_context);
}
