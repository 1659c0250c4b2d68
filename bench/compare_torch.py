#!/usr/bin/env python3
"""Time a plain PyTorch implementation of each mHC op (eager and torch.compile) against
libmhc on the same GPU, in one process, on the same inputs, everything under CUDA-graph
replay; check that libmhc's outputs match the reference.

The PyTorch reference is written from reference/mhc-spec.md (§2.1 hc_pre with a 20-iteration
Sinkhorn, §2.5 hc_head, §3 hc_post; the boundary is hc_post followed by hc_pre). libmhc is
called through ctypes on libmhc.so with minimal DLPack DLTensor structs built from torch
tensors, so this script needs neither the Python binding nor any package besides torch.

    python3 bench/compare_torch.py --lib build-bench/libmhc.so [--quick] [--json out.json]

Timing: N calls of an op are captured in one torch.cuda.CUDAGraph (N chosen so a replay takes
about --target-replay-us, 2..50 calls); --reps replays are timed one by one with CUDA events
and the median / N is the time per call (warm L2: the same buffers every call).

Checks (once per op/T/H, before timing): libmhc's fp32 mixes against the torch fp32 reference
with |got - ref| <= atol + rtol*|ref| (rtol 1e-4, atol 1e-5; TF32 is off). bf16 outputs are
compared in units in the last place (ulp) of bf16, element by element, with the rule of the
GPU accuracy test (tests/gpu/test_gpu_accuracy.c, tests/common/compare.c, reference64.h): an
element passes when it is within 1 ulp of the reference, or within the float32 error budget
of its value. The budget matters where the output is a sum of terms that nearly cancel: one
bf16 ulp of a result near zero is then far finer than a float32 evaluation resolves (the
1-ulp rule alone reported, on an H200, 22 ulp at one hc_post element of 131072 and 26388 ulp
at a layer_input near zero). In float64, with u = 2^-24:
  hc_post residual_out[j]:  budget = 10 u (|post_j x| + sum_i |comb[i][j] r_i|)
  hc_pre layer_input, hc_head out (sum_j pre_j r_j):
      budget = 8 u sum_j |pre_j r_j| + sum_j (atol + rtol*|pre_j|) |r_j|
  (the second term allows each pre gate the mixes' tolerance); with --norm the budget of ol
  is carried through bf16(bf16(ol) * rs * w) as reference64.c does (the inner rounding may
  go either way within ol's budget; rs moves with the budget of the sum of squares).
Against the float64 reference an element more than 1 ulp away passes when
|got - exact| <= budget + ulp(got)/2; against the fp32 reference (a second float32
evaluation, itself within one budget of the exact value) when
|got - ref| <= 2 budget + (ulp(got) + ulp(ref))/2. k = 10 and 8 are reference64.c's
constants (a float32 sum of n products is within 2 n u sum|terms| of the exact sum,
whatever the order, with or without FMA). An output passes when no element fails both
rules, or when the elements that do are all within 2 ulp and at most --ulp2-frac of them.
Reported per output: max_ulp, frac_gt1ulp (as before the budget), n_budget (elements the
budget accepted), budget_ratio (max |err| / allowed over the elements beyond 1 ulp) and
n_bad. Errors against the float64 reference are reported too (and gate instead with
--ref f64). For the boundary, the hc_pre part is checked against the reference applied to
libmhc's own residual_out (so that a 1-ulp difference in the new residual does not count
twice), and the fused call is checked bit for bit against libmhc's hc_post followed by
hc_pre, which the C API promises.

--backend cpu runs only the checks, on CPU tensors, against a CPU build of libmhc (no GPU
needed); it is how this script's plumbing is tested on machines without a GPU.
"""
import argparse
import ctypes
import ctypes.util
import json
import math
import os
import statistics
import sys
import time

import torch

# ------------------------------------------------------------------------------------------
# Parameters (mhc_hc_params defaults = DeepSeek-V4 values, MHC_HC_PARAMS_INIT)
# ------------------------------------------------------------------------------------------
N_HC = 4
N_MIX = N_HC * (N_HC + 2)  # 24


class P:
    hc_mult = 4
    sinkhorn_iters = 20
    rms_eps = 1e-6
    pre_eps = 1e-6
    sinkhorn_eps = 1e-6
    post_mult = 2.0
    norm_eps = 1e-6


OPS = ("hc_post", "hc_pre", "hc_post_pre", "hc_head")
DEFAULT_TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 512, 2048, 8192)
QUICK_TOKENS = (1, 8, 32, 128, 2048)


# ------------------------------------------------------------------------------------------
# PyTorch reference, written from reference/mhc-spec.md. `cd` is the compute dtype
# (float32 for the timed reference, float64 for the accuracy oracle).
# ------------------------------------------------------------------------------------------
def sinkhorn_ref(c, iters, eps):
    # row softmax, +eps, column normalisation, then iters-1 (row, column) normalisations;
    # every divisor is sum + eps (spec §2.1)
    c = torch.softmax(c, dim=-1) + eps
    c = c / (c.sum(dim=-2, keepdim=True) + eps)
    for _ in range(iters - 1):
        c = c / (c.sum(dim=-1, keepdim=True) + eps)
        c = c / (c.sum(dim=-2, keepdim=True) + eps)
    return c


