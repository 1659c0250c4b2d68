// mhc_bench: per-op timings of libmhc on one CUDA GPU, warm and cold L2, against the
// device-to-device copy bandwidth measured in the same run.
//
// Uses only the public C API (mhc/mhc.h) and the CUDA runtime. See bench/README.md for the
// method, the columns and the byte model (reference/peers-perf.md §4.1).
//
//   mhc_bench [--ops hc_post,hc_pre,hc_post_pre,hc_head] [--tokens 1,2,...] [--hidden 4096,7168]
//             [--reps 100] [--json PATH] [--quick] [--cold-mode rotate|flush|none]
//             [--calls N] [--pdl] [--batch-invariant] [--norm] [--device ID] [--seed S]
//
// Method, in short:
//  * One CUDA graph holds N calls of the op (N = 2..50, chosen so a replay takes about
//    --target-replay-us); >= --reps replays are timed one by one with cudaEvents on a
//    non-default stream, and the median replay time / N is the time per call.
//  * Warm L2: every call of the graph uses the same buffers.
//  * Cold L2 ("rotate", default): S distinct buffer sets (inputs, weights, outputs and
//    workspace each), S = ceil(2 * L2 / bytes moved per call) + 1 (at least 2), and call i of
//    the graph uses set i mod S; the graph holds a multiple of S calls, so between two uses
//    of a set more than 2x the L2 size of other data has been moved.
//  * Cold L2 ("flush", or when rotation would need more than --max-sets sets): a memset of
//    a 2 * L2 scratch buffer before every call inside the graph; the median of a graph of
//    the memsets alone is subtracted.
//  * Every output is poisoned (all bits set = NaN) before one eager call and then checked
//    for non-finite values: this also catches elements the op never wrote.
#include <mhc/mhc.h>

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------
struct Fatal : std::runtime_error {
  using std::runtime_error::runtime_error;
};

void cuda_check(cudaError_t e, const char *what, const char *file, int line) {
  if (e == cudaSuccess) return;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s:%d: %s: %s (%s)", file, line, what, cudaGetErrorName(e),
                cudaGetErrorString(e));
  throw Fatal(buf);
}
#define CK(call) cuda_check((call), #call, __FILE__, __LINE__)

// ---------------------------------------------------------------------------------------
// Ops and the byte model of reference/peers-perf.md §4.1
// ---------------------------------------------------------------------------------------
enum Op { OP_POST = 0, OP_PRE, OP_POST_PRE, OP_HEAD, NUM_OPS };
const char *const kOpName[NUM_OPS] = {"hc_post", "hc_pre", "hc_post_pre", "hc_head"};

constexpr int kN = 4;            // hc_mult
constexpr int kMix = kN * (kN + 2);  // 24

// W = 24 * 4H * 4 bytes (fn, fp32); W_head = 4 * 4H * 4 bytes (fn_head, fp32).
double model_bytes(Op op, int64_t T, int64_t H) {
  const double t = double(T), h = double(H);
  const double W = double(kMix) * kN * h * 4.0;
  const double Wh = double(kN) * kN * h * 4.0;
  switch (op) {
    case OP_POST: return t * (18.0 * h + 80.0);            // residual 8H + x 2H + out 8H + mixes 80
    case OP_PRE: return t * (10.0 * h + 80.0) + W;         // residual 8H + layer_input 2H + mixes 80
    case OP_POST_PRE: return t * (20.0 * h + 160.0) + W;   // the whole boundary, minimum
    case OP_HEAD: return t * (8.0 * h + 2.0 * h) + Wh;     // residual 8H + out 2H
    default: return 0.0;
  }
}

// ---------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------
enum ColdMode { COLD_ROTATE, COLD_FLUSH, COLD_NONE };

struct Options {
  std::vector<Op> ops = {OP_POST, OP_PRE, OP_POST_PRE, OP_HEAD};
  std::vector<int64_t> tokens = {1, 2, 4, 8, 16, 32, 64, 128, 512, 2048, 8192};
  std::vector<int64_t> hidden = {4096, 7168};
  int reps = 100;
  int warmup = 10;
  double settle_ms = 25.0;
  int calls = 0;             // 0 = automatic
  int max_calls = 50;
  int min_calls = 2;
  double target_replay_us = 2000.0;
  double row_budget_s = 2.5;  // reps are reduced (never below 20) if a row would take longer
  int max_sets = 4096;
  ColdMode cold = COLD_ROTATE;
  bool pdl = false, batch_invariant = false, norm = false, quick = false;
  int device = 0;
  uint64_t seed = 20260501;
  size_t copy_bytes = size_t(1) << 30;
  std::string json_path;
};

void usage(const char *argv0) {
  std::printf(
      "usage: %s [options]\n"
      "  --ops LIST            hc_post,hc_pre,hc_post_pre,hc_head (default: all)\n"
      "  --tokens LIST         T values (default 1,2,4,8,16,32,64,128,512,2048,8192)\n"
      "  --hidden LIST         H values (default 4096,7168)\n"
      "  --reps R              timed graph replays per measurement (default 100, >= 1)\n"
      "  --warmup W            untimed replays before the timed ones (default 10)\n"
      "  --settle-ms M         ... and before a row's warm timing at least M ms of them (default 25):\n"
      "                        clocks settle after the previous row (a prefill row left the next\n"
      "                        decode row's first ~10 ms up to 1.5 us per call slower on an H200)\n"
      "  --calls N             op calls captured per graph (default: automatic, 2..50)\n"
      "  --target-replay-us U  automatic N aims at replays of about U us (default 2000)\n"
      "  --row-budget-s S      cut reps (not below 20) when one row's timing would take longer\n"
      "                        (default 2.5; 1 with --quick)\n"
      "  --cold-mode M         rotate (default), flush, or none (warm only)\n"
      "  --max-sets S          rotate at most S buffer sets, else flush for that row (default 4096)\n"
      "  --copy-mib M          size of the copy-bandwidth buffer in MiB (default 1024)\n"
      "  --pdl                 create the context with MHC_CONTEXT_FLAG_PDL\n"
      "  --batch-invariant     params.flags |= MHC_FLAG_BATCH_INVARIANT\n"
      "  --norm                pass a norm_weight (fused RMSNorm) to hc_pre / hc_post_pre\n"
      "  --device ID           CUDA device (default 0)\n"
      "  --seed S              input seed\n"
      "  --json PATH           write the results as JSON\n"
      "  --quick               T in {1,8,32,128,2048}, 50 reps: well under a minute\n",
      argv0);
}

