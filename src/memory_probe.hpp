// Where does a pointer live? Used by validation when pointer checking is on
// (MHC_CONTEXT_FLAG_CHECK_POINTERS). The CUDA build asks cudaPointerGetAttributes; a
// CPU-only build cannot tell and answers kUnknown.
#pragma once

namespace mhc {

enum class MemoryKind { kUnknown, kHost, kDevice };

// For kDevice, *device receives the ordinal of the GPU that owns the memory.
MemoryKind probe_memory(const void *ptr, int *device);

}  // namespace mhc