def hc_pre_ref(residual, fn, scale, base, norm_weight=None, cd=torch.float32):
    T, n, H = residual.shape
    R = residual.to(cd)
    X = R.reshape(T, n * H)                       # k = j*H + h
    raw = X @ fn.to(cd).t()                       # [T, 24]
    ss = (X * X).sum(dim=1)                       # [T]
    inv_rms = 1.0 / torch.sqrt(ss / (n * H) + P.rms_eps)
    mix = raw * inv_rms[:, None]
    sc, b = scale.to(cd), base.to(cd)
    pre = torch.sigmoid(mix[:, :n] * sc[0] + b[:n]) + P.pre_eps
    post = torch.sigmoid(mix[:, n:2 * n] * sc[1] + b[n:2 * n]) * P.post_mult
    comb = (mix[:, 2 * n:] * sc[2] + b[2 * n:]).reshape(T, n, n)
    comb = sinkhorn_ref(comb, P.sinkhorn_iters, P.sinkhorn_eps)
    li = (pre[:, :, None] * R).sum(dim=1)         # [T, H]
    if norm_weight is not None:                   # spec §2.6
        rs = 1.0 / torch.sqrt((li * li).mean(dim=1) + P.norm_eps)
        li = li.to(torch.bfloat16).to(cd) * rs[:, None] * norm_weight.to(cd)
    return post, comb, li.to(torch.bfloat16)


def hc_post_ref(x, residual, post, comb, cd=torch.float32):
    # out[t, j, h] = post[t, j] * x[t, h] + sum_i comb[t, i, j] * residual[t, i, h]  (spec §3)
    out = post.to(cd)[:, :, None] * x.to(cd)[:, None, :] + torch.matmul(
        comb.to(cd).transpose(1, 2), residual.to(cd))
    return out.to(torch.bfloat16)


def hc_post_pre_ref(x, residual, post, comb, fn, scale, base, norm_weight=None,
                    cd=torch.float32):
    r = hc_post_ref(x, residual, post, comb, cd)
    p2, c2, li = hc_pre_ref(r, fn, scale, base, norm_weight, cd)
    return r, p2, c2, li


def hc_head_ref(residual, fn_head, scale, base, cd=torch.float32):
    T, n, H = residual.shape
    R = residual.to(cd)
    X = R.reshape(T, n * H)
    inv_rms = 1.0 / torch.sqrt((X * X).sum(dim=1) / (n * H) + P.rms_eps)
    mix = (X @ fn_head.to(cd).t()) * inv_rms[:, None]
    pre = torch.sigmoid(mix * scale.to(cd)[0] + base.to(cd)) + P.pre_eps
    return (pre[:, :, None] * R).sum(dim=1).to(torch.bfloat16)