std::vector<std::string> split_list(const std::string &s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int64_t parse_int(const std::string &s, const char *flag) {
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno || end == s.c_str() || *end != '\0') {
    std::fprintf(stderr, "%s: not an integer: '%s'\n", flag, s.c_str());
    std::exit(2);
  }
  return v;
}

double parse_double(const std::string &s, const char *flag) {
  char *end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || *end != '\0') {
    std::fprintf(stderr, "%s: not a number: '%s'\n", flag, s.c_str());
    std::exit(2);
  }
  return v;
}

Op parse_op(const std::string &s) {
  for (int i = 0; i < NUM_OPS; ++i)
    if (s == kOpName[i] || s == kOpName[i] + 3) return Op(i);  // "hc_post" or "post"
  std::fprintf(stderr, "--ops: unknown op '%s' (hc_post, hc_pre, hc_post_pre, hc_head)\n",
               s.c_str());
  std::exit(2);
}

Options parse_args(int argc, char **argv) {
  Options o;
  bool reps_set = false, tokens_set = false, budget_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char *flag) -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", flag);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      usage(argv[0]);
      std::exit(0);
    } else if (a == "--ops") {
      o.ops.clear();
      std::string v = val("--ops");
      if (v == "all") {
        o.ops = {OP_POST, OP_PRE, OP_POST_PRE, OP_HEAD};
      } else {
        for (auto &s : split_list(v)) o.ops.push_back(parse_op(s));
      }
    } else if (a == "--tokens") {
      o.tokens.clear();
      for (auto &s : split_list(val("--tokens"))) o.tokens.push_back(parse_int(s, "--tokens"));
      tokens_set = true;
    } else if (a == "--hidden") {
      o.hidden.clear();
      for (auto &s : split_list(val("--hidden"))) o.hidden.push_back(parse_int(s, "--hidden"));
    } else if (a == "--reps") {
      o.reps = int(parse_int(val("--reps"), "--reps"));
      reps_set = true;
    } else if (a == "--warmup") {
      o.warmup = int(parse_int(val("--warmup"), "--warmup"));
    } else if (a == "--settle-ms") {
      o.settle_ms = parse_double(val("--settle-ms"), "--settle-ms");
    } else if (a == "--calls") {
      o.calls = int(parse_int(val("--calls"), "--calls"));
    } else if (a == "--target-replay-us") {
      o.target_replay_us = parse_double(val("--target-replay-us"), "--target-replay-us");
    } else if (a == "--row-budget-s") {
      o.row_budget_s = parse_double(val("--row-budget-s"), "--row-budget-s");
      budget_set = true;
    } else if (a == "--max-sets") {
      o.max_sets = int(parse_int(val("--max-sets"), "--max-sets"));
    } else if (a == "--copy-mib") {
      o.copy_bytes = size_t(parse_int(val("--copy-mib"), "--copy-mib")) << 20;
    } else if (a == "--cold-mode") {
      std::string m = val("--cold-mode");
      if (m == "rotate") o.cold = COLD_ROTATE;
      else if (m == "flush") o.cold = COLD_FLUSH;
      else if (m == "none") o.cold = COLD_NONE;
      else {
        std::fprintf(stderr, "--cold-mode: rotate, flush or none\n");
        std::exit(2);
      }
    } else if (a == "--pdl") {
      o.pdl = true;
    } else if (a == "--batch-invariant") {
      o.batch_invariant = true;
    } else if (a == "--norm") {
      o.norm = true;
    } else if (a == "--device") {
      o.device = int(parse_int(val("--device"), "--device"));
    } else if (a == "--seed") {
      o.seed = uint64_t(parse_int(val("--seed"), "--seed"));
    } else if (a == "--json") {
      o.json_path = val("--json");
    } else if (a == "--quick") {
      o.quick = true;
    } else {
      std::fprintf(stderr, "unknown argument '%s'\n", a.c_str());
      usage(argv[0]);
      std::exit(2);
    }
  }
  if (o.quick) {
    if (!tokens_set) o.tokens = {1, 8, 32, 128, 2048};
    if (!reps_set) o.reps = 50;
    if (!budget_set) o.row_budget_s = 1.0;
  }
  if (o.ops.empty() || o.tokens.empty() || o.hidden.empty()) {
    std::fprintf(stderr, "--ops, --tokens and --hidden need at least one value\n");
    std::exit(2);
  }
  for (int64_t t : o.tokens)
    if (t < 1) { std::fprintf(stderr, "--tokens: T must be >= 1\n"); std::exit(2); }
  for (int64_t h : o.hidden)
    if (h < 1) { std::fprintf(stderr, "--hidden: H must be >= 1\n"); std::exit(2); }
  if (o.reps < 1 || o.warmup < 0 || o.calls < 0 || o.max_sets < 2 || o.copy_bytes == 0) {
    std::fprintf(stderr, "need --reps >= 1, --warmup >= 0, --calls >= 0, --max-sets >= 2, "
                         "--copy-mib >= 1\n");
    std::exit(2);
  }
  return o;
}

// ---------------------------------------------------------------------------------------
// Model-like inputs, computed on the host (counter-based RNG: the same values whatever the
// number of threads).
// ---------------------------------------------------------------------------------------
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// One standard normal per index (Box-Muller on the two halves of one hash).
inline float normal_at(uint64_t stream_seed, uint64_t i) {
  uint64_t r = mix64(stream_seed + 0x9E3779B97F4A7C15ull * (i + 1));
  double u1 = (double((r >> 32) & 0xffffffffu) + 1.0) * (1.0 / 4294967297.0);  // (0, 1)
  double u2 = double(r & 0xffffffffu) * (1.0 / 4294967296.0);
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// f(i) for i in [0, n) on up to hardware_concurrency threads, each taking >= grain items.
template <class F>
void parallel_for(size_t n, F &&f, size_t grain = size_t(1) << 16) {
  const size_t by_grain = (n + grain - 1) / std::max<size_t>(grain, 1);
  unsigned nt = unsigned(std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()),
                                          std::max<size_t>(by_grain, 1)));
  std::vector<std::thread> th;
  size_t chunk = (n + nt - 1) / nt;
  for (unsigned t = 0; t < nt; ++t) {
    size_t b = t * chunk, e = std::min(n, b + chunk);
    if (b >= e) break;
    th.emplace_back([&f, b, e] {
      for (size_t i = b; i < e; ++i) f(i);
    });
  }
  for (auto &x : th) x.join();
}

