#include "context.hpp"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "cpu/cpu_backend.hpp"
#include "error.hpp"

namespace mhc {
namespace {

std::mutex g_registry_mutex;
std::unordered_set<const mhc_context *> &registry() {
  static auto *live = new std::unordered_set<const mhc_context *>();  // never destroyed: safe at exit
  return *live;
}

constexpr uint32_t kKnownContextFlags = MHC_CONTEXT_FLAG_CHECK_POINTERS | MHC_CONTEXT_FLAG_PDL;

bool env_check_pointers() {
  const char *v = std::getenv("MHC_CHECK_POINTERS");
  return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
}

}  // namespace

mhc_context *create_context(const mhc_context_config &cfg) {
  if (cfg.flags & ~kKnownContextFlags)
    fail(MHC_ERROR_INVALID_ARGUMENT, "cfg->flags: unknown bits 0x%x (known: 0x%x)",
         cfg.flags & ~kKnownContextFlags, kKnownContextFlags);
  auto ctx = std::make_unique<mhc_context>();
  ctx->backend_kind = cfg.backend;
  ctx->device_id = cfg.device_id;
  ctx->flags = cfg.flags;
  ctx->check_pointers = (cfg.flags & MHC_CONTEXT_FLAG_CHECK_POINTERS) || env_check_pointers();
  switch (cfg.backend) {
    case MHC_BACKEND_CPU:
      if (cfg.device_id != 0)
        fail(MHC_ERROR_INVALID_ARGUMENT, "cfg->device_id: expected 0 for the CPU backend, got %d",
             cfg.device_id);
      ctx->backend = cpu::make_cpu_backend();
      break;
    case MHC_BACKEND_CUDA:
      if (cfg.device_id < 0)
        fail(MHC_ERROR_INVALID_ARGUMENT, "cfg->device_id: expected >= 0, got %d", cfg.device_id);
      ctx->backend = make_cuda_backend(cfg.device_id, cfg.flags);
      break;
    default:
      fail(MHC_ERROR_INVALID_ARGUMENT,
           "cfg->backend: expected MHC_BACKEND_CUDA (1) or MHC_BACKEND_CPU (2), got %d",
           cfg.backend);
  }
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  registry().insert(ctx.get());
  return ctx.release();
}

void destroy_context(mhc_context *ctx) {
  {
    std::lock_guard<std::mutex> lock(g_registry_mutex);
    if (registry().erase(ctx) == 0)
      fail(MHC_ERROR_INVALID_HANDLE, "ctx: %p is not a live context (destroyed twice?)",
           static_cast<void *>(ctx));
  }
  delete ctx;
}

const mhc_context &live_context(const mhc_context *ctx) {
  if (ctx == nullptr) fail(MHC_ERROR_INVALID_HANDLE, "ctx: expected a context, got NULL");
  std::lock_guard<std::mutex> lock(g_registry_mutex);
  if (registry().count(ctx) == 0)
    fail(MHC_ERROR_INVALID_HANDLE, "ctx: %p is not a live context (destroyed or never created)",
         static_cast<const void *>(ctx));
  return *ctx;
}

}  // namespace mhc