# ------------------------------------------------------------------------------------------
# libmhc through ctypes
# ------------------------------------------------------------------------------------------
kDLCPU, kDLCUDA = 1, 2
kDLFloat, kDLBfloat = 2, 4
MHC_BACKEND_CUDA, MHC_BACKEND_CPU = 1, 2
MHC_CONTEXT_CONFIG_VERSION = 1
MHC_HC_PARAMS_VERSION = 1
MHC_CONTEXT_FLAG_PDL = 1 << 1
MHC_FLAG_BATCH_INVARIANT = 1 << 0
MHC_OP = {"hc_pre": 1, "hc_post_pre": 2, "hc_head": 3, "hc_post": 4}


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class ContextConfig(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("version", ctypes.c_uint32),
                ("backend", ctypes.c_int32), ("device_id", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


class HcParams(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("version", ctypes.c_uint32),
                ("hc_mult", ctypes.c_int32), ("sinkhorn_iters", ctypes.c_int32),
                ("rms_eps", ctypes.c_float), ("pre_eps", ctypes.c_float),
                ("sinkhorn_eps", ctypes.c_float), ("post_mult", ctypes.c_float),
                ("norm_eps", ctypes.c_float), ("flags", ctypes.c_uint32)]


PT = ctypes.POINTER(DLTensor)


class HcWeights(ctypes.Structure):
    _fields_ = [("fn", PT), ("scale", PT), ("base", PT), ("norm_weight", PT)]


class DL:
    """A DLTensor describing a contiguous torch tensor; keeps the tensor and shape alive."""

    def __init__(self, t):
        if not t.is_contiguous():
            raise ValueError("libmhc wants dense row-major tensors")
        if t.dtype == torch.bfloat16:
            code, bits = kDLBfloat, 16
        elif t.dtype == torch.float32:
            code, bits = kDLFloat, 32
        else:
            raise ValueError(f"unsupported dtype {t.dtype}")
        self.tensor = t
        self.shape = (ctypes.c_int64 * t.dim())(*t.shape)
        dev = DLDevice(kDLCUDA if t.is_cuda else kDLCPU, t.device.index or 0)
        self.dl = DLTensor(ctypes.c_void_p(t.data_ptr()), dev, t.dim(),
                           DLDataType(code, bits, 1), self.shape, None, 0)

    @property
    def ref(self):
        return ctypes.byref(self.dl)


def find_library(arg):
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    cands = []
    if arg:
        cands.append(arg)
    if os.environ.get("MHC_LIBRARY"):
        cands.append(os.environ["MHC_LIBRARY"])
    for d in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        if d:
            cands += [os.path.join(d, "libmhc.so"), os.path.join(d, "libmhc.so.0")]
    for b in ("build-bench", "build", "build-cuda"):
        cands.append(os.path.join(root, b, "libmhc.so"))
    for c in cands:
        if os.path.isfile(c):
            return c
    found = ctypes.util.find_library("mhc")
    if found:
        return found
    raise SystemExit("libmhc.so not found: pass --lib PATH or set MHC_LIBRARY "
                     f"(looked at: {', '.join(cands) or 'nothing'})")


class Mhc:
    def __init__(self, path, backend, device_id, flags, params_flags):
        self.path = path
        L = ctypes.CDLL(path)
        self.L = L
        L.mhc_status_string.restype = ctypes.c_char_p
        L.mhc_status_string.argtypes = [ctypes.c_int32]
        L.mhc_last_error_message.restype = ctypes.c_char_p
        L.mhc_last_error_message.argtypes = []
        L.mhc_get_version.restype = ctypes.c_int32
        L.mhc_get_version.argtypes = []
        vp, sz, st = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p
        for name, args in {
            "mhc_context_create": [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ContextConfig)],
            "mhc_context_destroy": [vp],
            "mhc_hc_pre": [vp, ctypes.POINTER(HcParams), ctypes.POINTER(HcWeights), PT, PT, PT,
                           PT, vp, sz, st],
            "mhc_hc_post": [vp, PT, PT, PT, PT, PT, st],
            "mhc_hc_post_pre": [vp, ctypes.POINTER(HcParams), ctypes.POINTER(HcWeights), PT, PT,
                                PT, PT, PT, PT, PT, PT, vp, sz, st],
            "mhc_hc_head": [vp, ctypes.POINTER(HcParams), PT, PT, PT, PT, PT, vp, sz, st],
            "mhc_workspace_size": [vp, ctypes.c_int32, ctypes.POINTER(HcParams), ctypes.c_int64,
                                   ctypes.c_int64, ctypes.POINTER(ctypes.c_size_t)],
        }.items():
            f = getattr(L, name)
            f.argtypes = args
            f.restype = ctypes.c_int32
        self.version = L.mhc_get_version()
        cfg = ContextConfig(ctypes.sizeof(ContextConfig), MHC_CONTEXT_CONFIG_VERSION, backend,
                            device_id, flags)
        self.ctx = ctypes.c_void_p()
        self.check(L.mhc_context_create(ctypes.byref(self.ctx), ctypes.byref(cfg)),
                   "mhc_context_create")
        self.params = HcParams(ctypes.sizeof(HcParams), MHC_HC_PARAMS_VERSION, P.hc_mult,
                               P.sinkhorn_iters, P.rms_eps, P.pre_eps, P.sinkhorn_eps,
                               P.post_mult, P.norm_eps, params_flags)
        self.cuda = backend == MHC_BACKEND_CUDA

    def check(self, status, what):
        if status != 0:
            raise RuntimeError(f"{what}: {self.L.mhc_status_string(status).decode()}: "
                               f"{self.L.mhc_last_error_message().decode()}")

    def workspace_bytes(self, op, T, H):
        out = ctypes.c_size_t(0)
        self.check(self.L.mhc_workspace_size(self.ctx, MHC_OP[op], ctypes.byref(self.params), T,
                                             H, ctypes.byref(out)), "mhc_workspace_size")
        return out.value

    def stream(self):
        return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream) if self.cuda else None

    def destroy(self):
        if self.ctx:
            self.L.mhc_context_destroy(self.ctx)
            self.ctx = ctypes.c_void_p()


class MhcCall:
    """One prepared libmhc call: descriptors built once, outputs preallocated; __call__ runs
    it on torch's current stream (so it can be captured in a torch CUDA graph)."""

    def __init__(self, mhc, op, inp, T, H, device):
        self.mhc, self.op = mhc, op
        L = mhc.L
        bf, f32 = torch.bfloat16, torch.float32
        self.out = {}
        if op in ("hc_post", "hc_post_pre"):
            self.out["residual_out"] = torch.empty(T, N_HC, H, dtype=bf, device=device)
        if op in ("hc_pre", "hc_post_pre"):
            self.out["post_mix"] = torch.empty(T, N_HC, dtype=f32, device=device)
            self.out["comb_mix"] = torch.empty(T, N_HC, N_HC, dtype=f32, device=device)
            self.out["layer_input"] = torch.empty(T, H, dtype=bf, device=device)
        if op == "hc_head":
            self.out["out"] = torch.empty(T, H, dtype=bf, device=device)
        self.poison()
        ws = mhc.workspace_bytes(op, T, H)
        self.ws = torch.empty(max(ws, 1), dtype=torch.uint8, device=device)
        self.ws_ptr = ctypes.c_void_p(self.ws.data_ptr() if ws else None)
        self.ws_bytes = ws
        d = {k: DL(v) for k, v in inp.items() if v is not None}
        d.update({k: DL(v) for k, v in self.out.items()})
        self.d = d
        p = ctypes.byref(mhc.params)
        ctx = mhc.ctx
        if op in ("hc_pre", "hc_post_pre"):
            self.w = HcWeights(ctypes.pointer(d["fn"].dl), ctypes.pointer(d["scale"].dl),
                               ctypes.pointer(d["base"].dl),
                               ctypes.pointer(d["norm_weight"].dl) if "norm_weight" in d else None)
        if op == "hc_post":
            args = (ctx, d["x"].ref, d["residual"].ref, d["post"].ref, d["comb"].ref,
                    d["residual_out"].ref)
            self.fn = lambda s: L.mhc_hc_post(*args, s)
        elif op == "hc_pre":
            args = (ctx, p, ctypes.byref(self.w), d["residual"].ref, d["post_mix"].ref,
                    d["comb_mix"].ref, d["layer_input"].ref, self.ws_ptr, self.ws_bytes)
            self.fn = lambda s: L.mhc_hc_pre(*args, s)
        elif op == "hc_post_pre":
            args = (ctx, p, ctypes.byref(self.w), d["x"].ref, d["residual"].ref, d["post"].ref,
                    d["comb"].ref, d["residual_out"].ref, d["post_mix"].ref, d["comb_mix"].ref,
                    d["layer_input"].ref, self.ws_ptr, self.ws_bytes)
            self.fn = lambda s: L.mhc_hc_post_pre(*args, s)
        else:
            args = (ctx, p, d["fn_head"].ref, d["hscale"].ref, d["hbase"].ref, d["residual"].ref,
                    d["out"].ref, self.ws_ptr, self.ws_bytes)
            self.fn = lambda s: L.mhc_hc_head(*args, s)

    def poison(self):
        for t in self.out.values():  # all bits set: NaN in bf16 and fp32
            t.view(torch.uint8).fill_(0xFF)

    def __call__(self):
        self.mhc.check(self.fn(self.mhc.stream()), self.op)