std::vector<uint16_t> randn_bf16(size_t n, uint64_t seed, float sd) {
  std::vector<uint16_t> v(n);
  parallel_for(n, [&](size_t i) { v[i] = f32_to_bf16(sd * normal_at(seed, i)); });
  return v;
}

std::vector<float> randn_f32(size_t n, uint64_t seed, float sd, float mean = 0.0f) {
  std::vector<float> v(n);
  parallel_for(n, [&](size_t i) { v[i] = mean + sd * normal_at(seed, i); });
  return v;
}

// comb[a][c] of one token: Sinkhorn of random logits (row softmax, column, then row/column
// normalisations), as hc_pre of the previous sub-layer would have produced it.
void sinkhorn_host(float c[4][4], int iters, float eps) {
  for (int a = 0; a < 4; ++a) {
    float m = std::max(std::max(c[a][0], c[a][1]), std::max(c[a][2], c[a][3]));
    float s = 0.0f;
    for (int k = 0; k < 4; ++k) s += (c[a][k] = std::exp(c[a][k] - m));
    for (int k = 0; k < 4; ++k) c[a][k] = c[a][k] / s + eps;
  }
  for (int it = 0; it < iters; ++it) {
    if (it > 0)
      for (int a = 0; a < 4; ++a) {
        float s = c[a][0] + c[a][1] + c[a][2] + c[a][3] + eps;
        for (int k = 0; k < 4; ++k) c[a][k] /= s;
      }
    for (int k = 0; k < 4; ++k) {
      float s = c[0][k] + c[1][k] + c[2][k] + c[3][k] + eps;
      for (int a = 0; a < 4; ++a) c[a][k] /= s;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Device buffers
// ---------------------------------------------------------------------------------------
struct DevBuf {
  void *p = nullptr;
  size_t bytes = 0;
  DevBuf() = default;
  explicit DevBuf(size_t n) : bytes(n) { CK(cudaMalloc(&p, n ? n : 1)); }
  DevBuf(const DevBuf &) = delete;
  DevBuf &operator=(const DevBuf &) = delete;
  DevBuf(DevBuf &&o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr; o.bytes = 0; }
  DevBuf &operator=(DevBuf &&o) noexcept {
    std::swap(p, o.p);
    std::swap(bytes, o.bytes);
    return *this;
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
};

template <class T>
DevBuf upload(const std::vector<T> &h) {
  DevBuf d(h.size() * sizeof(T));
  CK(cudaMemcpy(d.p, h.data(), d.bytes, cudaMemcpyHostToDevice));
  return d;
}

// The buffers of one call. Inputs come first, then outputs, then the workspace.
enum Buf {
  B_RES, B_X, B_POST, B_COMB, B_FN, B_SCALE, B_BASE, B_NORMW, B_FNH, B_HSCALE, B_HBASE,
  B_RES_OUT, B_POST_OUT, B_COMB_OUT, B_LI_OUT, B_HEAD_OUT, B_WS, NUM_BUF
};
constexpr int kFirstOutput = B_RES_OUT;

// Master copies of every input for the largest T (one per hidden size); a set's inputs are
// prefixes of these.
struct Masters {
  int64_t T = 0, H = 0;
  DevBuf buf[kFirstOutput];
};

Masters make_masters(int64_t Tmax, int64_t H, uint64_t seed) {
  Masters m;
  m.T = Tmax;
  m.H = H;
  const size_t T = size_t(Tmax), h = size_t(H), K = kN * h;
  // residual streams: randn (bf16); sub-layer output x: randn (bf16)
  m.buf[B_RES] = upload(randn_bf16(T * kN * h, seed + 1, 1.0f));
  m.buf[B_X] = upload(randn_bf16(T * h, seed + 2, 1.0f));
  // post = 2 * sigmoid(randn); comb = Sinkhorn(randn logits), 20 iterations
  {
    std::vector<float> z = randn_f32(T * kN, seed + 3, 1.0f);
    for (float &v : z) v = 2.0f / (1.0f + std::exp(-v));
    m.buf[B_POST] = upload(z);
    std::vector<float> c = randn_f32(T * 16, seed + 4, 1.0f);
    for (size_t t = 0; t < T; ++t) {
      float cc[4][4];
      std::memcpy(cc, &c[t * 16], sizeof cc);
      sinkhorn_host(cc, 20, 1e-6f);
      std::memcpy(&c[t * 16], cc, sizeof cc);
    }
    m.buf[B_COMB] = upload(c);
  }
  // sub-layer mHC weights: fn randn * 1e-3, scale ~ 1, base randn * 0.5
  m.buf[B_FN] = upload(randn_f32(size_t(kMix) * K, seed + 5, 1e-3f));
  m.buf[B_SCALE] = upload(randn_f32(3, seed + 6, 0.1f, 1.0f));
  m.buf[B_BASE] = upload(randn_f32(kMix, seed + 7, 0.5f));
  {
    std::vector<float> w = randn_f32(h, seed + 8, 0.1f, 1.0f);
    std::vector<uint16_t> wb(h);
    for (size_t i = 0; i < h; ++i) wb[i] = f32_to_bf16(w[i]);
    m.buf[B_NORMW] = upload(wb);
  }
  // head weights
  m.buf[B_FNH] = upload(randn_f32(size_t(kN) * K, seed + 9, 1e-3f));
  m.buf[B_HSCALE] = upload(randn_f32(1, seed + 10, 0.1f, 1.0f));
  m.buf[B_HBASE] = upload(randn_f32(kN, seed + 11, 0.5f));
  return m;
}

// Shapes of every buffer for one (op, T, H); ndim 0 = buffer not used by the op.
struct Shapes {
  int64_t dims[NUM_BUF][3] = {};
  int ndim[NUM_BUF] = {};
  bool bf16[NUM_BUF] = {};
  size_t bytes[NUM_BUF] = {};
};

Shapes make_shapes(Op op, int64_t T, int64_t H, bool norm, size_t ws_bytes) {
  Shapes s;
  auto set = [&](Buf b, bool isbf16, std::initializer_list<int64_t> d) {
    s.ndim[b] = int(d.size());
    size_t n = 1;
    int i = 0;
    for (int64_t x : d) {
      s.dims[b][i++] = x;
      n *= size_t(x);
    }
    s.bf16[b] = isbf16;
    s.bytes[b] = n * (isbf16 ? 2 : 4);
  };
  const int64_t K = kN * H;
  set(B_RES, true, {T, kN, H});
  const bool post_in = op == OP_POST || op == OP_POST_PRE;
  const bool pre_out = op == OP_PRE || op == OP_POST_PRE;
  if (post_in) {
    set(B_X, true, {T, H});
    set(B_POST, false, {T, kN});
    set(B_COMB, false, {T, kN, kN});
    set(B_RES_OUT, true, {T, kN, H});
  }
  if (pre_out) {
    set(B_FN, false, {kMix, K});
    set(B_SCALE, false, {3});
    set(B_BASE, false, {kMix});
    if (norm) set(B_NORMW, true, {H});
    set(B_POST_OUT, false, {T, kN});
    set(B_COMB_OUT, false, {T, kN, kN});
    set(B_LI_OUT, true, {T, H});
  }
  if (op == OP_HEAD) {
    set(B_FNH, false, {kN, K});
    set(B_HSCALE, false, {1});
    set(B_HBASE, false, {kN});
    set(B_HEAD_OUT, true, {T, H});
  }
  s.bytes[B_WS] = ws_bytes;
  return s;
}

// S buffer sets laid out in one allocation.
struct Arena {
  size_t off[NUM_BUF] = {};
  size_t stride = 0;
  int sets = 0;
  DevBuf mem;
};

constexpr size_t kAlign = 256;
inline size_t align_up(size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }

size_t set_stride(const Shapes &s, size_t off[NUM_BUF]) {
  size_t cur = 0;
  for (int b = 0; b < NUM_BUF; ++b) {
    off[b] = cur;
    if (s.bytes[b]) cur = align_up(cur + s.bytes[b]);
  }
  return std::max(cur, kAlign);
}

// Per-set DLTensor descriptors (shapes point into the shared Shapes).
struct SetDesc {
  DLTensor t[NUM_BUF];
  mhc_hc_weights w;
  void *ws = nullptr;
  size_t ws_bytes = 0;
};

std::vector<SetDesc> make_descs(const Arena &a, Shapes &s, int device) {
  std::vector<SetDesc> d(size_t(a.sets));
  for (int k = 0; k < a.sets; ++k) {
    char *base = static_cast<char *>(a.mem.p) + size_t(k) * a.stride;
    SetDesc &sd = d[size_t(k)];
    sd = SetDesc{};
    for (int b = 0; b < NUM_BUF; ++b) {
      DLTensor &t = sd.t[b];
      t.data = base + a.off[b];
      t.device.device_type = kDLCUDA;
      t.device.device_id = device;
      t.ndim = s.ndim[b];
      t.dtype.code = s.bf16[b] ? uint8_t(kDLBfloat) : uint8_t(kDLFloat);
      t.dtype.bits = s.bf16[b] ? 16 : 32;
      t.dtype.lanes = 1;
      t.shape = s.dims[b];
      t.strides = nullptr;
      t.byte_offset = 0;
    }
    sd.w.fn = &sd.t[B_FN];
    sd.w.scale = &sd.t[B_SCALE];
    sd.w.base = &sd.t[B_BASE];
    sd.w.norm_weight = s.ndim[B_NORMW] ? &sd.t[B_NORMW] : nullptr;
    sd.ws = s.bytes[B_WS] ? base + a.off[B_WS] : nullptr;
    sd.ws_bytes = s.bytes[B_WS];
  }
  return d;
}

mhc_status_t call_op(Op op, mhc_context *ctx, const mhc_hc_params *p, const SetDesc &d,
                     cudaStream_t st) {
  const DLTensor *t = d.t;
  switch (op) {
    case OP_POST:
      return mhc_hc_post(ctx, &t[B_X], &t[B_RES], &t[B_POST], &t[B_COMB], &t[B_RES_OUT], st);
    case OP_PRE:
      return mhc_hc_pre(ctx, p, &d.w, &t[B_RES], &t[B_POST_OUT], &t[B_COMB_OUT], &t[B_LI_OUT],
                        d.ws, d.ws_bytes, st);
    case OP_POST_PRE:
      return mhc_hc_post_pre(ctx, p, &d.w, &t[B_X], &t[B_RES], &t[B_POST], &t[B_COMB],
                             &t[B_RES_OUT], &t[B_POST_OUT], &t[B_COMB_OUT], &t[B_LI_OUT], d.ws,
                             d.ws_bytes, st);
    case OP_HEAD:
      return mhc_hc_head(ctx, p, &t[B_FNH], &t[B_HSCALE], &t[B_HBASE], &t[B_RES],
                         &t[B_HEAD_OUT], d.ws, d.ws_bytes, st);
    default:
      return MHC_ERROR_INVALID_ARGUMENT;
  }
}

int32_t workspace_op(Op op) {
  switch (op) {
    case OP_PRE: return MHC_OP_HC_PRE;
    case OP_POST_PRE: return MHC_OP_HC_POST_PRE;
    case OP_HEAD: return MHC_OP_HC_HEAD;
    default: return MHC_OP_HC_POST;
  }
}

std::string mhc_error(mhc_status_t st) {
  return std::string(mhc_status_string(st)) + ": " + mhc_last_error_message();
}

// ---------------------------------------------------------------------------------------
// Graphs and timing
// ---------------------------------------------------------------------------------------
struct Graph {
  cudaGraphExec_t exec = nullptr;
  Graph() = default;
  Graph(const Graph &) = delete;
  Graph &operator=(const Graph &) = delete;
  Graph(Graph &&o) noexcept : exec(o.exec) { o.exec = nullptr; }
  Graph &operator=(Graph &&) = delete;
  ~Graph() {
    if (exec) cudaGraphExecDestroy(exec);
  }
};

// Captures body(0..n-1) on `st` into one graph. body returns an mhc status; on failure the
// capture is abandoned and *err says why.
template <class Body>
Graph capture(cudaStream_t st, int n, Body &&body, std::string *err) {
  Graph g;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
  std::string fail;
  for (int i = 0; i < n && fail.empty(); ++i) {
    mhc_status_t s = body(i);
    if (s != MHC_SUCCESS) fail = "during capture: " + mhc_error(s);
  }
  cudaGraph_t graph = nullptr;
  cudaError_t e = cudaStreamEndCapture(st, &graph);
  if (fail.empty() && e != cudaSuccess)
    fail = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(e);
  if (fail.empty()) {
    e = cudaGraphInstantiate(&g.exec, graph, 0);
    if (e != cudaSuccess) {
      fail = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(e);
      g.exec = nullptr;
    }
  }
  if (graph) cudaGraphDestroy(graph);
  if (!fail.empty()) {
    (void)cudaGetLastError();  // clear a non-sticky capture error
    *err = fail;
  }
  return g;
}

struct Stats {
  double median = NAN, min = NAN, p10 = NAN, p90 = NAN;  // microseconds per replay
};

class Timer {
 public:
  Timer() = default;  // events are created on first use, inside main's try
  ~Timer() {
    for (auto e : ev_) cudaEventDestroy(e);
  }
  // Replays `g` warmup times, then `reps` times with an event between consecutive replays.
  // The warm-up replays are enqueued without a host sync so that the host is ahead of the
  // GPU when the timed replays start.
  Stats time(const Graph &g, cudaStream_t st, int warmup, int reps) {
    grow(reps);
    for (int i = 0; i < warmup; ++i) CK(cudaGraphLaunch(g.exec, st));
    CK(cudaEventRecord(ev_[0], st));
    for (int i = 0; i < reps; ++i) {
      CK(cudaGraphLaunch(g.exec, st));
      CK(cudaEventRecord(ev_[size_t(i) + 1], st));
    }
    CK(cudaEventSynchronize(ev_[size_t(reps)]));
    std::vector<double> us(static_cast<size_t>(reps));
    for (int i = 0; i < reps; ++i) {
      float ms = 0.0f;
      CK(cudaEventElapsedTime(&ms, ev_[size_t(i)], ev_[size_t(i) + 1]));
      us[size_t(i)] = double(ms) * 1e3;
    }
    std::sort(us.begin(), us.end());
    auto q = [&](double f) { return us[size_t(std::lround(f * double(reps - 1)))]; };
    Stats s;
    s.median = reps % 2 ? us[size_t(reps / 2)]
                        : 0.5 * (us[size_t(reps / 2 - 1)] + us[size_t(reps / 2)]);
    s.min = us.front();
    s.p10 = q(0.1);
    s.p90 = q(0.9);
    return s;
  }

 private:
  void grow(int reps) {
    while (ev_.size() < size_t(reps) + 1) {
      cudaEvent_t e;
      CK(cudaEventCreate(&e));
      ev_.push_back(e);
    }
  }
  std::vector<cudaEvent_t> ev_;
};

// ---------------------------------------------------------------------------------------
// NaN / unwritten-output check
// ---------------------------------------------------------------------------------------
size_t count_nonfinite(const void *dev, size_t bytes, bool bf16) {
  if (!bytes) return 0;
  std::vector<unsigned char> h(bytes);
  CK(cudaMemcpy(h.data(), dev, bytes, cudaMemcpyDeviceToHost));
  std::atomic<size_t> bad{0};
  if (bf16) {
    const uint16_t *v = reinterpret_cast<const uint16_t *>(h.data());
    size_t n = bytes / 2, nchunks = (n + 65535) / 65536;
    parallel_for(nchunks, [&](size_t c) {
      size_t b = c * 65536, e = std::min(n, b + 65536), k = 0;
      for (size_t i = b; i < e; ++i) k += (v[i] & 0x7f80u) == 0x7f80u;
      if (k) bad += k;
    }, 1);
  } else {
    const float *v = reinterpret_cast<const float *>(h.data());
    size_t n = bytes / 4, nchunks = (n + 65535) / 65536;
    parallel_for(nchunks, [&](size_t c) {
      size_t b = c * 65536, e = std::min(n, b + 65536), k = 0;
      for (size_t i = b; i < e; ++i) k += !std::isfinite(v[i]);
      if (k) bad += k;
    }, 1);
  }
  return bad.load();
}

// ---------------------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------------------
struct Row {
  Op op;
  int64_t T = 0, H = 0;
  double bytes = 0;
  Stats warm, cold;         // per call (already divided by the calls per graph)
  double flush_us = NAN;    // per flush, flush mode only
  int calls_warm = 0, calls_cold = 0, sets = 0, reps = 0;
  std::string cold_mode;
  size_t nonfinite = 0;
  size_t workspace = 0;
  std::string error;  // the row failed (or part of it: see which times are null)
  std::string note;   // something about how it was measured
};

struct DeviceInfo {
  std::string name;
  int cc_major = 0, cc_minor = 0, sms = 0, driver = 0, runtime = 0;
  size_t l2 = 0, mem = 0;
};

std::string json_str(const std::string &s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else {
      o += c;
    }
  }
  return o + "\"";
}

std::string json_num(double v) {
  if (!std::isfinite(v)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, "%.6g", v);
  return b;
}

void write_json(const std::string &path, const Options &o, const DeviceInfo &dev, double copy_us,
                double copy_gbps, const std::vector<Row> &rows, bool complete) {
  FILE *f = std::fopen(path.c_str(), "w");
  if (!f) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    return;
  }
  std::fprintf(f, "{\n  \"schema\": \"mhc_bench/1\",\n  \"complete\": %s,\n",
               complete ? "true" : "false");
  std::fprintf(f,
               "  \"device\": {\"name\": %s, \"cc\": \"%d.%d\", \"sms\": %d, \"l2_bytes\": %zu, "
               "\"memory_bytes\": %zu, \"driver\": %d, \"runtime\": %d},\n",
               json_str(dev.name).c_str(), dev.cc_major, dev.cc_minor, dev.sms, dev.l2, dev.mem,
               dev.driver, dev.runtime);
  std::fprintf(f, "  \"library\": {\"version\": %d, \"header_version\": %d},\n",
               int(mhc_get_version()), int(MHC_VERSION));
  const char *cm = o.cold == COLD_ROTATE ? "rotate" : o.cold == COLD_FLUSH ? "flush" : "none";
  std::fprintf(f,
               "  \"config\": {\"reps\": %d, \"warmup\": %d, \"settle_ms\": %s, \"cold_mode\": \"%s\", \"pdl\": %s, "
               "\"batch_invariant\": %s, \"norm\": %s, \"quick\": %s, \"target_replay_us\": %s, "
               "\"seed\": %llu},\n",
               o.reps, o.warmup, json_num(o.settle_ms).c_str(), cm, o.pdl ? "true" : "false",
               o.batch_invariant ? "true" : "false", o.norm ? "true" : "false",
               o.quick ? "true" : "false", json_num(o.target_replay_us).c_str(),
               static_cast<unsigned long long>(o.seed));
  std::fprintf(f,
               "  \"copy\": {\"buffer_bytes\": %zu, \"bytes_per_copy\": %zu, \"median_us\": %s, "
               "\"gbps\": %s},\n",
               o.copy_bytes, 2 * o.copy_bytes, json_num(copy_us).c_str(),
               json_num(copy_gbps).c_str());
  std::fprintf(f, "  \"rows\": [");
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row &r = rows[i];
    auto gbps = [&](double us) { return r.bytes / (us * 1e-6) / 1e9; };
    std::fprintf(f, "%s\n    {\"op\": \"%s\", \"T\": %lld, \"H\": %lld, \"bytes\": %.0f, ",
                 i ? "," : "", kOpName[r.op], static_cast<long long>(r.T),
                 static_cast<long long>(r.H), r.bytes);
    std::fprintf(f,
                 "\"warm_us\": %s, \"warm_min_us\": %s, \"warm_p10_us\": %s, \"warm_p90_us\": %s, ",
                 json_num(r.warm.median).c_str(), json_num(r.warm.min).c_str(),
                 json_num(r.warm.p10).c_str(), json_num(r.warm.p90).c_str());
    std::fprintf(f,
                 "\"cold_us\": %s, \"cold_min_us\": %s, \"cold_p10_us\": %s, \"cold_p90_us\": %s, ",
                 json_num(r.cold.median).c_str(), json_num(r.cold.min).c_str(),
                 json_num(r.cold.p10).c_str(), json_num(r.cold.p90).c_str());
    std::fprintf(f,
                 "\"gbps_warm\": %s, \"gbps_cold\": %s, \"pct_copy_warm\": %s, "
                 "\"pct_copy_cold\": %s, \"floor_us\": %s, ",
                 json_num(gbps(r.warm.median)).c_str(), json_num(gbps(r.cold.median)).c_str(),
                 json_num(100.0 * gbps(r.warm.median) / copy_gbps).c_str(),
                 json_num(100.0 * gbps(r.cold.median) / copy_gbps).c_str(),
                 json_num(r.bytes / (copy_gbps * 1e3)).c_str());
    std::fprintf(f,
                 "\"calls_warm\": %d, \"calls_cold\": %d, \"sets\": %d, \"cold_mode\": %s, "
                 "\"flush_us\": %s, \"reps\": %d, \"workspace_bytes\": %zu, \"nonfinite\": %zu, "
                 "\"error\": %s, \"note\": %s}",
                 r.calls_warm, r.calls_cold, r.sets, json_str(r.cold_mode).c_str(),
                 json_num(r.flush_us).c_str(), r.reps, r.workspace, r.nonfinite,
                 r.error.empty() ? "null" : json_str(r.error).c_str(),
                 r.note.empty() ? "null" : json_str(r.note).c_str());
  }
  std::fprintf(f, "\n  ]\n}\n");
  std::fclose(f);
}

void print_header() {
  std::printf("%-12s %6s %5s %10s %10s %9s %8s %7s %7s %9s %s\n", "op", "T", "H", "warm_us",
              "cold_us", "MB", "GB/s", "%copy", "%copyW", "floor_us", "N/Nc/sets");
}

void print_row(const Row &r, double copy_gbps) {
  if (!r.error.empty() && !std::isfinite(r.warm.median)) {
    std::printf("%-12s %6lld %5lld  ERROR %s\n", kOpName[r.op], static_cast<long long>(r.T),
                static_cast<long long>(r.H), r.error.c_str());
    std::fflush(stdout);
    return;
  }
  const double mb = r.bytes / 1e6;
  const double gb_w = r.bytes / (r.warm.median * 1e-6) / 1e9;
  const double ref_us = std::isfinite(r.cold.median) ? r.cold.median : r.warm.median;
  const double gb = r.bytes / (ref_us * 1e-6) / 1e9;
  std::printf("%-12s %6lld %5lld %10.2f %10.2f %9.3f %8.0f %6.1f%% %6.1f%% %9.2f %d/%d/%d%s%s\n",
              kOpName[r.op], static_cast<long long>(r.T), static_cast<long long>(r.H),
              r.warm.median, r.cold.median, mb, gb, 100.0 * gb / copy_gbps,
              100.0 * gb_w / copy_gbps, r.bytes / (copy_gbps * 1e3), r.calls_warm, r.calls_cold,
              r.sets, r.nonfinite ? "  NONFINITE OUTPUT" : "",
              r.error.empty() ? "" : ("  (" + r.error + ")").c_str());
  if (!r.note.empty()) std::printf("    note: %s\n", r.note.c_str());
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------
// The copy-bandwidth reference: an SM copy kernel (16-byte vectors, grid-stride) over a
// 1 GiB buffer, several per graph. A cudaMemcpyAsync node inside a graph ran on a copy
// path that reached only ~2.7 TB/s on an H200, below what the SMs stream, so it made a
// poor yardstick for kernels.
// ---------------------------------------------------------------------------------------
__global__ void copy_kernel(const uint4 *__restrict__ src, uint4 *__restrict__ dst, size_t n) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x)
    dst[i] = src[i];
}

