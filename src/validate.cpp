#include "validate.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "error.hpp"
#include "memory_probe.hpp"

namespace mhc {
namespace {

constexpr int64_t kMaxBytes = int64_t{1} << 60;  // no real tensor is this large; keeps sums safe

std::string shape_string(const DLTensor &t) {
  std::string s = "[";
  for (int i = 0; i < t.ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(t.shape[i]);
  }
  return s + "]";
}

const char *device_name(int32_t type) {
  switch (type) {
    case kDLCPU: return "kDLCPU";
    case kDLCUDA: return "kDLCUDA";
    case kDLCUDAHost: return "kDLCUDAHost";
    case kDLCUDAManaged: return "kDLCUDAManaged";
    default: return "another device type";
  }
}

enum class DType { kBF16, kF32 };

const char *dtype_name(DType d) { return d == DType::kBF16 ? "bfloat16" : "float32"; }

// A validated dense tensor: its data pointer (data + byte_offset) and size in bytes.
struct Checked {
  const char *name;
  char *ptr;
  int64_t bytes;
};

// Collects the checked tensors of one call and rejects overlaps between outputs and
// anything else.
class CallChecker {
 public:
  explicit CallChecker(const mhc_context &ctx) : ctx_(ctx) {}

  // Checks one tensor against an exact shape. Returns its data pointer.
  template <class T>
  T *tensor(const DLTensor *t, const char *name, DType dtype, std::vector<int64_t> shape,
            const char *shape_doc, bool is_output) {
    check_header(t, name, dtype);
    if (t->ndim != static_cast<int32_t>(shape.size()))
      fail(MHC_ERROR_INVALID_ARGUMENT, "%s: expected ndim %zu (%s), got %d", name, shape.size(),
           shape_doc, t->ndim);
    for (size_t i = 0; i < shape.size(); ++i)
      if (t->shape[i] != shape[i]) {
        std::string want = "[";
        for (size_t k = 0; k < shape.size(); ++k)
          want += (k ? ", " : "") + std::to_string(shape[k]);
        fail(MHC_ERROR_INVALID_ARGUMENT, "%s: expected shape %s = %s], got %s", name, shape_doc,
             want.c_str(), shape_string(*t).c_str());
      }
    return static_cast<T *>(finish(t, name, dtype, is_output));
  }

  // Checks everything but the shape (the caller derives sizes from it). ndim must match.
  void header(const DLTensor *t, const char *name, DType dtype, int ndim, const char *shape_doc) {
    check_header(t, name, dtype);
    if (t->ndim != ndim)
      fail(MHC_ERROR_INVALID_ARGUMENT, "%s: expected ndim %d (%s), got %d", name, ndim, shape_doc,
           t->ndim);
    for (int i = 0; i < ndim; ++i)
      if (t->shape[i] < 0)
        fail(MHC_ERROR_INVALID_ARGUMENT, "%s: dimension %d is negative (%lld)", name, i,
             static_cast<long long>(t->shape[i]));
  }

  void workspace(void *ws, size_t ws_bytes, size_t needed, int64_t T, int64_t H) {
    if (ws_bytes < needed)
      fail(MHC_ERROR_WORKSPACE_TOO_SMALL,
           "workspace_bytes: need at least %zu bytes for T=%lld, H=%lld, got %zu", needed,
           static_cast<long long>(T), static_cast<long long>(H), ws_bytes);
    if (needed == 0) return;
    if (ws == nullptr)
      fail(MHC_ERROR_INVALID_ARGUMENT, "workspace: expected %zu bytes of device memory, got NULL",
           needed);
    if (reinterpret_cast<uintptr_t>(ws) % 16 != 0)
      fail(MHC_ERROR_INVALID_ARGUMENT, "workspace: expected a 16-byte aligned pointer, got %p", ws);
    if (ctx_.check_pointers) check_memory(ws, "workspace");
    add({"workspace", static_cast<char *>(ws), static_cast<int64_t>(needed)}, true);
  }

 private:
  void check_header(const DLTensor *t, const char *name, DType dtype) {
    if (t == nullptr) fail(MHC_ERROR_INVALID_ARGUMENT, "%s: expected a DLTensor, got NULL", name);
    if (t->ndim < 0 || t->ndim > 8)
      fail(MHC_ERROR_INVALID_ARGUMENT, "%s: ndim %d is out of range", name, t->ndim);
    if (t->ndim > 0 && t->shape == nullptr)
      fail(MHC_ERROR_INVALID_ARGUMENT, "%s: shape is NULL with ndim %d", name, t->ndim);
    const uint8_t want_code = dtype == DType::kBF16 ? kDLBfloat : kDLFloat;
    const uint8_t want_bits = dtype == DType::kBF16 ? 16 : 32;
    if (t->dtype.code != want_code || t->dtype.bits != want_bits || t->dtype.lanes != 1)
      fail(MHC_ERROR_NOT_SUPPORTED, "%s: expected dtype %s, got code %u bits %u lanes %u", name,
           dtype_name(dtype), t->dtype.code, t->dtype.bits, t->dtype.lanes);
    check_device(*t, name);
  }

