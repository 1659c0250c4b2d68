/*
 * mhc -- manifold-constrained Hyper-Connection (mHC) operators of DeepSeek-V4.
 *
 * The one public header of libmhc. It compiles as C99 and as C++ without any CUDA header on
 * the include path: CUDA streams are passed as `struct CUstream_st *`, which is exactly what
 * `cudaStream_t` is, so CUDA users pass their stream unchanged.
 *
 * Conventions (shared by every entry point)
 * -----------------------------------------
 *  - Every function returns an mhc_status_t; MHC_SUCCESS (0) means success. On failure a
 *    human-readable message naming the offending argument, the expected and the actual value
 *    is stored for the calling thread and returned by mhc_last_error_message(). Success does
 *    not clear it.
 *  - Out-parameters come first for constructors (libgit2 style), last otherwise.
 *  - Tensors are borrowed `const DLTensor *` (DLPack): the library reads the descriptor during
 *    the call and never keeps a pointer to it or to its data after the call returns. On the
 *    CUDA backend the data is accessed asynchronously on `stream`, so caller memory must stay
 *    alive until the stream work completes.
 *  - Tensors must be dense row-major (strides NULL, or equal to the compact row-major strides;
 *    strides of size-1 dimensions and of empty tensors are ignored), on the context's device
 *    (kDLCUDA with the context's device id, or kDLCPU for the CPU backend; kDLCUDAHost and
 *    kDLCUDAManaged memory is accepted by the CUDA backend, kDLCUDAHost by the CPU backend),
 *    of the documented dtype, and outputs may not overlap any
 *    input or each other. `byte_offset` is honoured.
 *  - Data pointers (data + byte_offset) must be aligned to their element size. On the CUDA
 *    backend, 16-byte aligned data with hidden % 8 == 0 takes vectorised kernels; anything
 *    else takes an element-wise path that returns the same bits, only slower.
 *  - T (num_tokens) = 0 is valid and does nothing.
 *  - No entry point lets a C++ exception escape; internal errors map to MHC_ERROR_INTERNAL.
 *
 * Threading: a context is immutable after creation and may be used from any number of
 * threads at once, on any streams, as long as the threads do not share output buffers or
 * workspaces. mhc_context_destroy must not race with calls using the same context.
 *
 * CUDA graphs: operator calls on the CUDA backend allocate nothing, never synchronise the
 * host and compile nothing at run time, so they can be captured in a CUDA graph. Launch
 * configuration depends only on (T, hidden, params->flags, device), so a captured graph is
 * valid for the shapes it was captured with.
 *
 * History of contract changes (append-only):
 *  - 0.1.0: first version.
 */
#ifndef MHC_MHC_H_
#define MHC_MHC_H_

#include <stddef.h>
#include <stdint.h>

#include <dlpack/dlpack.h>

#include "mhc/version.h"

#if defined(_WIN32)
#define MHC_API
#elif defined(__GNUC__) || defined(__clang__)
#define MHC_API __attribute__((visibility("default")))
#else
#define MHC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* Status codes. Values are append-only and never renumbered.                               */
/* ---------------------------------------------------------------------------------------- */
typedef int32_t mhc_status_t;
#define MHC_SUCCESS                   0
#define MHC_ERROR_INVALID_ARGUMENT    1 /* NULL pointer, bad shape/stride/overlap/value      */
#define MHC_ERROR_INVALID_HANDLE      2 /* NULL or destroyed context                         */
#define MHC_ERROR_NOT_SUPPORTED       3 /* dtype, hc_mult, shape or arch not supported       */
#define MHC_ERROR_DEVICE_MISMATCH     4 /* tensor on another device than the context         */
#define MHC_ERROR_WORKSPACE_TOO_SMALL 5 /* message says how many bytes are needed            */
#define MHC_ERROR_OUT_OF_MEMORY       6
#define MHC_ERROR_CUDA                7 /* a CUDA runtime call failed; message has the name   */
#define MHC_ERROR_VERSION_MISMATCH    8 /* struct size/version unknown to this library       */
#define MHC_ERROR_INTERNAL            9

