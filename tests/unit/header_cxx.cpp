// The public header compiles as strict C++11 (-std=c++11 -pedantic -Wall -Wextra -Werror) with
// no CUDA include path; its INIT macros are constant expressions with the DeepSeek-V4 values.
#include <mhc/mhc.h>

#include <cstdio>
#include <cstring>
#include <type_traits>

#if defined(__CUDA_RUNTIME_H__) || defined(__CUDA_RUNTIME_API_H__) || defined(CUDA_VERSION) || \
    defined(__DRIVER_TYPES_H__)
#error "mhc/mhc.h must not pull in a CUDA header"
#endif

namespace {

constexpr mhc_hc_params kParams = MHC_HC_PARAMS_INIT;
static_assert(kParams.size == sizeof(mhc_hc_params), "params size");
static_assert(kParams.version == MHC_HC_PARAMS_VERSION, "params version");
static_assert(kParams.hc_mult == 4, "DeepSeek-V4 hc_mult");
static_assert(kParams.sinkhorn_iters == 20, "DeepSeek-V4 sinkhorn iterations");
static_assert(kParams.rms_eps == 1e-6f, "rms_eps");
static_assert(kParams.pre_eps == 1e-6f, "pre_eps");
static_assert(kParams.sinkhorn_eps == 1e-6f, "sinkhorn_eps");
static_assert(kParams.post_mult == 2.0f, "post_mult");
static_assert(kParams.norm_eps == 1e-6f, "norm_eps");
static_assert(kParams.flags == 0u, "flags");

constexpr mhc_context_config kConfig = MHC_CONTEXT_CONFIG_INIT;
static_assert(kConfig.size == sizeof(mhc_context_config), "config size");
static_assert(kConfig.version == MHC_CONTEXT_CONFIG_VERSION, "config version");
static_assert(kConfig.backend == MHC_BACKEND_CUDA, "default backend");
static_assert(kConfig.device_id == 0, "default device");
static_assert(kConfig.flags == 0u, "default flags");

static_assert(std::is_same<mhc_status_t, int32_t>::value, "mhc_status_t is int32_t");
static_assert(std::is_standard_layout<mhc_hc_params>::value, "C layout");
static_assert(std::is_standard_layout<mhc_hc_weights>::value, "C layout");
static_assert(MHC_VERSION ==
                  MHC_VERSION_MAJOR * 10000 + MHC_VERSION_MINOR * 100 + MHC_VERSION_PATCH,
              "version encoding");

}  // namespace

int main() {
  int failures = 0;
  auto check = [&](bool ok, const char *what) {
    if (!ok) {
      std::fprintf(stderr, "header_cxx: check failed: %s\n", what);
      ++failures;
    }
  };
  check(mhc_get_version() == MHC_VERSION, "mhc_get_version() == MHC_VERSION");
  mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
  cfg.backend = MHC_BACKEND_CPU;
  mhc_context *ctx = nullptr;
  check(mhc_context_create(&ctx, &cfg) == MHC_SUCCESS, "create CPU context");
  mhc_hc_params p = MHC_HC_PARAMS_INIT;
  std::size_t ws = 1;
  check(mhc_workspace_size(ctx, MHC_OP_HC_PRE, &p, 1, 7168, &ws) == MHC_SUCCESS, "workspace");
  check(ws == 0, "CPU workspace is 0");
  int32_t backend = 0, device = -1;
  check(mhc_context_get_backend(ctx, &backend, &device) == MHC_SUCCESS, "get_backend");
  check(backend == MHC_BACKEND_CPU && device == 0, "backend CPU, device 0");
  check(mhc_context_destroy(ctx) == MHC_SUCCESS, "destroy");
  check(std::strcmp(mhc_status_string(MHC_ERROR_INTERNAL), "MHC_ERROR_INTERNAL") == 0,
        "status string");
  if (failures) return 1;
  std::printf("header_cxx: ok (mhc %s)\n", MHC_VERSION_STRING);
  return 0;
}