  void check_device(const DLTensor &t, const char *name) {
    // Read as a plain int32: callers (C, ctypes, cgo, newer DLPack producers) may pass values
    // outside this header's DLDeviceType enum, and loading those as the enum is UB in C++.
    int32_t type;
    static_assert(sizeof type == sizeof t.device.device_type, "DLDeviceType is 32-bit");
    std::memcpy(&type, &t.device.device_type, sizeof type);
    if (ctx_.backend_kind == MHC_BACKEND_CPU) {
      if (type != kDLCPU && type != kDLCUDAHost)
        fail(MHC_ERROR_DEVICE_MISMATCH,
             "%s: the CPU backend needs host memory (kDLCPU or kDLCUDAHost), got %s (%d)", name,
             device_name(type), type);
      return;
    }
    if (type == kDLCUDA) {
      if (t.device.device_id != ctx_.device_id)
        fail(MHC_ERROR_DEVICE_MISMATCH, "%s: expected CUDA device %d (the context's), got device %d",
             name, ctx_.device_id, t.device.device_id);
      return;
    }
    if (type != kDLCUDAHost && type != kDLCUDAManaged)
      fail(MHC_ERROR_DEVICE_MISMATCH,
           "%s: the CUDA backend needs kDLCUDA (or kDLCUDAHost/kDLCUDAManaged) memory, got %s (%d)",
           name, device_name(type), type);
  }

  void *finish(const DLTensor *t, const char *name, DType dtype, bool is_output) {
    const int64_t esize = dtype == DType::kBF16 ? 2 : 4;
    int64_t numel = 1;
    for (int i = 0; i < t->ndim; ++i) {
      if (t->shape[i] < 0)
        fail(MHC_ERROR_INVALID_ARGUMENT, "%s: dimension %d is negative (%lld)", name, i,
             static_cast<long long>(t->shape[i]));
      if (__builtin_mul_overflow(numel, t->shape[i], &numel) || numel > kMaxBytes / esize)
        fail(MHC_ERROR_INVALID_ARGUMENT, "%s: shape %s is too large", name, shape_string(*t).c_str());
    }
    if (t->strides != nullptr && numel > 0) {  // an empty tensor has no layout to check
      int64_t expect = 1;
      for (int i = t->ndim - 1; i >= 0; --i) {
        if (t->shape[i] != 1 && t->strides[i] != expect)
          fail(MHC_ERROR_INVALID_ARGUMENT,
               "%s: expected dense row-major strides (stride %lld in dimension %d), got %lld", name,
               static_cast<long long>(expect), i, static_cast<long long>(t->strides[i]));
        expect *= t->shape[i];
      }
    }
    const int64_t bytes = numel * esize;
    if (bytes == 0) return nullptr;  // never dereferenced; no pointer arithmetic on caller values
    if (t->data == nullptr) fail(MHC_ERROR_INVALID_ARGUMENT, "%s: data is NULL", name);
    const uintptr_t base = reinterpret_cast<uintptr_t>(t->data);
    uintptr_t addr;
    if (t->byte_offset > static_cast<uint64_t>(kMaxBytes) ||
        __builtin_add_overflow(base, static_cast<uintptr_t>(t->byte_offset), &addr) ||
        addr + static_cast<uintptr_t>(bytes) < addr)
      fail(MHC_ERROR_INVALID_ARGUMENT, "%s: data + byte_offset (%llu) + size overflows", name,
           static_cast<unsigned long long>(t->byte_offset));
    if (addr % static_cast<uintptr_t>(esize) != 0)
      fail(MHC_ERROR_INVALID_ARGUMENT, "%s: data + byte_offset must be %lld-byte aligned, got %p",
           name, static_cast<long long>(esize), reinterpret_cast<void *>(addr));
    char *ptr = reinterpret_cast<char *>(addr);
    if (ctx_.check_pointers) check_memory(ptr, name);
    add({name, ptr, bytes}, is_output);
    return ptr;
  }

