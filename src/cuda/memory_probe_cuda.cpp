// Pointer classification through the CUDA runtime (only used in pointer-checking mode).
#include <cuda_runtime_api.h>

#include "memory_probe.hpp"

namespace mhc {

MemoryKind probe_memory(const void *ptr, int *device) {
  *device = -1;
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error so later calls are unaffected
    return MemoryKind::kUnknown;
  }
  switch (attr.type) {
    case cudaMemoryTypeDevice:
      *device = attr.device;
      return MemoryKind::kDevice;
    case cudaMemoryTypeManaged:
    case cudaMemoryTypeHost:  // pinned: usable by both backends
      *device = attr.device;
      return MemoryKind::kUnknown;
    default:
      return MemoryKind::kHost;  // unregistered (pageable) host memory
  }
}

}  // namespace mhc
