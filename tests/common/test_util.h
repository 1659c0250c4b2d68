/*
 * mhc test helpers: tensors, bf16 conversion, a seeded RNG, threads, operator calls.
 *
 * A small C99 library shared by tests/unit, tests/gpu and tests/hardening (CMake target
 * `mhc_test_common`, see tests/common/CMakeLists.txt). It never includes a CUDA header:
 * device memory is reached through the functions below, which work on kDLCUDA tensors only
 * when the library was built with CUDA (mhct_have_cuda() says so).
 *
 * Conventions: functions returning int return 0 on success and -1 on failure (with a line on
 * stderr). Names start with mhct_ (types, functions) or MHCT_ (macros, enumerators).
 */
#ifndef MHC_TESTS_COMMON_TEST_UTIL_H_
#define MHC_TESTS_COMMON_TEST_UTIL_H_

#include <stddef.h>
#include <stdint.h>

#include <mhc/mhc.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------- */
/* bf16                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* float32 -> bf16 bits, round to nearest even; NaN -> 0x7FFF; overflow rounds to +-inf. */
uint16_t mhct_f32_to_bf16(float f);
/* bf16 bits -> float32 (exact). */
float mhct_bf16_to_f32(uint16_t b);
/* float64 -> bf16 bits with ONE rounding (nearest even), i.e. the correctly rounded bf16 of
 * an exact value. (Going through float first would round twice.) NaN -> 0x7FFF. */
uint16_t mhct_f64_to_bf16(double d);
/* Distance in units in the last place between two bf16 values (0 if equal or both zero of
 * either sign). Returns INT32_MAX if exactly one is NaN, 0 if both are. */
int32_t mhct_bf16_ulp_distance(uint16_t a, uint16_t b);
/* The spacing of bf16 values at |v| (the ulp of the bf16 binade of v; subnormal spacing below
 * the normal range). */
double mhct_bf16_ulp(double v);

/* ---------------------------------------------------------------------------------------- */
/* Seeded RNG: splitmix64 + Box-Muller                                                      */
/* ---------------------------------------------------------------------------------------- */
typedef struct mhct_rng {
  uint64_t state;
  int have_spare;
  double spare;
} mhct_rng;

void mhct_rng_seed(mhct_rng *r, uint64_t seed);
uint64_t mhct_rng_u64(mhct_rng *r);
/* Uniform in the open interval (0, 1), 53 random bits. */
double mhct_rng_uniform(mhct_rng *r);
/* Standard normal (Box-Muller; the second value of each pair is kept for the next call). */
double mhct_rng_normal(mhct_rng *r);
/* A well-mixed seed from several integers: use mhct_seed_mix(seed, tag, row) to give every
 * row of every tensor its own stream, so that rows can be generated in parallel and a problem
 * of T tokens is the prefix of the same problem with more tokens. */
uint64_t mhct_seed_mix(uint64_t a, uint64_t b, uint64_t c);

/* ---------------------------------------------------------------------------------------- */
/* Tensors                                                                                  */
/* ---------------------------------------------------------------------------------------- */
#define MHCT_MAX_DIMS 8

typedef enum mhct_dtype { MHCT_BF16 = 0, MHCT_F32 = 1 } mhct_dtype;

/* A DLTensor with its own shape/strides storage. `dl.shape` points at `shape` (and
 * `dl.strides` at `strides` when set), so NEVER copy an mhct_tensor by value: use
 * mhct_tensor_view() to make a second descriptor of the same memory. */
typedef struct mhct_tensor {
  DLTensor dl;
  int64_t shape[MHCT_MAX_DIMS];
  int64_t strides[MHCT_MAX_DIMS];
  void *alloc;        /* owned allocation (host or device), NULL for views / wrapped memory */
  size_t alloc_bytes; /* size of `alloc` */
} mhct_tensor;

/* Allocates a dense tensor on kDLCPU (host, 256-byte aligned) or kDLCUDA (cudaMalloc on the
 * current device), zero-filled. `byte_offset` extra bytes are allocated in front of the data
 * and dl.byte_offset is set to it (pass 0 normally; 2 gives a bf16 tensor that is only 2-byte
 * aligned). `slack` extra zero bytes are allocated after the data (useful when a test mutates
 * shapes: a library bug then reads garbage instead of faulting). Strides are NULL. */
int mhct_tensor_alloc_ex(mhct_tensor *t, int32_t device_type, mhct_dtype dtype, int ndim,
                         const int64_t *shape, uint64_t byte_offset, size_t slack);
int mhct_tensor_alloc(mhct_tensor *t, int32_t device_type, mhct_dtype dtype, int ndim,
                      const int64_t *shape);
/* Describes existing memory (not owned): any device type/id, any data pointer (may be NULL). */
void mhct_tensor_wrap(mhct_tensor *t, void *data, int32_t device_type, int32_t device_id,
                      mhct_dtype dtype, int ndim, const int64_t *shape);