  void check_memory(const void *ptr, const char *name) {
    int owner = -1;
    const MemoryKind kind = probe_memory(ptr, &owner);
    if (ctx_.backend_kind == MHC_BACKEND_CPU) {
      if (kind == MemoryKind::kDevice)
        fail(MHC_ERROR_DEVICE_MISMATCH,
             "%s: %p is CUDA device memory (device %d), the CPU backend needs host memory", name,
             ptr, owner);
      return;
    }
    if (kind == MemoryKind::kHost)
      fail(MHC_ERROR_DEVICE_MISMATCH,
           "%s: %p is pageable host memory, the CUDA backend needs memory of device %d", name, ptr,
           ctx_.device_id);
    if (kind == MemoryKind::kDevice && owner != ctx_.device_id)
      fail(MHC_ERROR_DEVICE_MISMATCH, "%s: %p is memory of CUDA device %d, expected device %d",
           name, ptr, owner, ctx_.device_id);
  }

  // Outputs may overlap nothing; inputs may overlap each other (e.g. the same weights).
  void add(const Checked &c, bool is_output) {
    for (const auto &prev : seen_) {
      if (!is_output && !prev.second) continue;
      const bool disjoint = c.ptr + c.bytes <= prev.first.ptr || prev.first.ptr + prev.first.bytes <= c.ptr;
      if (!disjoint)
        fail(MHC_ERROR_INVALID_ARGUMENT, "%s: memory overlaps %s (outputs must not alias inputs or other outputs)",
             c.name, prev.first.name);
    }
    seen_.push_back({c, is_output});
  }