/* Static English name of a status ("MHC_SUCCESS", ...). Never NULL; unknown values give
 * "MHC_ERROR_UNKNOWN". Thread-safe. */
MHC_API const char *mhc_status_string(mhc_status_t status);

/* Detail of the last failure on the calling thread ("" if none yet). Never NULL. The
 * pointer stays valid until the next mhc_* call on the same thread. */
MHC_API const char *mhc_last_error_message(void);

/* Run-time library version, MHC_VERSION_MAJOR*10000 + MINOR*100 + PATCH. Compare with the
 * compile-time MHC_VERSION to detect a header/library mismatch. */
MHC_API int32_t mhc_get_version(void);

/* ---------------------------------------------------------------------------------------- */
/* Context                                                                                  */
/* ---------------------------------------------------------------------------------------- */
typedef struct mhc_context mhc_context; /* opaque, immutable after create */

#define MHC_BACKEND_CUDA 1
#define MHC_BACKEND_CPU  2

/* Context flags (mhc_context_config.flags). */
/* Check on every call with cudaPointerGetAttributes that each tensor's memory really lives
 * where its DLDevice says (device memory of the context's GPU for the CUDA backend, host
 * memory for the CPU backend), returning MHC_ERROR_DEVICE_MISMATCH instead of faulting.
 * Costs host time per tensor (see README); also enabled by the environment variable
 * MHC_CHECK_POINTERS=1 at context creation. In a CPU-only build the CPU backend has no way
 * to tell and the flag is accepted but does nothing. */
#define MHC_CONTEXT_FLAG_CHECK_POINTERS (1u << 0)
/* Launch the first kernel of each op with programmatic dependent launch (Hopper and later):
 * it may be scheduled while the previous kernel on the stream drains, and waits for that
 * kernel's completion before touching any memory, so results are unchanged; it only hides
 * launch latency. (The kernels inside one op are always chained this way on sm_90+.) */
#define MHC_CONTEXT_FLAG_PDL            (1u << 1)

#define MHC_CONTEXT_CONFIG_VERSION 1
typedef struct mhc_context_config {
  size_t size;        /* sizeof(mhc_context_config), set by MHC_CONTEXT_CONFIG_INIT */
  uint32_t version;   /* MHC_CONTEXT_CONFIG_VERSION */
  int32_t backend;    /* MHC_BACKEND_CUDA (default) or MHC_BACKEND_CPU */
  int32_t device_id;  /* CUDA device ordinal; must be 0 for the CPU backend */
  uint32_t flags;     /* MHC_CONTEXT_FLAG_* */
} mhc_context_config;

#define MHC_CONTEXT_CONFIG_INIT \
  { sizeof(mhc_context_config), MHC_CONTEXT_CONFIG_VERSION, MHC_BACKEND_CUDA, 0, 0u }

/* Creates a context bound to one backend and device. cfg may be NULL (CUDA, device 0).
 * On success *out receives the handle; on failure *out is set to NULL (if out is not NULL).
 * Errors: INVALID_ARGUMENT (out NULL, unknown backend or flags, bad device id),
 * VERSION_MISMATCH (cfg->size/version), NOT_SUPPORTED (CUDA backend in a CPU-only build, or
 * a device older than sm_80), CUDA (no usable device), OUT_OF_MEMORY. Thread-safe. */
MHC_API mhc_status_t mhc_context_create(mhc_context **out, const mhc_context_config *cfg);

/* Destroys a context. NULL is a no-op returning MHC_SUCCESS. A context that was already
 * destroyed is detected where possible (MHC_ERROR_INVALID_HANDLE). Must not race with other
 * calls on the same context. Does not synchronise any stream. */