double measure_copy(Timer &timer, cudaStream_t st, size_t bytes, double *median_us) {
  DevBuf src(bytes), dst(bytes);
  CK(cudaMemset(src.p, 0x5a, bytes));
  CK(cudaMemset(dst.p, 0xa5, bytes));
  constexpr int kCopies = 4;
  std::string err;
  Graph g = capture(
      st, kCopies,
      [&](int) -> mhc_status_t {
        int sms = 0;
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
        copy_kernel<<<sms * 8, 512, 0, st>>>(static_cast<const uint4 *>(src.p),
                                             static_cast<uint4 *>(dst.p), bytes / 16);
        return cudaGetLastError() == cudaSuccess ? MHC_SUCCESS : MHC_ERROR_CUDA;
      },
      &err);
  if (!g.exec) throw Fatal("copy graph: " + err);
  Stats s = timer.time(g, st, 3, 30);
  CK(cudaStreamSynchronize(st));
  *median_us = s.median / kCopies;
  return 2.0 * double(bytes) / (*median_us * 1e-6) / 1e9;  // read + write
}

// ---------------------------------------------------------------------------------------
// One row: (op, T, H)
// ---------------------------------------------------------------------------------------
struct Bench {
  Options o;
  DeviceInfo dev;
  mhc_context *ctx = nullptr;
  mhc_hc_params params = MHC_HC_PARAMS_INIT;
  cudaStream_t st = nullptr;
  Timer timer;
  DevBuf flush;  // 2 x L2 scratch, allocated on first use
  double copy_gbps = 0, copy_us = 0;