/* Frees an owned allocation (no-op for views); leaves t zeroed. */
void mhct_tensor_free(mhct_tensor *t);
/* A second descriptor of src's memory (data, byte_offset, dtype, device, shape, strides). */
void mhct_tensor_view(mhct_tensor *view, const mhct_tensor *src);
/* A view of rows [row0, row0 + count) of dimension 0 (shape[0] = count, byte_offset moved). */
void mhct_tensor_view_rows(mhct_tensor *view, const mhct_tensor *src, int64_t row0,
                           int64_t count);
/* Sets dl.strides to explicit dense row-major strides (or to the given ones). */
void mhct_tensor_set_dense_strides(mhct_tensor *t);
void mhct_tensor_set_strides(mhct_tensor *t, const int64_t *strides);

int64_t mhct_tensor_numel(const mhct_tensor *t);
size_t mhct_tensor_elem_size(const mhct_tensor *t);
size_t mhct_tensor_nbytes(const mhct_tensor *t); /* numel * element size */
/* data + byte_offset (a device pointer for kDLCUDA tensors). */
void *mhct_tensor_ptr(const mhct_tensor *t);
/* Copies nbytes() bytes between the tensor (host or device) and host memory. Synchronous
 * (cudaMemcpy: it waits for the legacy default stream and blocking streams). */
int mhct_tensor_upload(mhct_tensor *t, const void *host_src);
int mhct_tensor_download(const mhct_tensor *t, void *host_dst);
/* dst <- src, same nbytes, any devices. */
int mhct_tensor_copy(mhct_tensor *dst, const mhct_tensor *src);
/* Sets every byte of the data to `byte`. */
int mhct_tensor_fill_bytes(mhct_tensor *t, int byte);
/* A malloc'd host copy of the tensor's data (free() it). NULL on failure. */
void *mhct_tensor_to_host(const mhct_tensor *t);

/* Device helpers (CUDA builds of this library only; otherwise they fail / return 0). */
int mhct_have_cuda(void);                 /* built with CUDA */
int mhct_cuda_device_count(void);         /* 0 when no CUDA or no device */
void *mhct_device_malloc(size_t bytes);   /* cudaMalloc; NULL on failure or bytes == 0 */
void mhct_device_free(void *p);
int mhct_device_synchronize(void);

/* ---------------------------------------------------------------------------------------- */
/* Threads                                                                                  */
/* ---------------------------------------------------------------------------------------- */
/* Number of online CPUs (>= 1), capped at 64; MHCT_THREADS=N in the environment overrides. */
int mhct_num_threads(void);
/* Splits [0, n) into `nthreads` contiguous chunks (0: mhct_num_threads()) and runs
 * fn(ctx, begin, end) for each on its own thread (the first one on the caller's). */
void mhct_parallel_for(int64_t n, int nthreads, void (*fn)(void *ctx, int64_t begin, int64_t end),
                       void *ctx);

/* ---------------------------------------------------------------------------------------- */
/* One operator call with its tensors                                                       */
/* ---------------------------------------------------------------------------------------- */
/* The tensors of one call of one op. Only those the op uses need to be set:
 *   MHC_OP_HC_POST:     x, residual, post_mix, comb_mix -> residual_out
 *   MHC_OP_HC_PRE:      p, w, residual -> post_mix_out, comb_mix_out, layer_input_out
 *   MHC_OP_HC_POST_PRE: p, w, x, residual, post_mix, comb_mix
 *                       -> residual_out, post_mix_out, comb_mix_out, layer_input_out
 *   MHC_OP_HC_HEAD:     p, fn_head, scale_head, base_head, residual -> out
 * Token-major tensors have T in dimension 0; weights are never sliced. */
typedef struct mhct_call {
  int32_t op;
  const mhc_hc_params *p;
  const mhct_tensor *fn, *scale, *base, *norm_weight; /* w (norm_weight may be NULL) */
  const mhct_tensor *fn_head, *scale_head, *base_head;
  const mhct_tensor *x, *residual, *post_mix, *comb_mix;
  const mhct_tensor *residual_out, *post_mix_out, *comb_mix_out, *layer_input_out, *out;
  void *workspace;
  size_t workspace_bytes;
  struct CUstream_st *stream;
} mhct_call;

/* T of the call (residual's dimension 0). */
int64_t mhct_call_tokens(const mhct_call *c);
/* Runs the call as given. */
mhc_status_t mhct_call_run(mhc_context *ctx, const mhct_call *c);
/* Runs the call on tokens [t0, t0 + count) only, through row views of every token-major
 * tensor (byte_offset moves). */
mhc_status_t mhct_call_run_rows(mhc_context *ctx, const mhct_call *c, int64_t t0, int64_t count);
/* Runs the call in token slices on `nthreads` threads (0: mhct_num_threads()). Meant for the
 * CPU backend, whose result does not depend on how the tokens are split (each token is
 * computed on its own; the unit tests check it). Returns the first failing status. */
mhc_status_t mhct_call_run_parallel(mhc_context *ctx, const mhct_call *c, int nthreads);