# ------------------------------------------------------------------------------------------
# Inputs (model-like values)
# ------------------------------------------------------------------------------------------
def make_inputs(T, H, device, seed, norm):
    g = torch.Generator(device=device).manual_seed(seed)

    def randn(*shape, sd=1.0, mean=0.0):
        return torch.randn(*shape, generator=g, device=device) * sd + mean

    bf = torch.bfloat16
    K = N_HC * H
    return {
        "residual": randn(T, N_HC, H).to(bf),                    # residual streams
        "x": randn(T, H).to(bf),                                 # sub-layer output
        "post": 2.0 * torch.sigmoid(randn(T, N_HC)),             # post = 2*sigmoid
        "comb": sinkhorn_ref(randn(T, N_HC, N_HC), 20, 1e-6),    # doubly stochastic
        "fn": randn(N_MIX, K, sd=1e-3),
        "scale": randn(3, sd=0.1, mean=1.0),
        "base": randn(N_MIX, sd=0.5),
        "fn_head": randn(N_HC, K, sd=1e-3),
        "hscale": randn(1, sd=0.1, mean=1.0),
        "hbase": randn(N_HC, sd=0.5),
        "norm_weight": randn(H, sd=0.1, mean=1.0).to(bf) if norm else None,
    }


def op_inputs(op, inp):
    keys = {"hc_post": ("x", "residual", "post", "comb"),
            "hc_pre": ("residual", "fn", "scale", "base", "norm_weight"),
            "hc_post_pre": ("x", "residual", "post", "comb", "fn", "scale", "base",
                            "norm_weight"),
            "hc_head": ("residual", "fn_head", "hscale", "hbase")}[op]
    return {k: inp[k] for k in keys}


def ref_fn(op):
    return {"hc_post": hc_post_ref, "hc_pre": hc_pre_ref, "hc_post_pre": hc_post_pre_ref,
            "hc_head": hc_head_ref}[op]


def ref_args(op, i):
    if op == "hc_post":
        return (i["x"], i["residual"], i["post"], i["comb"])
    if op == "hc_pre":
        return (i["residual"], i["fn"], i["scale"], i["base"], i["norm_weight"])
    if op == "hc_post_pre":
        return (i["x"], i["residual"], i["post"], i["comb"], i["fn"], i["scale"], i["base"],
                i["norm_weight"])
    return (i["residual"], i["fn_head"], i["hscale"], i["hbase"])


def as_dict(op, outs):
    if op == "hc_post":
        return {"residual_out": outs}
    if op == "hc_pre":
        return dict(zip(("post_mix", "comb_mix", "layer_input"), outs))
    if op == "hc_post_pre":
        return dict(zip(("residual_out", "post_mix", "comb_mix", "layer_input"), outs))
    return {"out": outs}


# ------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------
def bf16_ordered(t):
    i = t.contiguous().view(torch.int16).to(torch.int32)
    return torch.where(i < 0, -(i & 0x7FFF), i)


