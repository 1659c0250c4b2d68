// Turns CUDA runtime errors into mhc::Error(MHC_ERROR_CUDA) naming the failed call.
#pragma once

#include <cuda_runtime_api.h>

#include "error.hpp"

#define MHC_CUDA_CHECK(call)                                                              \
  do {                                                                                    \
    const cudaError_t mhc_err_ = (call);                                                  \
    if (mhc_err_ != cudaSuccess)                                                          \
      ::mhc::fail(mhc_err_ == cudaErrorMemoryAllocation ? MHC_ERROR_OUT_OF_MEMORY         \
                                                        : MHC_ERROR_CUDA,                 \
                  "%s failed: %s (%s)", #call, cudaGetErrorName(mhc_err_),                \
                  cudaGetErrorString(mhc_err_));                                          \
  } while (0)