/* Creates a CPU-backend context (NULL on failure, with a line on stderr). */
mhc_context *mhct_cpu_context(void);

/* cmocka group setup / teardown for the tests of a program that share one CPU-backend context,
 * mhct_shared_cpu_ctx (setup returns -1 when it cannot be created; teardown -1 when destroying
 * it fails). */
extern mhc_context *mhct_shared_cpu_ctx;
int mhct_setup_cpu_context(void **state);
int mhct_teardown_cpu_context(void **state);

/* ---------------------------------------------------------------------------------------- */
/* A complete problem: every tensor of every op for T tokens and hidden size H              */
/* ---------------------------------------------------------------------------------------- */
typedef enum mhct_inputs {
  /* vLLM test inputs (reference/mhc-spec.md §5.1): x, residual randn bf16; post_mix randn
   * [T,4]; comb_mix randn [T,4,4]; post_mult 1.0. */
  MHCT_INPUTS_VLLM = 0,
  /* Model-like: post_mix = 2*sigmoid(randn); comb_mix = Sinkhorn(randn logits) (20 iters,
   * eps 1e-6, float64 then rounded); post_mult 2.0. */
  MHCT_INPUTS_MODEL = 1
} mhct_inputs;

typedef struct mhct_problem {
  int64_t T, H;
  int32_t device_type;
  mhc_hc_params params;
  /* inputs */
  mhct_tensor x;          /* [T, H] bf16 */
  mhct_tensor residual;   /* [T, 4, H] bf16 */
  mhct_tensor post_mix;   /* [T, 4] f32 */
  mhct_tensor comb_mix;   /* [T, 4, 4] f32 */
  mhct_tensor fn;         /* [24, 4H] f32 = randn * 1e-4 * (1 + 0.01 * stream) */
  mhct_tensor scale;      /* [3] f32 = randn * 0.1 */
  mhct_tensor base;       /* [24] f32 = randn * 0.1 */
  mhct_tensor norm_weight; /* [H] bf16 = 1 + 0.1 * randn */
  mhct_tensor fn_head;    /* [4, 4H] f32 like fn */
  mhct_tensor scale_head; /* [1] f32 */
  mhct_tensor base_head;  /* [4] f32 */
  /* outputs */
  mhct_tensor residual_out;    /* [T, 4, H] bf16 */
  mhct_tensor post_mix_out;    /* [T, 4] f32 */
  mhct_tensor comb_mix_out;    /* [T, 4, 4] f32 */
  mhct_tensor layer_input_out; /* [T, H] bf16 */
  mhct_tensor out;             /* [T, H] bf16 (hc_head) */
  void *workspace;             /* owned (device memory for kDLCUDA), may be NULL */
  size_t workspace_bytes;
} mhct_problem;

/* Allocates every tensor (zeroed) on kDLCPU or kDLCUDA; params = MHC_HC_PARAMS_INIT.
 * `slack` as in mhct_tensor_alloc_ex. */
int mhct_problem_alloc(mhct_problem *pb, int32_t device_type, int64_t T, int64_t H,
                       size_t slack);
/* Same, with every bf16 tensor placed `bf16_offset` bytes and every f32 tensor `f32_offset`
 * bytes behind its allocation (dl.byte_offset), e.g. 2 and 4 for minimally aligned data. */
int mhct_problem_alloc_ex(mhct_problem *pb, int32_t device_type, int64_t T, int64_t H,
                          size_t slack, uint64_t bf16_offset, uint64_t f32_offset);
void mhct_problem_free(mhct_problem *pb);
/* Fills the inputs of a HOST problem from (family, seed) and sets params.post_mult (1.0 for
 * VLLM, 2.0 for MODEL). Row t of a token tensor depends only on (seed, tensor, t). Runs on
 * mhct_num_threads() threads. */
void mhct_problem_fill(mhct_problem *pb, mhct_inputs family, uint64_t seed);
/* Copies params and every input tensor from src to dst (same T and H; any devices). */
int mhct_problem_copy_inputs(mhct_problem *dst, const mhct_problem *src);
/* Allocates pb->workspace (device memory for kDLCUDA problems, host otherwise) of the largest
 * mhc_workspace_size over the four ops for pb->T, pb->H and pb->params. */
int mhct_problem_alloc_workspace(mhct_problem *pb, const mhc_context *ctx);
/* The call of `op` on the problem's tensors (with_norm: pass norm_weight to hc_pre /
 * hc_post_pre). */
mhct_call mhct_problem_call(const mhct_problem *pb, int32_t op, int with_norm);

/* Name of an op ("hc_pre", ...). */
const char *mhct_op_name(int32_t op);

/* Does msg name `name` as a word (not as part of a longer identifier)? For checking that an
 * error message names the offending argument. */
int mhct_names_arg(const char *msg, const char *name);

/* Monotonic time in seconds. */
double mhct_now_s(void);

#ifdef __cplusplus
}
#endif

#endif /* MHC_TESTS_COMMON_TEST_UTIL_H_ */