  const mhc_context &ctx_;
  std::vector<std::pair<Checked, bool>> seen_;
};

void validate_sizes(int64_t T, int64_t H, const char *from) {
  if (H < 1)
    fail(MHC_ERROR_INVALID_ARGUMENT, "%s: hidden size (last dimension) must be >= 1, got %lld",
         from, static_cast<long long>(H));
  if (H > kMaxHidden)
    fail(MHC_ERROR_NOT_SUPPORTED, "%s: hidden size %lld is above the supported maximum %lld", from,
         static_cast<long long>(H), static_cast<long long>(kMaxHidden));
  if (T >= kMaxTokens)
    fail(MHC_ERROR_NOT_SUPPORTED, "%s: %lld tokens is above the supported maximum %lld", from,
         static_cast<long long>(T), static_cast<long long>(kMaxTokens - 1));
}

// residual [T, 4, H] bf16 gives T and H for every other argument.
void residual_sizes(CallChecker &c, const DLTensor *residual, const char *name, int64_t *T,
                    int64_t *H) {
  c.header(residual, name, DType::kBF16, 3, "[T, 4, H]");
  if (residual->shape[1] != kHcMult)
    fail(MHC_ERROR_INVALID_ARGUMENT, "%s: expected shape [T, 4, H] (hc_mult = 4), got %s", name,
         shape_string(*residual).c_str());
  *T = residual->shape[0];
  *H = residual->shape[2];
  validate_sizes(*T, *H, name);
}

// post_mix may be [T, n] or [T, n, 1].
float *post_mix_tensor(CallChecker &c, const DLTensor *t, const char *name, int64_t T, bool out) {
  if (t != nullptr && t->ndim == 3)
    return c.tensor<float>(t, name, DType::kF32, {T, kHcMult, 1}, "[T, 4, 1]", out);
  return c.tensor<float>(t, name, DType::kF32, {T, kHcMult}, "[T, 4]", out);
}

void check_finite_param(float v, const char *name, bool allow_negative) {
  if (!std::isfinite(v) || (!allow_negative && v < 0.0f))
    fail(MHC_ERROR_INVALID_ARGUMENT, "p->%s: expected a finite%s value, got %g", name,
         allow_negative ? "" : " non-negative", static_cast<double>(v));
}

PreWeights weights_tensors(CallChecker &c, const mhc_hc_weights *w, const char *wname, int64_t H) {
  if (w == nullptr) fail(MHC_ERROR_INVALID_ARGUMENT, "%s: expected weights, got NULL", wname);
  PreWeights pw;
  pw.fn = c.tensor<const float>(w->fn, "fn", DType::kF32, {kMixes, kHcMult * H}, "[24, 4*H]", false);
  pw.scale = c.tensor<const float>(w->scale, "scale", DType::kF32, {3}, "[3]", false);
  pw.base = c.tensor<const float>(w->base, "base", DType::kF32, {kMixes}, "[24]", false);
  pw.norm_weight = w->norm_weight == nullptr
                       ? nullptr
                       : c.tensor<const bf16_bits>(w->norm_weight, "norm_weight", DType::kBF16,
                                                   {H}, "[H]", false);
  return pw;
}

PreArgs pre_outputs(const mhc_context &ctx, CallChecker &c, const mhc_hc_params *p, PreWeights w,
                    int64_t T, int64_t H, const DLTensor *post_mix_out,
                    const DLTensor *comb_mix_out, const DLTensor *layer_input_out, void *ws,
                    size_t ws_bytes, struct CUstream_st *stream, int32_t op) {
  PreArgs a{};
  a.p = p;
  a.T = T;
  a.H = H;
  a.w = w;
  a.post_mix = post_mix_tensor(c, post_mix_out, "post_mix_out", T, true);
  a.comb_mix = c.tensor<float>(comb_mix_out, "comb_mix_out", DType::kF32, {T, kHcMult, kHcMult},
                               "[T, 4, 4]", true);
  a.layer_input = c.tensor<bf16_bits>(layer_input_out, "layer_input_out", DType::kBF16, {T, H},
                                      "[T, H]", true);
  c.workspace(ws, ws_bytes, ctx.backend->workspace_size(op, *p, T, H), T, H);
  a.workspace = ws;
  a.workspace_bytes = ws_bytes;
  a.stream = stream;
  return a;
}

PostArgs post_args(CallChecker &c, const DLTensor *x, const DLTensor *residual,
                   const DLTensor *post_mix, const DLTensor *comb_mix,
                   const DLTensor *residual_out, struct CUstream_st *stream) {
  PostArgs a{};
  residual_sizes(c, residual, "residual", &a.T, &a.H);
  const int64_t T = a.T, H = a.H;
  a.residual = c.tensor<const bf16_bits>(residual, "residual", DType::kBF16, {T, kHcMult, H},
                                         "[T, 4, H]", false);
  a.x = c.tensor<const bf16_bits>(x, "x", DType::kBF16, {T, H}, "[T, H] like residual", false);
  a.post_mix = post_mix_tensor(c, post_mix, "post_mix", T, false);
  a.comb_mix = c.tensor<const float>(comb_mix, "comb_mix", DType::kF32, {T, kHcMult, kHcMult},
                                     "[T, 4, 4]", false);
  a.residual_out = c.tensor<bf16_bits>(residual_out, "residual_out", DType::kBF16,
                                       {T, kHcMult, H}, "[T, 4, H] like residual", true);
  a.stream = stream;
  return a;
}

}  // namespace

void validate_params(const mhc_hc_params *p) {
  if (p == nullptr) fail(MHC_ERROR_INVALID_ARGUMENT, "p: expected mhc_hc_params, got NULL");
  if (p->size != sizeof(mhc_hc_params) || p->version != MHC_HC_PARAMS_VERSION)
    fail(MHC_ERROR_VERSION_MISMATCH,
         "p: expected size %zu and version %u (use MHC_HC_PARAMS_INIT), got size %zu version %u",
         sizeof(mhc_hc_params), MHC_HC_PARAMS_VERSION, p->size, p->version);
  if (p->hc_mult < 1)
    fail(MHC_ERROR_INVALID_ARGUMENT, "p->hc_mult: expected 4, got %d", p->hc_mult);
  if (p->hc_mult != kHcMult)
    fail(MHC_ERROR_NOT_SUPPORTED, "p->hc_mult: only 4 streams are supported, got %d", p->hc_mult);
  if (p->sinkhorn_iters < 1 || p->sinkhorn_iters > 1000)
    fail(MHC_ERROR_INVALID_ARGUMENT, "p->sinkhorn_iters: expected 1..1000, got %d",
         p->sinkhorn_iters);
  check_finite_param(p->rms_eps, "rms_eps", false);
  check_finite_param(p->pre_eps, "pre_eps", true);
  check_finite_param(p->sinkhorn_eps, "sinkhorn_eps", false);
  check_finite_param(p->post_mult, "post_mult", true);
  check_finite_param(p->norm_eps, "norm_eps", false);
  if (p->flags & ~MHC_FLAG_BATCH_INVARIANT)
    fail(MHC_ERROR_INVALID_ARGUMENT, "p->flags: unknown bits 0x%x", p->flags & ~MHC_FLAG_BATCH_INVARIANT);
}

PreArgs validate_pre(const mhc_context &ctx, const mhc_hc_params *p, const mhc_hc_weights *w,
                     const DLTensor *residual, const DLTensor *post_mix_out,
                     const DLTensor *comb_mix_out, const DLTensor *layer_input_out,
                     void *workspace, size_t workspace_bytes, struct CUstream_st *stream) {
  validate_params(p);
  CallChecker c(ctx);
  int64_t T, H;
  residual_sizes(c, residual, "residual", &T, &H);
  const auto *res = c.tensor<const bf16_bits>(residual, "residual", DType::kBF16, {T, kHcMult, H},
                                              "[T, 4, H]", false);
  PreWeights pw = weights_tensors(c, w, "w", H);
  PreArgs a = pre_outputs(ctx, c, p, pw, T, H, post_mix_out, comb_mix_out, layer_input_out,
                          workspace, workspace_bytes, stream, MHC_OP_HC_PRE);
  a.residual = res;
  return a;
}

PostArgs validate_post(const mhc_context &ctx, const DLTensor *x, const DLTensor *residual,
                       const DLTensor *post_mix, const DLTensor *comb_mix,
                       const DLTensor *residual_out, struct CUstream_st *stream) {
  CallChecker c(ctx);
  return post_args(c, x, residual, post_mix, comb_mix, residual_out, stream);
}

PostPreArgs validate_post_pre(const mhc_context &ctx, const mhc_hc_params *p,
                              const mhc_hc_weights *next, const DLTensor *x,
                              const DLTensor *residual, const DLTensor *post_mix,
                              const DLTensor *comb_mix, const DLTensor *residual_out,
                              const DLTensor *post_mix_out, const DLTensor *comb_mix_out,
                              const DLTensor *layer_input_out, void *workspace,
                              size_t workspace_bytes, struct CUstream_st *stream) {
  validate_params(p);
  CallChecker c(ctx);
  PostPreArgs a{};
  a.post = post_args(c, x, residual, post_mix, comb_mix, residual_out, stream);
  PreWeights pw = weights_tensors(c, next, "next", a.post.H);
  a.pre = pre_outputs(ctx, c, p, pw, a.post.T, a.post.H, post_mix_out, comb_mix_out,
                      layer_input_out, workspace, workspace_bytes, stream, MHC_OP_HC_POST_PRE);
  a.pre.residual = a.post.residual_out;
  return a;
}

HeadArgs validate_head(const mhc_context &ctx, const mhc_hc_params *p, const DLTensor *fn_head,
                       const DLTensor *scale, const DLTensor *base, const DLTensor *residual,
                       const DLTensor *out, void *workspace, size_t workspace_bytes,
                       struct CUstream_st *stream) {
  validate_params(p);
  CallChecker c(ctx);
  HeadArgs a{};
  a.p = p;
  residual_sizes(c, residual, "residual", &a.T, &a.H);
  const int64_t T = a.T, H = a.H;
  a.residual = c.tensor<const bf16_bits>(residual, "residual", DType::kBF16, {T, kHcMult, H},
                                         "[T, 4, H]", false);
  a.fn = c.tensor<const float>(fn_head, "fn_head", DType::kF32, {kHeadMixes, kHcMult * H},
                               "[4, 4*H]", false);
  c.header(scale, "scale", DType::kF32, 1, "[S], S >= 1");
  if (scale->shape[0] < 1)
    fail(MHC_ERROR_INVALID_ARGUMENT, "scale: expected at least 1 element, got shape %s",
         shape_string(*scale).c_str());
  a.scale = c.tensor<const float>(scale, "scale", DType::kF32, {scale->shape[0]}, "[S]", false);
  a.base = c.tensor<const float>(base, "base", DType::kF32, {kHeadMixes}, "[4]", false);
  a.out = c.tensor<bf16_bits>(out, "out", DType::kBF16, {T, H}, "[T, H]", true);
  c.workspace(workspace, workspace_bytes,
              ctx.backend->workspace_size(MHC_OP_HC_HEAD, *p, T, H), T, H);
  a.workspace = workspace;
  a.workspace_bytes = workspace_bytes;
  a.stream = stream;
  return a;
}

void validate_workspace_query(int32_t op, const mhc_hc_params *p, int64_t num_tokens,
                              int64_t hidden) {
  if (op != MHC_OP_HC_PRE && op != MHC_OP_HC_POST_PRE && op != MHC_OP_HC_HEAD &&
      op != MHC_OP_HC_POST)
    fail(MHC_ERROR_INVALID_ARGUMENT, "op: expected an MHC_OP_* value (1..4), got %d", op);
  validate_params(p);
  if (num_tokens < 0)
    fail(MHC_ERROR_INVALID_ARGUMENT, "num_tokens: expected >= 0, got %lld",
         static_cast<long long>(num_tokens));
  validate_sizes(num_tokens, hidden, "hidden");
}

}  // namespace mhc
