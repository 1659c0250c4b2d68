#!/usr/bin/env python3
"""The layer loop of examples/LAYER_LOOP.md on the CPU backend through ctypes alone.

No binding, no compiler: the standard library's ctypes loads libmhc.so, the DLPack and mhc
structs are declared below, numpy holds the data. Prints the same checksum as
examples/c/layer_loop.c.

    ctypes_layer_loop.py [--tokens T] [--hidden H] [--layers L] [--seed S]

libmhc is found through $MHC_LIBRARY (a path), then ctypes.util.find_library("mhc"), then the
dynamic loader's search path (LD_LIBRARY_PATH) as libmhc.so.0 / libmhc.so.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import sys
import time

import numpy as np

# ---- the C declarations (include/mhc/mhc.h, dlpack/dlpack.h) -----------------------------
c_int32, c_uint32, c_int64, c_uint64 = ctypes.c_int32, ctypes.c_uint32, ctypes.c_int64, ctypes.c_uint64


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", c_int32), ("device_id", c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", DLDevice), ("ndim", c_int32),
                ("dtype", DLDataType), ("shape", ctypes.POINTER(c_int64)),
                ("strides", ctypes.POINTER(c_int64)), ("byte_offset", c_uint64)]


kDLCPU, kDLFloat, kDLBfloat = 1, 2, 4

MHC_SUCCESS = 0
MHC_BACKEND_CPU = 2
MHC_CONTEXT_CONFIG_VERSION = 1
MHC_HC_PARAMS_VERSION = 1
MHC_OP_HC_PRE, MHC_OP_HC_POST_PRE, MHC_OP_HC_HEAD = 1, 2, 3
MHC_VERSION_MAJOR = 0  # the header this script mirrors


class mhc_context_config(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("version", c_uint32), ("backend", c_int32),
                ("device_id", c_int32), ("flags", c_uint32)]


class mhc_hc_params(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t), ("version", c_uint32), ("hc_mult", c_int32),
                ("sinkhorn_iters", c_int32), ("rms_eps", ctypes.c_float),
                ("pre_eps", ctypes.c_float), ("sinkhorn_eps", ctypes.c_float),
                ("post_mult", ctypes.c_float), ("norm_eps", ctypes.c_float),
                ("flags", c_uint32)]


PT = ctypes.POINTER(DLTensor)


class mhc_hc_weights(ctypes.Structure):
    _fields_ = [("fn", PT), ("scale", PT), ("base", PT), ("norm_weight", PT)]


def load_library():
    candidates = []
    if os.environ.get("MHC_LIBRARY"):
        candidates.append(os.environ["MHC_LIBRARY"])
    found = ctypes.util.find_library("mhc")
    if found:
        candidates.append(found)
    candidates += ["libmhc.so.0", "libmhc.so"]
    errors = []
    for name in candidates:
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            errors.append(f"{name}: {e}")
    sys.exit("cannot load libmhc (set MHC_LIBRARY or LD_LIBRARY_PATH):\n  " + "\n  ".join(errors))


lib = load_library()
status_t = c_int32
ctx_p = ctypes.c_void_p
lib.mhc_status_string.argtypes, lib.mhc_status_string.restype = [status_t], ctypes.c_char_p
lib.mhc_last_error_message.argtypes, lib.mhc_last_error_message.restype = [], ctypes.c_char_p
lib.mhc_get_version.argtypes, lib.mhc_get_version.restype = [], c_int32
lib.mhc_context_create.argtypes = [ctypes.POINTER(ctx_p), ctypes.POINTER(mhc_context_config)]
lib.mhc_context_destroy.argtypes = [ctx_p]
lib.mhc_workspace_size.argtypes = [ctx_p, c_int32, ctypes.POINTER(mhc_hc_params), c_int64,
                                   c_int64, ctypes.POINTER(ctypes.c_size_t)]
lib.mhc_hc_pre.argtypes = [ctx_p, ctypes.POINTER(mhc_hc_params), ctypes.POINTER(mhc_hc_weights),
                           PT, PT, PT, PT, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
lib.mhc_hc_post.argtypes = [ctx_p, PT, PT, PT, PT, PT, ctypes.c_void_p]
lib.mhc_hc_post_pre.argtypes = [ctx_p, ctypes.POINTER(mhc_hc_params),
                                ctypes.POINTER(mhc_hc_weights), PT, PT, PT, PT, PT, PT, PT, PT,
                                ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
lib.mhc_hc_head.argtypes = [ctx_p, ctypes.POINTER(mhc_hc_params), PT, PT, PT, PT, PT,
                            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
for _f in ("mhc_context_create", "mhc_context_destroy", "mhc_workspace_size", "mhc_hc_pre",
           "mhc_hc_post", "mhc_hc_post_pre", "mhc_hc_head"):
    getattr(lib, _f).restype = status_t


def check(status, what):
    if status != MHC_SUCCESS:
        sys.exit(f"{what} failed: {lib.mhc_status_string(status).decode()}: "
                 f"{lib.mhc_last_error_message().decode(errors='replace')}")


class Tensor:
    """A numpy array and the DLTensor describing it (kept together so neither dies early)."""

    def __init__(self, array: np.ndarray):
        assert array.flags.c_contiguous
        self.array = array
        self.shape = (c_int64 * max(array.ndim, 1))(*array.shape)
        bf16 = array.dtype == np.uint16  # bf16 bits
        self.dl = DLTensor(array.ctypes.data_as(ctypes.c_void_p), DLDevice(kDLCPU, 0), array.ndim,
                           DLDataType(kDLBfloat if bf16 else kDLFloat, 16 if bf16 else 32, 1),
                           self.shape, None, 0)
        self.ptr = ctypes.pointer(self.dl)  # const DLTensor *


# ---- the program of LAYER_LOOP.md ---------------------------------------------------------------
M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & M64

    def uniform(self, n):
        with np.errstate(over="ignore"):
            z = np.uint64(self.state) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GAMMA)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        self.state = (self.state + n * GAMMA) & M64
        k = (z >> np.uint64(40)).astype(np.float32)
        return k * np.float32(1.0 / 16777216.0) * np.float32(2.0) - np.float32(1.0)

    def gen(self, n, mul, add):
        return self.uniform(n) * np.float32(mul) + np.float32(add)


def bf16(v):
    u = np.ascontiguousarray(v, dtype=np.float32).view(np.uint32)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    r = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    r = r.astype(np.uint16)
    r[nan] = 0x7FFF
    return r


def f32(b):
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def parse_seed(s: str) -> int:
    """Like C's strtoull(s, NULL, 0): 0x.. hexadecimal, 0.. octal, else decimal."""
    t = s.strip().lower()
    if t.startswith("0x"):
        return int(t, 16) & M64
    if len(t) > 1 and t.startswith("0"):
        return int(t, 8) & M64
    return int(t, 10) & M64


