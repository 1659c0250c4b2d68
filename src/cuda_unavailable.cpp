// CPU-only build: the CUDA backend does not exist.
#include "context.hpp"
#include "error.hpp"

namespace mhc {

std::unique_ptr<Backend> make_cuda_backend(int, uint32_t) {
  fail(MHC_ERROR_NOT_SUPPORTED,
       "cfg->backend: MHC_BACKEND_CUDA is not available, this libmhc was built without CUDA "
       "(use MHC_BACKEND_CPU)");
}

}  // namespace mhc