  void ensure_flush() {
    if (!flush.p) flush = DevBuf(2 * std::max<size_t>(dev.l2, size_t(1) << 20));
  }

  Row run_row(Op op, int64_t T, const Masters &m);
};

Row Bench::run_row(Op op, int64_t T, const Masters &m) {
  const int64_t H = m.H;
  Row r;
  r.op = op;
  r.T = T;
  r.H = H;
  r.bytes = model_bytes(op, T, H);
  r.cold_mode = o.cold == COLD_NONE ? "none" : o.cold == COLD_FLUSH ? "flush" : "rotate";

  size_t ws = 0;
  if (op != OP_POST) {
    mhc_status_t s = mhc_workspace_size(ctx, workspace_op(op), &params, T, H, &ws);
    if (s != MHC_SUCCESS) {
      r.error = "mhc_workspace_size: " + mhc_error(s);
      return r;
    }
  }
  r.workspace = ws;
  Shapes shapes = make_shapes(op, T, H, o.norm, ws);

  // Number of buffer sets for the cold measurement.
  int sets = 1;
  bool rotate = o.cold == COLD_ROTATE;
  if (rotate) {
    double need = std::ceil(2.0 * double(dev.l2) / r.bytes) + 1.0;
    if (need > double(o.max_sets)) {
      rotate = false;  // too many tiny sets: flush instead
      r.cold_mode = "flush";
      r.note = "rotation would need too many sets: flushed instead";
    } else {
      sets = std::max(2, int(need));
    }
  }

  Arena a;
  a.stride = set_stride(shapes, a.off);
  a.sets = sets;
  {
    size_t free_b = 0, total_b = 0;
    CK(cudaMemGetInfo(&free_b, &total_b));
    const size_t slack = (size_t(64) << 20) + (flush.p ? 0 : 2 * dev.l2);  // + flush scratch
    const size_t need = a.stride * size_t(sets) + slack;
    if (need > free_b) {
      if (rotate && a.stride * 2 + slack <= free_b) {
        sets = a.sets = 2;  // still cold for sets larger than L2; the row notes it
        r.note = "sets reduced to 2 (device memory)";
      } else if (a.stride + slack <= free_b) {
        sets = a.sets = 1;
        rotate = false;
        r.cold_mode = o.cold == COLD_NONE ? "none" : "flush";
      } else {
        r.error = "not enough device memory";
        return r;
      }
    }
  }
  r.sets = sets;
  const bool flush_mode = !rotate && o.cold != COLD_NONE;
  if (flush_mode) ensure_flush();
  a.mem = DevBuf(a.stride * size_t(sets));
  CK(cudaMemsetAsync(a.mem.p, 0xff, a.mem.bytes, st));  // poison: all-ones is NaN
  for (int k = 0; k < sets; ++k) {
    char *base = static_cast<char *>(a.mem.p) + size_t(k) * a.stride;
    for (int b = 0; b < kFirstOutput; ++b)
      if (shapes.bytes[b])
        CK(cudaMemcpyAsync(base + a.off[b], m.buf[b].p, shapes.bytes[b], cudaMemcpyDeviceToDevice,
                           st));
  }
  CK(cudaStreamSynchronize(st));
  std::vector<SetDesc> d = make_descs(a, shapes, o.device);

  // 1. One eager call on set 0, then the check of every output for NaN / Inf / unwritten.
  {
    mhc_status_t s = call_op(op, ctx, &params, d[0], st);
    if (s != MHC_SUCCESS) {
      r.error = mhc_error(s);
      return r;
    }
    CK(cudaStreamSynchronize(st));
    CK(cudaGetLastError());
    for (int b = kFirstOutput; b < B_WS; ++b)
      if (shapes.bytes[b])
        r.nonfinite += count_nonfinite(d[0].t[b].data, shapes.bytes[b], shapes.bf16[b]);
  }

  std::string err;
  // 2. Calls per graph: from a one-call graph, aim at replays of about target_replay_us.
  int N = o.calls;
  double t1 = 0;
  {
    Graph g1 = capture(st, 1, [&](int) { return call_op(op, ctx, &params, d[0], st); }, &err);
    if (!g1.exec) {
      r.error = err;
      return r;
    }
    t1 = timer.time(g1, st, 2, 5).median;
    if (N == 0)
      N = int(std::clamp(std::floor(o.target_replay_us / std::max(t1, 1.0)), double(o.min_calls),
                         double(o.max_calls)));
  }
  int Nc = rotate ? sets * ((N + sets - 1) / sets) : N;
  r.calls_warm = N;
  r.calls_cold = o.cold == COLD_NONE ? 0 : Nc;

  // Reps: cut (not below 20) when the row would take longer than the budget.
  int reps = o.reps;
  {
    double calls_per_rep = double(N) + (o.cold == COLD_NONE ? 0.0 : double(Nc) * (flush_mode ? 2 : 1));
    double est_s = double(reps + o.warmup) * calls_per_rep * t1 * 1e-6;
    if (est_s > o.row_budget_s && reps > 20) {
      reps = std::max(20, int(double(reps) * o.row_budget_s / est_s));
      std::fprintf(stderr, "note: %s T=%lld H=%lld: %d reps instead of %d (row budget)\n",
                   kOpName[op], static_cast<long long>(T), static_cast<long long>(H), reps,
                   o.reps);
    }
  }
  r.reps = reps;

  // 3. Warm: N calls on set 0.
  {
    Graph g = capture(st, N, [&](int) { return call_op(op, ctx, &params, d[0], st); }, &err);
    if (!g.exec) {
      r.error = err;
      return r;
    }
    const double replay_us = std::max(double(N) * t1, 1.0);
    const int settle = int(std::min(10000.0, std::ceil(std::max(o.settle_ms, 0.0) * 1e3 / replay_us)));
    Stats s = timer.time(g, st, std::max(o.warmup, settle), reps);
    r.warm = {s.median / N, s.min / N, s.p10 / N, s.p90 / N};
  }

  // 4. Cold.
  if (rotate) {
    Graph g = capture(st, Nc, [&](int i) { return call_op(op, ctx, &params, d[size_t(i % sets)], st); },
                      &err);
    if (!g.exec) {
      r.error = err;
      return r;
    }
    Stats s = timer.time(g, st, std::max(2, o.warmup / 2), reps);
    r.cold = {s.median / Nc, s.min / Nc, s.p10 / Nc, s.p90 / Nc};
  } else if (flush_mode) {
    auto memset_node = [&](int i) -> mhc_status_t {
      return cudaMemsetAsync(flush.p, (i & 1) ? 0x3c : 0xc3, flush.bytes, st) == cudaSuccess
                 ? MHC_SUCCESS
                 : MHC_ERROR_CUDA;
    };
    Graph gf = capture(st, N, memset_node, &err);
    Graph go = capture(
        st, N,
        [&](int i) -> mhc_status_t {
          mhc_status_t s = memset_node(i);
          return s != MHC_SUCCESS ? s : call_op(op, ctx, &params, d[0], st);
        },
        &err);
    if (!gf.exec || !go.exec) {
      r.error = err;
      return r;
    }
    Stats sf = timer.time(gf, st, std::max(2, o.warmup / 2), reps);
    Stats so = timer.time(go, st, std::max(2, o.warmup / 2), reps);
    r.flush_us = sf.median / N;
    r.cold.median = (so.median - sf.median) / N;
    r.cold.min = (so.min - sf.min) / N;
    r.cold.p10 = (so.p10 - sf.p10) / N;
    r.cold.p90 = (so.p90 - sf.p90) / N;
  }
  CK(cudaStreamSynchronize(st));
  CK(cudaGetLastError());
  return r;
}

}  // namespace

