// The exported entry points: the exception firewall of the library. Each function validates
// (src/validate.cpp), then hands plain arguments to the context's backend. Nothing thrown
// below may cross the C ABI: everything is caught here and turned into a status plus the
// calling thread's error message.
#include <exception>
#include <new>
#include <string>

#include "context.hpp"
#include "error.hpp"
#include "mhc/mhc.h"
#include "validate.hpp"

namespace {

thread_local std::string t_last_error;

template <class F>
mhc_status_t guarded(F &&body) noexcept {
  try {
    body();
    return MHC_SUCCESS;
  } catch (const mhc::Error &e) {
    try { t_last_error = e.message(); } catch (...) {}
    return e.status();
  } catch (const std::bad_alloc &) {
    try { t_last_error = "out of host memory"; } catch (...) {}
    return MHC_ERROR_OUT_OF_MEMORY;
  } catch (const std::exception &e) {
    try { t_last_error = std::string("internal error: ") + e.what(); } catch (...) {}
    return MHC_ERROR_INTERNAL;
  } catch (...) {
    try { t_last_error = "internal error: unknown exception"; } catch (...) {}
    return MHC_ERROR_INTERNAL;
  }
}

}  // namespace

extern "C" {

MHC_API const char *mhc_status_string(mhc_status_t status) {
  switch (status) {
    case MHC_SUCCESS: return "MHC_SUCCESS";
    case MHC_ERROR_INVALID_ARGUMENT: return "MHC_ERROR_INVALID_ARGUMENT";
    case MHC_ERROR_INVALID_HANDLE: return "MHC_ERROR_INVALID_HANDLE";
    case MHC_ERROR_NOT_SUPPORTED: return "MHC_ERROR_NOT_SUPPORTED";
    case MHC_ERROR_DEVICE_MISMATCH: return "MHC_ERROR_DEVICE_MISMATCH";
    case MHC_ERROR_WORKSPACE_TOO_SMALL: return "MHC_ERROR_WORKSPACE_TOO_SMALL";
    case MHC_ERROR_OUT_OF_MEMORY: return "MHC_ERROR_OUT_OF_MEMORY";
    case MHC_ERROR_CUDA: return "MHC_ERROR_CUDA";
    case MHC_ERROR_VERSION_MISMATCH: return "MHC_ERROR_VERSION_MISMATCH";
    case MHC_ERROR_INTERNAL: return "MHC_ERROR_INTERNAL";
    default: return "MHC_ERROR_UNKNOWN";
  }
}

MHC_API const char *mhc_last_error_message(void) { return t_last_error.c_str(); }

MHC_API int32_t mhc_get_version(void) { return MHC_VERSION; }

MHC_API mhc_status_t mhc_context_create(mhc_context **out, const mhc_context_config *cfg) {
  if (out != nullptr) *out = nullptr;
  return guarded([&] {
    if (out == nullptr) mhc::fail(MHC_ERROR_INVALID_ARGUMENT, "out: expected a pointer, got NULL");
    mhc_context_config defaults = MHC_CONTEXT_CONFIG_INIT;
    if (cfg == nullptr) cfg = &defaults;
    if (cfg->size != sizeof(mhc_context_config) || cfg->version != MHC_CONTEXT_CONFIG_VERSION)
      mhc::fail(MHC_ERROR_VERSION_MISMATCH,
                "cfg: expected size %zu and version %u (use MHC_CONTEXT_CONFIG_INIT), got size "
                "%zu version %u",
                sizeof(mhc_context_config), MHC_CONTEXT_CONFIG_VERSION, cfg->size, cfg->version);
    *out = mhc::create_context(*cfg);
  });
}

MHC_API mhc_status_t mhc_context_destroy(mhc_context *ctx) {
  if (ctx == nullptr) return MHC_SUCCESS;
  return guarded([&] { mhc::destroy_context(ctx); });
}

MHC_API mhc_status_t mhc_context_get_backend(const mhc_context *ctx, int32_t *backend,
                                             int32_t *device_id) {
  return guarded([&] {
    const mhc_context &c = mhc::live_context(ctx);
    if (backend == nullptr && device_id == nullptr)
      mhc::fail(MHC_ERROR_INVALID_ARGUMENT, "backend, device_id: both are NULL");
    if (backend) *backend = c.backend_kind;
    if (device_id) *device_id = c.device_id;
  });
}

MHC_API mhc_status_t mhc_hc_pre(mhc_context *ctx, const mhc_hc_params *p,
                                const mhc_hc_weights *w, const DLTensor *residual,
                                const DLTensor *post_mix_out, const DLTensor *comb_mix_out,
                                const DLTensor *layer_input_out, void *workspace,
                                size_t workspace_bytes, struct CUstream_st *stream) {
  return guarded([&] {
    const mhc_context &c = mhc::live_context(ctx);
    const mhc::PreArgs a = mhc::validate_pre(c, p, w, residual, post_mix_out, comb_mix_out,
                                             layer_input_out, workspace, workspace_bytes, stream);
    if (a.T > 0) c.backend->hc_pre(a);
  });
}

MHC_API mhc_status_t mhc_hc_post(mhc_context *ctx, const DLTensor *x, const DLTensor *residual,
                                 const DLTensor *post_mix, const DLTensor *comb_mix,
                                 const DLTensor *residual_out, struct CUstream_st *stream) {
  return guarded([&] {
    const mhc_context &c = mhc::live_context(ctx);
    const mhc::PostArgs a =
        mhc::validate_post(c, x, residual, post_mix, comb_mix, residual_out, stream);
    if (a.T > 0) c.backend->hc_post(a);
  });
}

MHC_API mhc_status_t mhc_hc_post_pre(mhc_context *ctx, const mhc_hc_params *p,
                                     const mhc_hc_weights *next, const DLTensor *x,
                                     const DLTensor *residual, const DLTensor *post_mix,
                                     const DLTensor *comb_mix, const DLTensor *residual_out,
                                     const DLTensor *post_mix_out,
                                     const DLTensor *comb_mix_out,
                                     const DLTensor *layer_input_out, void *workspace,
                                     size_t workspace_bytes, struct CUstream_st *stream) {
  return guarded([&] {
    const mhc_context &c = mhc::live_context(ctx);
    const mhc::PostPreArgs a = mhc::validate_post_pre(
        c, p, next, x, residual, post_mix, comb_mix, residual_out, post_mix_out, comb_mix_out,
        layer_input_out, workspace, workspace_bytes, stream);
    if (a.post.T > 0) c.backend->hc_post_pre(a);
  });
}

MHC_API mhc_status_t mhc_hc_head(mhc_context *ctx, const mhc_hc_params *p,
                                 const DLTensor *fn_head, const DLTensor *scale,
                                 const DLTensor *base, const DLTensor *residual,
                                 const DLTensor *out, void *workspace, size_t workspace_bytes,
                                 struct CUstream_st *stream) {
  return guarded([&] {
    const mhc_context &c = mhc::live_context(ctx);
    const mhc::HeadArgs a = mhc::validate_head(c, p, fn_head, scale, base, residual, out,
                                               workspace, workspace_bytes, stream);
    if (a.T > 0) c.backend->hc_head(a);
  });
}

MHC_API mhc_status_t mhc_workspace_size(const mhc_context *ctx, int32_t op,
                                        const mhc_hc_params *p, int64_t num_tokens,
                                        int64_t hidden, size_t *out_bytes) {
  return guarded([&] {
    const mhc_context &c = mhc::live_context(ctx);
    if (out_bytes == nullptr)
      mhc::fail(MHC_ERROR_INVALID_ARGUMENT, "out_bytes: expected a pointer, got NULL");
    mhc::validate_workspace_query(op, p, num_tokens, hidden);
    *out_bytes = (op == MHC_OP_HC_POST || num_tokens == 0)
                     ? 0
                     : c.backend->workspace_size(op, *p, num_tokens, hidden);
  });
}

}  // extern "C"