MHC_API mhc_status_t mhc_context_destroy(mhc_context *ctx);

/* Backend and device of a context. */
MHC_API mhc_status_t mhc_context_get_backend(const mhc_context *ctx, int32_t *backend,
                                             int32_t *device_id);

/* ---------------------------------------------------------------------------------------- */
/* Operator parameters                                                                      */
/* ---------------------------------------------------------------------------------------- */
/* params.flags */
/* A token's outputs are bitwise identical whatever the number of tokens in the call (the
 * launch configuration then depends on hidden only). Slightly slower at some T. */
#define MHC_FLAG_BATCH_INVARIANT (1u << 0)

#define MHC_HC_PARAMS_VERSION 1
typedef struct mhc_hc_params {
  size_t size;            /* sizeof(mhc_hc_params), set by MHC_HC_PARAMS_INIT */
  uint32_t version;       /* MHC_HC_PARAMS_VERSION */
  int32_t hc_mult;        /* number of residual streams n; only 4 is supported */
  int32_t sinkhorn_iters; /* Sinkhorn repeats, 1..1000 (DeepSeek-V4: 20) */
  float rms_eps;          /* eps of the RMS over the n*H flattened streams (1e-6), >= 0 */
  float pre_eps;          /* added to the pre gates (1e-6), finite */
  float sinkhorn_eps;     /* Sinkhorn eps (1e-6), >= 0 */
  float post_mult;        /* post gate multiplier (2.0 in the model, 1.0 in vLLM tests), finite */
  float norm_eps;         /* eps of the optional fused RMSNorm of layer_input (1e-6), >= 0 */
  uint32_t flags;         /* MHC_FLAG_* */
} mhc_hc_params;

/* DeepSeek-V4 values. */
#define MHC_HC_PARAMS_INIT                                                                  \
  { sizeof(mhc_hc_params), MHC_HC_PARAMS_VERSION, 4, 20, 1e-6f, 1e-6f, 1e-6f, 2.0f, 1e-6f, \
    0u }

/* One sub-layer's mHC weights (n = hc_mult, H = hidden, M = n*(n+2) = 24). */
typedef struct mhc_hc_weights {
  const DLTensor *fn;          /* [M, n*H] float32, row o multiplies the flattened streams */
  const DLTensor *scale;       /* [3] float32: alpha_pre, alpha_post, alpha_comb */
  const DLTensor *base;        /* [M] float32 */
  const DLTensor *norm_weight; /* [H] bfloat16, or NULL: no fused RMSNorm of layer_input */
} mhc_hc_weights;

struct CUstream_st; /* == cudaStream_t. NULL = legacy default stream. Ignored by the CPU backend. */

/* ---------------------------------------------------------------------------------------- */
/* Operators. Shapes: T tokens (0 <= T < 2^31), n = 4 streams, H hidden (1 <= H <= 2^22,  */
/* larger: NOT_SUPPORTED), K = n*H, M = 24.                                                */
/* Dtypes: residual/x/layer_input bf16 (kDLBfloat, 16 bits); mixes and weights float32.    */
/* On the CUDA backend every call is asynchronous on `stream`; on the CPU backend it runs   */
/* synchronously on the calling thread and `stream` is ignored.                             */
/* ---------------------------------------------------------------------------------------- */

/* hc_pre: sub-layer input and mixes from the residual streams.
 *   residual        [T, n, H] bf16   (in)
 *   post_mix_out    [T, n] or [T, n, 1] f32 (out)  post = post_mult * sigmoid(...)
 *   comb_mix_out    [T, n, n] f32   (out)           Sinkhorn-projected comb, comb[t, src, dst]
 *   layer_input_out [T, H] bf16     (out)           sum_j pre_j * residual_j (then RMSNorm
 *                                                   with w->norm_weight if given)
 *   workspace       device memory of at least mhc_workspace_size(MHC_OP_HC_PRE) bytes,
 *                   16-byte aligned (NULL allowed when that size is 0). Used only during the
 *                   stream work of this call; may be reused by later calls on the same stream.
 * p and w may not be NULL; w->norm_weight may be. */
