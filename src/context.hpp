// The opaque mhc_context: which backend and device it is bound to. Immutable after create.
// Live contexts are kept in a registry so that a destroyed or forged handle is reported as
// MHC_ERROR_INVALID_HANDLE instead of being dereferenced.
#pragma once

#include <memory>

#include "op_args.hpp"

struct mhc_context {
  int32_t backend_kind;  // MHC_BACKEND_*
  int32_t device_id;
  uint32_t flags;        // MHC_CONTEXT_FLAG_*
  bool check_pointers;   // flag or MHC_CHECK_POINTERS=1 at create
  std::unique_ptr<mhc::Backend> backend;
};

namespace mhc {

// Creates, registers and returns a context; throws mhc::Error.
mhc_context *create_context(const mhc_context_config &cfg);
// Unregisters and frees; throws INVALID_HANDLE if ctx is not live.
void destroy_context(mhc_context *ctx);
// Returns ctx if it is live, else throws INVALID_HANDLE naming `ctx`.
const mhc_context &live_context(const mhc_context *ctx);

// The CUDA backend factory (src/cuda/); throws NOT_SUPPORTED in CPU-only builds.
std::unique_ptr<Backend> make_cuda_backend(int device_id, uint32_t flags);

}  // namespace mhc
