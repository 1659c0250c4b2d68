// CPU-only build: there is no CUDA runtime to ask, so every pointer is of unknown kind.
#include "memory_probe.hpp"

namespace mhc {

MemoryKind probe_memory(const void *, int *device) {
  *device = -1;
  return MemoryKind::kUnknown;
}

}  // namespace mhc