MHC_API mhc_status_t mhc_hc_pre(mhc_context *ctx, const mhc_hc_params *p,
                                const mhc_hc_weights *w, const DLTensor *residual,
                                const DLTensor *post_mix_out, const DLTensor *comb_mix_out,
                                const DLTensor *layer_input_out, void *workspace,
                                size_t workspace_bytes, struct CUstream_st *stream);

/* hc_post: new residual streams after a sub-layer.
 *   x            [T, H] bf16          sub-layer output
 *   residual     [T, n, H] bf16       streams that fed the matching hc_pre
 *   post_mix     [T, n] or [T, n, 1] f32
 *   comb_mix     [T, n, n] f32
 *   residual_out [T, n, H] bf16 (out) out[t,j,h] = bf16(post[t,j]*x[t,h]
 *                                                   + sum_i comb[t,i,j]*residual[t,i,h])
 * Needs no workspace. */
MHC_API mhc_status_t mhc_hc_post(mhc_context *ctx, const DLTensor *x, const DLTensor *residual,
                                 const DLTensor *post_mix, const DLTensor *comb_mix,
                                 const DLTensor *residual_out, struct CUstream_st *stream);

/* The fused sub-layer boundary: hc_post with (x, residual, post_mix, comb_mix), then hc_pre
 * of the next sub-layer (weights `next`) on the new residual. The outputs are bit for bit
 * those of mhc_hc_post followed by mhc_hc_pre with the same arguments on the same context.
 * Workspace: mhc_workspace_size(MHC_OP_HC_POST_PRE). */
MHC_API mhc_status_t mhc_hc_post_pre(mhc_context *ctx, const mhc_hc_params *p,
                                     const mhc_hc_weights *next, const DLTensor *x,
                                     const DLTensor *residual, const DLTensor *post_mix,
                                     const DLTensor *comb_mix, const DLTensor *residual_out,
                                     const DLTensor *post_mix_out,
                                     const DLTensor *comb_mix_out,
                                     const DLTensor *layer_input_out, void *workspace,
                                     size_t workspace_bytes, struct CUstream_st *stream);

/* hc_head: collapse the streams at the end of the model.
 *   fn_head [n, n*H] f32, scale [1] (or more; element 0 is used) f32, base [n] f32,
 *   residual [T, n, H] bf16, out [T, H] bf16 = bf16(sum_j pre_j * residual_j) with
 *   pre = sigmoid(mix*scale[0] + base) + p->pre_eps.
 * Workspace: mhc_workspace_size(MHC_OP_HC_HEAD). */
MHC_API mhc_status_t mhc_hc_head(mhc_context *ctx, const mhc_hc_params *p,
                                 const DLTensor *fn_head, const DLTensor *scale,
                                 const DLTensor *base, const DLTensor *residual,
                                 const DLTensor *out, void *workspace, size_t workspace_bytes,
                                 struct CUstream_st *stream);

#define MHC_OP_HC_PRE      1
#define MHC_OP_HC_POST_PRE 2
#define MHC_OP_HC_HEAD     3
#define MHC_OP_HC_POST     4 /* always 0 bytes */

/* Workspace bytes an op needs for num_tokens tokens of the given hidden size with these
 * params (the flags matter). 0 on the CPU backend. The size returned for T tokens is also
 * enough for every smaller T, so one buffer sized for the largest batch serves all.
 * Errors as the op's own validation of p, num_tokens (>= 0) and hidden (>= 1). */
MHC_API mhc_status_t mhc_workspace_size(const mhc_context *ctx, int32_t op,
                                        const mhc_hc_params *p, int64_t num_tokens,
                                        int64_t hidden, size_t *out_bytes);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MHC_MHC_H_ */
