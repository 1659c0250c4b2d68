/* Helpers of the hardening tests: see hardening.h. */
#define _POSIX_C_SOURCE 200809L
#include "hardening.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int32_t hz_device_type = kDLCPU;
int hz_quick = 0;

int hz_iters(int n, int div) {
  if (!hz_quick) return n;
  return n / div > 0 ? n / div : 1;
}

int hz_init(int argc, char **argv) {
  const char *q = getenv("MHC_HARDENING_QUICK");
  hz_quick = q != NULL && q[0] != '\0' && strcmp(q, "0") != 0;
  for (int i = 1; i < argc; ++i)
    if (strcmp(argv[i], "--cuda") == 0) hz_device_type = kDLCUDA;
  if (hz_device_type != kDLCUDA) return 0;
  if (!mhct_have_cuda()) {
    fprintf(stderr, "SKIP: this build has no CUDA backend\n");
    return HZ_SKIP;
  }
  if (mhct_cuda_device_count() < 1) {
    fprintf(stderr, "SKIP: no CUDA device\n");
    return HZ_SKIP;
  }
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  mhc_context *ctx = NULL;
  const mhc_status_t st = mhc_context_create(&ctx, &cfg);
  if (st != MHC_SUCCESS) {
    fprintf(stderr, "SKIP: no usable CUDA context: %s: %s\n", mhc_status_string(st),
            mhc_last_error_message());
    return HZ_SKIP;
  }
  mhc_context_destroy(ctx);
  return 0;
}

mhc_context *hz_context(uint32_t flags) {
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = hz_device_type == kDLCUDA ? MHC_BACKEND_CUDA : MHC_BACKEND_CPU;
  cfg.flags = flags;
  mhc_context *ctx = NULL;
  const mhc_status_t st = mhc_context_create(&ctx, &cfg);
  if (st != MHC_SUCCESS) {
    fprintf(stderr, "hz_context: %s: %s\n", mhc_status_string(st), mhc_last_error_message());
    abort();
  }
  return ctx;
}

mhc_context *hz_shared_ctx;

int hz_setup_shared_context(void **state) {
  (void)state;
  hz_shared_ctx = hz_context(0);
  return 0;
}

int hz_teardown_shared_context(void **state) {
  (void)state;
  return mhc_context_destroy(hz_shared_ctx) == MHC_SUCCESS ? 0 : -1;
}

int hz_problem_pair(mhct_problem *host, mhct_problem *dev, const mhc_context *ctx, int64_t T,
                    int64_t H, mhct_inputs family, uint64_t seed) {
  if (mhct_problem_alloc(host, kDLCPU, T, H, 0) != 0) return -1;
  mhct_problem_fill(host, family, seed);
  if (mhct_problem_alloc(dev, hz_device_type, T, H, 0) != 0) return -1;
  if (mhct_problem_copy_inputs(dev, host) != 0) return -1;
  return mhct_problem_alloc_workspace(dev, ctx);
}

int hz_problem_upload(mhct_problem *dev, const mhct_problem *host) {
  return mhct_problem_copy_inputs(dev, host);
}

int hz_problem_download(mhct_problem *host, const mhct_problem *dev) {
  if (dev->device_type != kDLCPU && mhct_device_synchronize() != 0) return -1;
  mhct_tensor *h[5] = HZ_OUTPUT_TENSORS(host);
  const mhct_tensor *d[5] = HZ_OUTPUT_TENSORS(dev);
  for (int i = 0; i < 5; ++i)
    if (mhct_tensor_copy(h[i], d[i]) != 0) return -1;
  return 0;
}

void hz_written(int32_t op, int w[5]) {
  w[0] = op == MHC_OP_HC_POST || op == MHC_OP_HC_POST_PRE;
  w[1] = w[2] = w[3] = op == MHC_OP_HC_PRE || op == MHC_OP_HC_POST_PRE;
  w[4] = op == MHC_OP_HC_HEAD;
}

int hz_outputs_save(hz_outputs *o, const mhct_problem *pb) {
  memset(o, 0, sizeof *o);
  if (pb->device_type != kDLCPU && mhct_device_synchronize() != 0) return -1;
  const mhct_tensor *t[5] = HZ_OUTPUT_TENSORS(pb);
  for (int i = 0; i < 5; ++i) {
    o->bytes[i] = mhct_tensor_nbytes(t[i]);
    o->data[i] = mhct_tensor_to_host(t[i]);
    if (o->data[i] == NULL) return -1;
  }
  return 0;
}

void hz_outputs_free(hz_outputs *o) {
  for (int i = 0; i < 5; ++i) free(o->data[i]);
  memset(o, 0, sizeof *o);
}

int hz_outputs_equal(const hz_outputs *o, const mhct_problem *pb, const char *what) {
  static const char *names[5] = {"residual_out", "post_mix_out", "comb_mix_out",
                                 "layer_input_out", "out"};
  hz_outputs now;
  if (hz_outputs_save(&now, pb) != 0) return 0;
  int ok = 1;
  for (int i = 0; i < 5 && ok; ++i) {
    if (now.bytes[i] != o->bytes[i] || memcmp(now.data[i], o->data[i], o->bytes[i]) != 0) {
      size_t k = 0;
      const unsigned char *a = now.data[i], *b = o->data[i];
      while (k < o->bytes[i] && a[k] == b[k]) ++k;
      fprintf(stderr, "%s: %s differs from the reference run at byte %zu of %zu\n", what,
              names[i], k, o->bytes[i]);
      ok = 0;
    }
  }
  hz_outputs_free(&now);
  return ok;
}

mhc_status_t hz_run(mhc_context *ctx, const mhct_problem *pb, int32_t op, int with_norm,
                    struct CUstream_st *stream) {
  mhct_call c = mhct_problem_call(pb, op, with_norm);
  c.stream = stream;
  return mhct_call_run(ctx, &c);
}

int hz_class_f64(double v) {
  if (isnan(v)) return HZ_NAN;
  if (isinf(v)) return v > 0 ? HZ_PINF : HZ_NINF;
  return HZ_FINITE;
}

int hz_class_f32(float v) { return hz_class_f64((double)v); }

int hz_class_bf16(uint16_t b) { return hz_class_f64((double)mhct_bf16_to_f32(b)); }

const char *hz_class_name(int c) {
  switch (c) {
    case HZ_NAN: return "NaN";
    case HZ_PINF: return "+Inf";
    case HZ_NINF: return "-Inf";
    default: return "finite";
  }
}

double hz_now_us(void) { return 1e6 * mhct_now_s(); }