int main(int argc, char **argv) {
  Options o = parse_args(argc, argv);
  const auto t_start = std::chrono::steady_clock::now();

  Bench b;
  b.o = o;
  std::vector<Row> rows;
  int rc = 0;
  try {
    CK(cudaSetDevice(o.device));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, o.device));
    b.dev.name = prop.name;
    b.dev.cc_major = prop.major;
    b.dev.cc_minor = prop.minor;
    b.dev.sms = prop.multiProcessorCount;
    b.dev.l2 = size_t(prop.l2CacheSize);
    b.dev.mem = prop.totalGlobalMem;
    CK(cudaDriverGetVersion(&b.dev.driver));
    CK(cudaRuntimeGetVersion(&b.dev.runtime));
    if (mhc_get_version() != MHC_VERSION)
      std::fprintf(stderr, "warning: libmhc version %d, header %d\n", int(mhc_get_version()),
                   int(MHC_VERSION));

    mhc_context_config cfg = MHC_CONTEXT_CONFIG_INIT;
    cfg.backend = MHC_BACKEND_CUDA;
    cfg.device_id = o.device;
    cfg.flags = o.pdl ? MHC_CONTEXT_FLAG_PDL : 0u;
    mhc_status_t s = mhc_context_create(&b.ctx, &cfg);
    if (s != MHC_SUCCESS) throw Fatal("mhc_context_create: " + mhc_error(s));
    if (o.batch_invariant) b.params.flags |= MHC_FLAG_BATCH_INVARIANT;
    CK(cudaStreamCreateWithFlags(&b.st, cudaStreamNonBlocking));

    b.copy_gbps = measure_copy(b.timer, b.st, o.copy_bytes, &b.copy_us);
    std::printf("device: %s (sm_%d%d, %d SMs, L2 %.1f MiB), libmhc %d\n", b.dev.name.c_str(),
                b.dev.cc_major, b.dev.cc_minor, b.dev.sms, double(b.dev.l2) / 1048576.0,
                int(mhc_get_version()));
    std::printf("copy bandwidth (SM copy kernel, %zu MiB, read+write): %.0f GB/s (%.1f us per copy)\n",
                o.copy_bytes >> 20, b.copy_gbps, b.copy_us);
    std::printf("cold L2: %s; context flags: %s%s\n",
                o.cold == COLD_ROTATE ? "rotate buffer sets" : o.cold == COLD_FLUSH ? "flush" : "off",
                o.pdl ? "PDL " : "", o.batch_invariant ? "batch-invariant" : "");
    print_header();

    const int64_t Tmax = *std::max_element(o.tokens.begin(), o.tokens.end());
    for (int64_t H : o.hidden) {
      Masters m = make_masters(Tmax, H, o.seed + uint64_t(H) * 1000);
      for (Op op : o.ops)
        for (int64_t T : o.tokens) {
          rows.push_back(b.run_row(op, T, m));
          print_row(rows.back(), b.copy_gbps);
          if (!o.json_path.empty())  // after every row, so a killed run leaves its rows
            write_json(o.json_path, o, b.dev, b.copy_us, b.copy_gbps, rows, false);
        }
    }
  } catch (const Fatal &e) {
    std::fprintf(stderr, "fatal: %s\n", e.what());
    rc = 1;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "fatal: %s\n", e.what());
    rc = 1;
  }

  size_t nonfinite_rows = 0, error_rows = 0;
  for (const Row &r : rows) {
    nonfinite_rows += r.nonfinite != 0;
    error_rows += !r.error.empty() && !std::isfinite(r.warm.median);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  std::printf("%zu rows, %zu failed, %zu with non-finite outputs, %.1f s\n", rows.size(),
              error_rows, nonfinite_rows, secs);
  if (!o.json_path.empty()) {
    write_json(o.json_path, o, b.dev, b.copy_us, b.copy_gbps, rows, rc == 0);
    std::printf("wrote %s\n", o.json_path.c_str());
  }
  if (b.st) cudaStreamDestroy(b.st);
  if (b.ctx) mhc_context_destroy(b.ctx);
  if (rc == 0 && (nonfinite_rows || error_rows)) rc = 3;
  return rc;
}