def fnv1a(h, data):
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


def main(argv=None):
    ap = argparse.ArgumentParser(description="mhc layer loop through ctypes (CPU backend)")
    ap.add_argument("--tokens", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=parse_seed, default=42)
    ap.add_argument("--cuda", action="store_true", help="not supported: this script is CPU only")
    a = ap.parse_args(argv)
    if a.cuda:
        print("ctypes_layer_loop.py runs the CPU backend only; use layer_loop.py --cuda",
              file=sys.stderr)
        return 2
    T, H, L = a.tokens, a.hidden, a.layers
    if T < 0 or H < 1 or L < 0:
        print("need T >= 0, H >= 1, L >= 0", file=sys.stderr)
        return 2
    if lib.mhc_get_version() // 10000 != MHC_VERSION_MAJOR:
        sys.exit(f"libmhc {lib.mhc_get_version()} does not match major {MHC_VERSION_MAJOR}")
    S, K = 2 * L, 4 * H

    rng = SplitMix64(a.seed)
    emb = bf16(rng.uniform(T * H)).reshape(T, H)
    subs = []
    for _ in range(S):
        fn = Tensor(rng.gen(24 * K, 0.02, 0.0).reshape(24, K))
        scale = Tensor(rng.gen(3, 0.1, 1.0))
        base = Tensor(rng.gen(24, 0.1, 0.0))
        gain = rng.gen(H, 0.5, 1.0)
        w = mhc_hc_weights(fn.ptr, scale.ptr, base.ptr, None)
        subs.append((fn, scale, base, gain, w))
    hfn = Tensor(rng.gen(4 * K, 0.02, 0.0).reshape(4, K))
    hscale = Tensor(rng.gen(1, 0.1, 1.0))
    hbase = Tensor(rng.gen(4, 0.1, 0.0))

    cfg = mhc_context_config(ctypes.sizeof(mhc_context_config), MHC_CONTEXT_CONFIG_VERSION,
                             MHC_BACKEND_CPU, 0, 0)
    ctx = ctx_p()
    check(lib.mhc_context_create(ctypes.byref(ctx), ctypes.byref(cfg)), "mhc_context_create")
    p = mhc_hc_params(ctypes.sizeof(mhc_hc_params), MHC_HC_PARAMS_VERSION, 4, 20, 1e-6, 1e-6,
                      1e-6, 2.0, 1e-6, 0)  # MHC_HC_PARAMS_INIT
    pp = ctypes.byref(p)
    ws_bytes = 0
    for op in (MHC_OP_HC_PRE, MHC_OP_HC_POST_PRE, MHC_OP_HC_HEAD):
        b = ctypes.c_size_t()
        check(lib.mhc_workspace_size(ctx, op, pp, T, H, ctypes.byref(b)), "mhc_workspace_size")
        ws_bytes = max(ws_bytes, b.value)
    ws_buf = np.zeros(ws_bytes + 16, np.uint8)
    ws = (ws_buf.ctypes.data + 15) // 16 * 16 if ws_bytes else None

    res = [Tensor(np.repeat(emb[:, None, :], 4, axis=1)), Tensor(np.zeros((T, 4, H), np.uint16))]
    post = [Tensor(np.zeros((T, 4), np.float32)) for _ in range(2)]
    comb = [Tensor(np.zeros((T, 4, 4), np.float32)) for _ in range(2)]
    li = [Tensor(np.zeros((T, H), np.uint16)) for _ in range(2)]
    y = Tensor(np.zeros((T, H), np.uint16))
    out = Tensor(np.zeros((T, H), np.uint16))
    cur = 0

    t0 = t_layer = time.perf_counter()
    if S > 0:
        check(lib.mhc_hc_pre(ctx, pp, ctypes.byref(subs[0][4]), res[0].ptr, post[0].ptr,
                             comb[0].ptr, li[0].ptr, ws, ws_bytes, None), "mhc_hc_pre")
    for s in range(S):
        y.array[...] = bf16(f32(li[cur].array) * subs[s][3][None, :])  # stand-in sub-layer
        nxt = 1 - cur
        if s < S - 1:
            check(lib.mhc_hc_post_pre(ctx, pp, ctypes.byref(subs[s + 1][4]), y.ptr, res[cur].ptr,
                                      post[cur].ptr, comb[cur].ptr, res[nxt].ptr, post[nxt].ptr,
                                      comb[nxt].ptr, li[nxt].ptr, ws, ws_bytes, None),
                  "mhc_hc_post_pre")
        else:
            check(lib.mhc_hc_post(ctx, y.ptr, res[cur].ptr, post[cur].ptr, comb[cur].ptr,
                                  res[nxt].ptr, None), "mhc_hc_post")
        cur = nxt
        if s % 2 == 1:
            now = time.perf_counter()
            print(f"layer {s // 2}: {(now - t_layer) * 1e6:.1f} us")
            t_layer = now
    check(lib.mhc_hc_head(ctx, pp, hfn.ptr, hscale.ptr, hbase.ptr, res[cur].ptr, out.ptr, ws,
                          ws_bytes, None), "mhc_hc_head")
    print(f"stage: {L} layers, T={T}, H={H}, backend=cpu, total "
          f"{(time.perf_counter() - t0) * 1e6:.1f} us")
    h = fnv1a(0xCBF29CE484222325, out.array.astype("<u2").tobytes())
    h = fnv1a(h, res[cur].array.astype("<u2").tobytes())
    check(lib.mhc_context_destroy(ctx), "mhc_context_destroy")
    print(f"checksum: 0x{h:016x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