def cmp_bf16(got, ref, exact=None, budget=None, ulp2_frac=0.0):
    """Compares bf16 `got` with bf16 `ref` (a reference rounded to bf16, same shape).

    Reports max_ulp, frac_gt1ulp (fraction of elements more than 1 ulp away) and max_abs.
    With `budget` (float64, the float32 evaluation budget of each element: see
    exact_bf16_outputs), an element more than 1 ulp away is still accepted when
      vs the float64 reference (`exact` = its unrounded value):
          |got - exact| <= budget + ulp(got)/2
      vs the float32 reference (`exact` None; two float32 evaluations, each within one
      budget of the exact value):
          |got - ref| <= 2*budget + (ulp(got) + ulp(ref))/2
    (tests/common/compare.c, mhct_cmp_bf16_f64 / _bf16_bf16). n_budget counts those
    elements; budget_ratio is the largest |got - ref| / allowed over the elements more than
    1 ulp away (<= 1: the budget accepts all of them; 0: there are none).
    The elements accepted by neither rule are n_bad; "pass" when there are none, or when
    all of them are within 2 ulp and they are at most ulp2_frac of the elements."""
    d = (bf16_ordered(got) - bf16_ordered(ref)).abs()
    n = d.numel()
    if n == 0:
        return {"max_ulp": 0, "frac_gt1ulp": 0.0, "max_abs": 0.0, "n_budget": 0,
                "budget_ratio": 0.0, "n_bad": 0, "pass": True}
    g, r = got.double(), ref.double()
    beyond = d > 1
    bad = beyond
    res = {"max_ulp": int(d.max().item()),
           "frac_gt1ulp": float(beyond.sum().item()) / n,
           "max_abs": float((g - r).abs().max().item())}
    if budget is not None:
        if exact is not None:
            err = (g - exact).abs()
            allowed = budget + 0.5 * bf16_ulp(g)
        else:
            err = (g - r).abs()
            allowed = 2.0 * budget + 0.5 * (bf16_ulp(g) + bf16_ulp(r))
        ok_b = err <= allowed  # False where got is NaN
        by_budget = beyond & ok_b
        bad = beyond & ~ok_b
        ratio = torch.where(beyond, err / allowed, torch.zeros_like(err))
        res["n_budget"] = int(by_budget.sum().item())
        res["budget_ratio"] = float(ratio.max().item()) if bool(torch.isfinite(ratio).all()) \
            else math.inf
    n_bad = int(bad.sum().item())
    max_bad = int(d[bad].max().item()) if n_bad else 0
    res["n_bad"] = n_bad
    res["pass"] = n_bad == 0 or (max_bad <= 2 and n_bad / n <= ulp2_frac)
    return res


def bf16_ulp(v):
    """The bf16 ulp of each element of a float64 tensor: 2^(e-7) for 2^e <= |v| < 2^(e+1),
    e >= -126; 2^-133 for 0 (as mhct_bf16_ulp in tests/common/test_util.c)."""
    a = v.abs()
    _, e = torch.frexp(a)
    u = torch.exp2((e.to(torch.float64) - 8.0).clamp_min(-133.0))
    return torch.where((a > 0) & torch.isfinite(a), u, torch.full_like(a, 2.0 ** -133))


# Error budgets of the bf16 outputs (the principle of tests/common/reference64.h, which the
# GPU accuracy test uses): a float32 sum of n products, in any order, with or without FMA,
# is within about 2 n u sum|terms| of the exact sum (u = 2^-24). Where the terms nearly
# cancel, one bf16 ulp of the result is finer than float32 resolves, so the 1-ulp rule
# alone would fail correct implementations.
U32 = 2.0 ** -24
K_POST = 10.0       # hc_post: 10 u (|post_j x| + sum_i |comb[i][j] r_i|) (reference64.c)
K_SUM = 2.0 * N_HC  # hc_pre / hc_head: 2 n u sum_j |pre_j r_j|, n = 4 streams


