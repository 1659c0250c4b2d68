/* The public header compiles as strict C99 (-std=c99 -pedantic -Wall -Wextra -Werror) with no
 * CUDA include path, and its INIT macros carry the DeepSeek-V4 values. */
#include <mhc/mhc.h>

#include <stdio.h>
#include <string.h>

#if defined(__CUDA_RUNTIME_H__) || defined(__CUDA_RUNTIME_API_H__) || defined(CUDA_VERSION) || \
    defined(__DRIVER_TYPES_H__)
#error "mhc/mhc.h must not pull in a CUDA header"
#endif

static int failures = 0;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

/* A file-scope initialiser: the INIT macros are constant expressions in C99. */
static const mhc_hc_params kStaticParams = MHC_HC_PARAMS_INIT;
static const mhc_context_config kStaticConfig = MHC_CONTEXT_CONFIG_INIT;

int main(void) {
  mhc_hc_params p = MHC_HC_PARAMS_INIT;
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  mhc_context *ctx = NULL;
  struct CUstream_st *stream = NULL; /* an incomplete type is enough to pass a stream */
  mhc_hc_weights w;
  mhc_status_t st;
  size_t ws = 1;

  CHECK(p.size == sizeof(mhc_hc_params));
  CHECK(p.version == MHC_HC_PARAMS_VERSION);
  CHECK(p.hc_mult == 4);
  CHECK(p.sinkhorn_iters == 20);
  CHECK(p.rms_eps == 1e-6f);
  CHECK(p.pre_eps == 1e-6f);
  CHECK(p.sinkhorn_eps == 1e-6f);
  CHECK(p.post_mult == 2.0f);
  CHECK(p.norm_eps == 1e-6f);
  CHECK(p.flags == 0u);
  CHECK(memcmp(&p, &kStaticParams, sizeof p) == 0);

  CHECK(cfg.size == sizeof(mhc_context_config));
  CHECK(cfg.version == MHC_CONTEXT_CONFIG_VERSION);
  CHECK(cfg.backend == MHC_BACKEND_CUDA);
  CHECK(cfg.device_id == 0);
  CHECK(cfg.flags == 0u);
  CHECK(memcmp(&cfg, &kStaticConfig, sizeof cfg) == 0);

  CHECK(MHC_VERSION == MHC_VERSION_MAJOR * 10000 + MHC_VERSION_MINOR * 100 + MHC_VERSION_PATCH);
  CHECK(mhc_get_version() == MHC_VERSION);
  CHECK(MHC_SUCCESS == 0 && MHC_ERROR_INVALID_ARGUMENT == 1 && MHC_ERROR_INVALID_HANDLE == 2 &&
        MHC_ERROR_NOT_SUPPORTED == 3 && MHC_ERROR_DEVICE_MISMATCH == 4 &&
        MHC_ERROR_WORKSPACE_TOO_SMALL == 5 && MHC_ERROR_OUT_OF_MEMORY == 6 &&
        MHC_ERROR_CUDA == 7 && MHC_ERROR_VERSION_MISMATCH == 8 && MHC_ERROR_INTERNAL == 9);
  CHECK(MHC_OP_HC_PRE == 1 && MHC_OP_HC_POST_PRE == 2 && MHC_OP_HC_HEAD == 3 &&
        MHC_OP_HC_POST == 4);
  CHECK(strcmp(mhc_status_string(MHC_SUCCESS), "MHC_SUCCESS") == 0);

  /* the whole API links from C */
  cfg.backend = MHC_BACKEND_CPU;
  st = mhc_context_create(&ctx, &cfg);
  CHECK(st == MHC_SUCCESS);
  if (st == MHC_SUCCESS) {
    w.fn = NULL;
    w.scale = NULL;
    w.base = NULL;
    w.norm_weight = NULL;
    CHECK(mhc_workspace_size(ctx, MHC_OP_HC_POST_PRE, &p, 16, 4096, &ws) == MHC_SUCCESS);
    CHECK(ws == 0);
    CHECK(mhc_hc_pre(ctx, &p, &w, NULL, NULL, NULL, NULL, NULL, 0, stream) ==
          MHC_ERROR_INVALID_ARGUMENT);
    CHECK(mhc_hc_post(ctx, NULL, NULL, NULL, NULL, NULL, stream) == MHC_ERROR_INVALID_ARGUMENT);
    CHECK(mhc_hc_post_pre(ctx, &p, &w, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0,
                          stream) == MHC_ERROR_INVALID_ARGUMENT);
    CHECK(mhc_hc_head(ctx, &p, NULL, NULL, NULL, NULL, NULL, NULL, 0, stream) ==
          MHC_ERROR_INVALID_ARGUMENT);
    CHECK(mhc_last_error_message() != NULL);
    CHECK(mhc_context_destroy(ctx) == MHC_SUCCESS);
  }
  if (failures) {
    fprintf(stderr, "header_c99: %d check(s) failed\n", failures);
    return 1;
  }
  printf("header_c99: ok (mhc %s)\n", MHC_VERSION_STRING);
  return 0;
}