def _token_chunks(T, H):
    step = max(1, (1 << 22) // max(N_HC * H, 1))  # bounds the float64 temporaries
    return [(t0, min(T, t0 + step)) for t0 in range(0, T, step)]


def post_exact(x, residual, post, comb):
    """hc_post in float64: (value [T,4,H], budget [T,4,H])."""
    T, n, H = residual.shape
    vals, buds = [], []
    for t0, t1 in _token_chunks(T, H):
        X = x[t0:t1].double()
        R = residual[t0:t1].double()
        p = post[t0:t1].double()
        c = comb[t0:t1].double()
        xt = p[:, :, None] * X[:, None, :]                     # [t, j, H]
        v, mag = xt.clone(), xt.abs()
        for i in range(n):
            term = c[:, i, :, None] * R[:, i:i + 1, :]         # comb[i][j] * r_i
            v += term
            mag += term.abs()
        vals.append(v)
        buds.append(K_POST * U32 * mag)
    return torch.cat(vals), torch.cat(buds)


def weighted_sum_exact(residual, fn4, scale0, base4, norm_weight, rtol, atol):
    """sum_j pre_j r_j in float64 with exact gates pre = sigmoid(mix*scale0 + base) +
    pre_eps (hc_pre's first 4 mixes, or hc_head's), and its budget: each gate may be off by
    the mixes' tolerance atol + rtol*|pre_j| (times |r_j|), plus K_SUM u sum_j |pre_j r_j|.
    With norm_weight (spec §2.6, bf16(bf16(ol) * rs * w)) the budget is carried through the
    RMSNorm as reference64.c does: the inner rounding bf16(ol) may move by as much as ol's
    budget moves it, rs by the budget of the sum of squares (plus float32 rounding)."""
    T, n, H = residual.shape
    fn4 = fn4.double()
    sc0 = float(scale0)
    b4 = base4.double()
    vals, buds = [], []
    for t0, t1 in _token_chunks(T, H):
        R = residual[t0:t1].double()
        X = R.reshape(t1 - t0, n * H)
        inv_rms = 1.0 / torch.sqrt((X * X).sum(dim=1) / (n * H) + P.rms_eps)
        mix = (X @ fn4.t()) * inv_rms[:, None]
        pre = torch.sigmoid(mix * sc0 + b4) + P.pre_eps        # [t, 4]
        terms = pre[:, :, None] * R
        ol = terms.sum(dim=1)
        gate_err = atol + rtol * pre.abs()
        ol_err = (gate_err[:, :, None] * R.abs()).sum(dim=1) + \
            K_SUM * U32 * terms.abs().sum(dim=1)
        if norm_weight is None:
            vals.append(ol)
            buds.append(ol_err)
            continue
        w = norm_weight.double()[None, :]
        sumsq = (ol * ol).sum(dim=1)
        d_sumsq = (2.0 * ol.abs() * ol_err + ol_err * ol_err).sum(dim=1) + H * U32 * sumsq
        mean = sumsq / H + P.norm_eps
        rs = (1.0 / torch.sqrt(mean))[:, None]
        rs_rel = (0.5 * (d_sumsq / H) / mean + 4.0 * U32)[:, None]

        def q(v):
            return v.to(torch.bfloat16).double()

        qol = q(ol)
        val = qol * rs * w
        dq = torch.maximum((q(ol + ol_err) - qol).abs(), (q(ol - ol_err) - qol).abs())
        dqw = dq * rs * w.abs()
        vals.append(val)
        buds.append(dqw + (val.abs() + dqw) * rs_rel + 3.0 * U32 * val.abs())
    return torch.cat(vals), torch.cat(buds)


def exact_bf16_outputs(op, inp, got, args):
    """{bf16 output name: (float64 value, float32 evaluation budget)} for the checks. The
    boundary's layer_input is computed from libmhc's own residual_out (as its references)."""
    out = {}
    if op in ("hc_post", "hc_post_pre"):
        out["residual_out"] = post_exact(inp["x"], inp["residual"], inp["post"], inp["comb"])
    if op in ("hc_pre", "hc_post_pre"):
        r = got["residual_out"] if op == "hc_post_pre" else inp["residual"]
        out["layer_input"] = weighted_sum_exact(r, inp["fn"][:N_HC], inp["scale"][0],
                                                inp["base"][:N_HC], inp["norm_weight"],
                                                args.rtol, args.atol)
    if op == "hc_head":
        out["out"] = weighted_sum_exact(inp["residual"], inp["fn_head"], inp["hscale"][0],
                                        inp["hbase"], None, args.rtol, args.atol)
    return out


def cmp_f32(got, ref, rtol, atol):
    g, r = got.double(), ref.double()
    d = (g - r).abs()
    tol = atol + rtol * r.abs()
    return {"max_abs": float(d.max().item()) if d.numel() else 0.0,
            "max_rel": float((d / r.abs().clamp_min(1e-30)).max().item()) if d.numel() else 0.0,
            "tol_ratio": float((d / tol).max().item()) if d.numel() else 0.0}


def nonfinite(t):
    return int((~torch.isfinite(t.float())).sum().item())


def check_op(mhc, op, inp, T, H, device, args):
    """Runs libmhc once (outputs poisoned first) and compares with the references.
    Returns (ok, details)."""
    call = MhcCall(mhc, op, op_inputs(op, inp), T, H, device)
    call()
    if device.type == "cuda":
        torch.cuda.synchronize()
    got = {k: v.clone() for k, v in call.out.items()}
    det = {"nonfinite": sum(nonfinite(v) for v in got.values())}
    ok = det["nonfinite"] == 0
    refs = {}
    for cd, tag in ((torch.float32, "f32"), (torch.float64, "f64")):
        # For the boundary, the hc_pre part is referenced on libmhc's own residual_out.
        if op == "hc_post_pre":
            r = hc_post_ref(inp["x"], inp["residual"], inp["post"], inp["comb"], cd)
            p2, c2, li = hc_pre_ref(got["residual_out"], inp["fn"], inp["scale"], inp["base"],
                                    inp["norm_weight"], cd)
            refs[tag] = {"residual_out": r, "post_mix": p2, "comb_mix": c2, "layer_input": li}
        else:
            refs[tag] = as_dict(op, ref_fn(op)(*ref_args(op, inp), cd=cd))
    exact = exact_bf16_outputs(op, inp, got, args)
    gate = args.ref
    for name, g in got.items():
        for tag in ("f32", "f64"):
            ref = refs[tag][name]
            if g.dtype == torch.bfloat16:
                val64, budget = exact[name]
                c = cmp_bf16(g, ref, val64 if tag == "f64" else None, budget, args.ulp2_frac)
                passed = c["pass"]
            else:
                c = cmp_f32(g, ref, args.rtol, args.atol)
                passed = c["tol_ratio"] <= 1.0
            c["pass"] = bool(passed)
            det[f"{name}_vs_{tag}"] = c
            if tag == gate:
                ok = ok and passed
    # The fused boundary must equal libmhc's own hc_post then hc_pre, bit for bit.
    if op == "hc_post_pre":
        post_c = MhcCall(mhc, "hc_post", op_inputs("hc_post", inp), T, H, device)
        post_c()
        pre_inp = op_inputs("hc_pre", inp)
        pre_inp["residual"] = post_c.out["residual_out"]
        pre_c = MhcCall(mhc, "hc_pre", pre_inp, T, H, device)
        pre_c()
        if device.type == "cuda":
            torch.cuda.synchronize()
        unf = {"residual_out": post_c.out["residual_out"], **pre_c.out}
        same = all(torch.equal(got[k].view(torch.uint8), unf[k].view(torch.uint8)) for k in got)
        det["fused_equals_unfused"] = bool(same)
        ok = ok and same
    return ok, det


# ------------------------------------------------------------------------------------------
# Timing under CUDA graphs
# ------------------------------------------------------------------------------------------
def replay_times_us(g, reps, warmup):
    for _ in range(warmup):
        g.replay()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
    ev[0].record()
    for i in range(reps):
        g.replay()
        ev[i + 1].record()
    ev[-1].synchronize()
    return sorted(ev[i].elapsed_time(ev[i + 1]) * 1e3 for i in range(reps))


def capture(fn, calls):
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(calls):
            fn()
    return g


def time_fn(fn, args):
    """Median microseconds per call of fn() under CUDA-graph replay (and calls per graph,
    replays, 10th/90th percentiles)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm-up (and torch.compile's compilation) outside capture
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    calls = args.calls
    if not calls:
        g1 = capture(fn, 1)
        t1 = statistics.median(replay_times_us(g1, 5, 2))
        del g1
        calls = int(min(args.max_calls, max(2, args.target_replay_us // max(t1, 1.0))))
    else:
        t1 = None
    reps = args.reps
    if t1 is not None and reps > 20:  # keep one measurement under --row-budget-s
        est_s = (reps + args.warmup) * calls * t1 * 1e-6
        if est_s > args.row_budget_s:
            reps = max(20, int(reps * args.row_budget_s / est_s))
    g = capture(fn, calls)
    t = replay_times_us(g, reps, args.warmup)
    del g
    return {"us": statistics.median(t) / calls, "calls": calls, "reps": reps,
            "p10_us": t[int(0.1 * (reps - 1))] / calls, "p90_us": t[int(0.9 * (reps - 1))] / calls}


# ------------------------------------------------------------------------------------------
# Main
# ------------------------------------------------------------------------------------------
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lib", help="path of libmhc.so (else $MHC_LIBRARY, LD_LIBRARY_PATH, "
                                  "build-bench/)")
    ap.add_argument("--ops", default="all", help="comma list of " + ",".join(OPS))
    ap.add_argument("--tokens", help="comma list of T (default 1,2,...,8192)")
    ap.add_argument("--hidden", default="4096,7168", help="comma list of H")
    ap.add_argument("--reps", type=int, default=None, help="timed replays (default 100)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed replays first")
    ap.add_argument("--calls", type=int, default=0, help="calls per graph (0: automatic)")
    ap.add_argument("--max-calls", type=int, default=50)
    ap.add_argument("--target-replay-us", type=float, default=2000.0)
    ap.add_argument("--row-budget-s", type=float, default=2.0,
                    help="cut reps (not below 20) when one timing would take longer")
    ap.add_argument("--quick", action="store_true",
                    help=f"T in {QUICK_TOKENS}, 30 reps")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--no-eager", action="store_true", help="skip eager torch timing")
    ap.add_argument("--no-mhc", action="store_true", help="time torch only")
    ap.add_argument("--compile-dynamic", choices=("auto", "true", "false"), default="auto",
                    help="torch.compile(dynamic=...): auto = torch's default (recompile once "
                         "with dynamic shapes after the first new shape)")
    ap.add_argument("--compile-mode", default=None,
                    help="torch.compile mode (default: inductor default; not reduce-overhead, "
                         "which brings its own CUDA graphs)")
    ap.add_argument("--norm", action="store_true", help="fused RMSNorm (norm_weight)")
    ap.add_argument("--pdl", action="store_true", help="MHC_CONTEXT_FLAG_PDL")
    ap.add_argument("--batch-invariant", action="store_true")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--ulp2-frac", type=float, default=1e-3,
                    help="largest fraction of bf16 elements allowed at 2 ulp beyond "
                         "the float32 error budget")
    ap.add_argument("--ref", choices=("f32", "f64"), default="f32",
                    help="which reference gates the check (both are reported)")
    ap.add_argument("--backend", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: checks only, CPU tensors, CPU build of libmhc")
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--json", help="write results here")
    a = ap.parse_args(argv)
    a.ops = list(OPS) if a.ops == "all" else [s for s in a.ops.split(",") if s]
    for o in a.ops:
        if o not in OPS:
            ap.error(f"unknown op {o!r}")
    if a.tokens:
        a.tokens = [int(s) for s in a.tokens.split(",") if s]
    elif a.backend == "cpu":
        a.tokens = [1, 3, 8]
    else:
        a.tokens = list(QUICK_TOKENS if a.quick else DEFAULT_TOKENS)
    a.hidden = [int(s) for s in a.hidden.split(",") if s]
    if a.reps is None:
        a.reps = 30 if a.quick else 100
    if any(t < 1 for t in a.tokens) or any(h < 1 for h in a.hidden) or a.reps < 1:
        ap.error("T, H and --reps must be >= 1")
    if a.backend == "cpu" and a.no_mhc:
        ap.error("--backend cpu only checks libmhc; --no-mhc leaves nothing to do")
    return a


def fmt(v, w=9, p=1):
    return f"{v:{w}.{p}f}" if v is not None and math.isfinite(v) else f"{'-':>{w}}"


def main(argv=None):
    args = parse_args(argv)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 GEMMs stay fp32 (no TF32)
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    cuda = args.backend == "cuda"
    if cuda:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device visible to torch (use --backend cpu for checks)")
        torch.cuda.set_device(args.device)
        device = torch.device("cuda", args.device)
    else:
        device = torch.device("cpu")

    mhc = None
    if not args.no_mhc:
        path = find_library(args.lib)
        mhc = Mhc(path, MHC_BACKEND_CUDA if cuda else MHC_BACKEND_CPU,
                  args.device if cuda else 0, MHC_CONTEXT_FLAG_PDL if args.pdl else 0,
                  MHC_FLAG_BATCH_INVARIANT if args.batch_invariant else 0)
        print(f"libmhc: {path} (version {mhc.version})")

    compiled = {}
    if cuda and not args.no_compile:
        import torch._dynamo as dynamo
        for knob in ("cache_size_limit", "recompile_limit"):
            if hasattr(dynamo.config, knob):
                setattr(dynamo.config, knob, 64)
        dyn = {"auto": None, "true": True, "false": False}[args.compile_dynamic]
        kw = {"dynamic": dyn}
        if args.compile_mode:
            kw["mode"] = args.compile_mode
        compiled = {op: torch.compile(ref_fn(op), **kw) for op in args.ops}

    info = {"torch": torch.__version__, "backend": args.backend}
    if cuda:
        info["device"] = torch.cuda.get_device_name(device)
        print(f"device: {info['device']}, torch {torch.__version__}")
    hdr = (f"{'op':<12} {'T':>5} {'H':>5} {'eager_us':>9} {'compile_us':>10} {'mhc_us':>9} "
           f"{'x_eager':>8} {'x_comp':>7}  check")
    print(hdr)
    rows, failures = [], 0
    t0 = time.time()
    for H in args.hidden:
        for T in args.tokens:
            inp = make_inputs(T, H, device, args.seed + 7919 * T + H, args.norm)
            for op in args.ops:
                row = run_one(op, T, H, inp, mhc, compiled, device, args)
                rows.append(row)
                failures += row.get("check_pass") is False
                chk = ("-" if "check_pass" not in row else
                       "ok" if row["check_pass"] else "FAIL " + summarize(row["check"], args.ref))
                print(f"{op:<12} {T:>5} {H:>5} {fmt(row.get('eager_us'))} "
                      f"{fmt(row.get('compile_us'), 10)} {fmt(row.get('mhc_us'), 9, 2)} "
                      f"{fmt(row.get('speedup_eager'), 8)} {fmt(row.get('speedup_compile'), 7)}"
                      f"  {chk}", flush=True)
                if args.json:  # after every row, so a killed run leaves its rows
                    write_json(args, info, mhc, rows, complete=False)
            del inp
            if cuda:
                torch.cuda.empty_cache()
    print(f"{len(rows)} rows, {failures} failed checks, {time.time() - t0:.0f} s")
    if args.json:
        write_json(args, info, mhc, rows, complete=True)
        print(f"wrote {args.json}")
    if mhc is not None:
        mhc.destroy()
    return 1 if failures else 0


def write_json(args, info, mhc, rows, complete):
    with open(args.json, "w") as f:
        json.dump({"schema": "mhc_compare_torch/1", "complete": complete, "info": info,
                   "library": mhc.path if mhc else None,
                   "library_version": mhc.version if mhc else None,
                   "config": {k: v for k, v in vars(args).items()
                              if isinstance(v, (int, float, str, list, bool, type(None)))},
                   "rows": rows}, f, indent=1)


def run_one(op, T, H, inp, mhc, compiled, device, args):
    row = {"op": op, "T": T, "H": H}
    oi = op_inputs(op, inp)
    fn_args = ref_args(op, oi)
    if mhc is not None:  # correctness first, once
        try:
            ok, det = check_op(mhc, op, inp, T, H, device, args)
        except RuntimeError as e:
            ok, det = False, {"error": str(e)}
        row["check"] = det
        row["check_pass"] = ok
    if device.type != "cuda":
        return row
    ref = ref_fn(op)
    if not args.no_eager:
        row["eager"] = time_fn(lambda: ref(*fn_args), args)
        row["eager_us"] = row["eager"]["us"]
    if op in compiled:
        cf = compiled[op]
        t_c = time.time()
        row["compile"] = time_fn(lambda: cf(*fn_args), args)
        row["compile_us"] = row["compile"]["us"]
        row["compile_wall_s"] = round(time.time() - t_c, 2)  # includes any (re)compilation
    if mhc is not None and "error" not in row.get("check", {}):
        try:
            call = MhcCall(mhc, op, oi, T, H, device)
            row["mhc"] = time_fn(call, args)
            row["mhc_us"] = row["mhc"]["us"]
        except RuntimeError as e:
            row["mhc_error"] = str(e)
    m = row.get("mhc_us")
    if m:
        if row.get("eager_us"):
            row["speedup_eager"] = row["eager_us"] / m
        if row.get("compile_us"):
            row["speedup_compile"] = row["compile_us"] / m
    return row


def summarize(det, gate):
    if "error" in det:
        return det["error"]
    bad = []
    if det.get("nonfinite"):
        bad.append(f"nonfinite={det['nonfinite']}")
    for k, v in det.items():
        if isinstance(v, dict) and k.endswith("_vs_" + gate) and not v.get("pass", True):
            if "max_ulp" in v:
                bad.append(f"{k}: max {v['max_ulp']} ulp, {v['frac_gt1ulp']:.2e} > 1 ulp, "
                           f"{v.get('n_bad', '?')} beyond the budget "
                           f"(x{v.get('budget_ratio', math.nan):.3g})")
            else:
                bad.append(f"{k}: max_abs {v['max_abs']:.3g}, tol x{v['tol_ratio']:.3g}")
    if det.get("fused_equals_unfused") is False:
        bad.append("fused != hc_post+hc_pre")
    return "; ".join(bad)


if __name__ == "__main__":
    sys.exit(main())
