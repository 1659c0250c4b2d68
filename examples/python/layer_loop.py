#!/usr/bin/env python3
"""A DeepSeek-V4-shaped layer loop on one pipeline stage, driven through the `mhc` package.

The program is defined in examples/LAYER_LOOP.md; every binding's example runs the same loop
and prints the same checksum as examples/c/layer_loop.c.

    layer_loop.py [--tokens T] [--hidden H] [--layers L] [--seed S] [--cuda]

The CPU backend works on numpy arrays (bf16 held as uint16 bit patterns); --cuda uses torch
CUDA tensors and the CUDA backend. All arithmetic of the example itself is numpy float32, one
rounding per operation, as the definition requires.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

import mhc

M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


class SplitMix64:
    """splitmix64; u() is float32((next() >> 40)) * 2^-24 * 2 - 1, each step in float32."""

    def __init__(self, seed: int):
        self.state = seed & M64

    def uniform(self, n: int) -> np.ndarray:
        """The next n values of u() as float32, vectorised (same sequence as n calls)."""
        with np.errstate(over="ignore"):
            i = np.arange(1, n + 1, dtype=np.uint64)
            z = np.uint64(self.state) + i * np.uint64(GAMMA)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
        self.state = (self.state + n * GAMMA) & M64
        k = (z >> np.uint64(40)).astype(np.float32)  # < 2^24: exact
        return k * np.float32(1.0 / 16777216.0) * np.float32(2.0) - np.float32(1.0)

    def gen(self, n: int, mul: float, add: float) -> np.ndarray:
        """u() * mul + add, two float32 roundings (never fused)."""
        return self.uniform(n) * np.float32(mul) + np.float32(add)


def bf16(v: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bf16 bits (uint16)."""
    u = np.ascontiguousarray(v, dtype=np.float32).view(np.uint32)
    nan = (u & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    r = ((u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    r = r.astype(np.uint16)
    r[nan] = 0x7FFF
    return r


def f32(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << np.uint32(16)).view(np.float32)


def parse_seed(s: str) -> int:
    """Like C's strtoull(s, NULL, 0): 0x.. hexadecimal, 0.. octal, else decimal."""
    t = s.strip().lower()
    if t.startswith("0x"):
        return int(t, 16) & M64
    if len(t) > 1 and t.startswith("0"):
        return int(t, 8) & M64
    return int(t, 10) & M64


def fnv1a(h: int, data: bytes) -> int:
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


class Host:
    """CPU backend: numpy arrays."""

    def bf16_tensor(self, bits):
        return np.ascontiguousarray(bits, dtype=np.uint16)

    def f32_tensor(self, a):
        return np.ascontiguousarray(a, dtype=np.float32)

    def empty_bf16(self, shape):
        return np.zeros(shape, np.uint16)

    def empty_f32(self, shape):
        return np.zeros(shape, np.float32)

    def download_bf16(self, t):
        return np.asarray(t).view(np.uint16)

    def store_bf16(self, t, bits):
        t[...] = bits

    def sync(self):
        pass


class Cuda:
    """CUDA backend: torch tensors on cuda:0."""

    def __init__(self):
        import torch
        self.torch = torch

    def bf16_tensor(self, bits):
        t = self.torch.from_numpy(np.ascontiguousarray(bits, dtype=np.uint16).view(np.int16))
        return t.view(self.torch.bfloat16).to("cuda")

    def f32_tensor(self, a):
        return self.torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to("cuda")

    def empty_bf16(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.bfloat16, device="cuda")

    def empty_f32(self, shape):
        return self.torch.zeros(shape, dtype=self.torch.float32, device="cuda")

    def download_bf16(self, t):
        return t.cpu().view(self.torch.int16).numpy().view(np.uint16)

    def store_bf16(self, t, bits):
        t.copy_(self.bf16_tensor(bits))

    def sync(self):
        self.torch.cuda.synchronize()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seed", type=parse_seed, default=42)
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args(argv)
    T, H, L = a.tokens, a.hidden, a.layers
    if T < 0 or H < 1 or L < 0:
        print("need T >= 0, H >= 1, L >= 0", file=sys.stderr)
        return 2
    dev = Cuda() if a.cuda else Host()
    S, K = 2 * L, 4 * H

    # 1. embeddings, 2. sub-layer weights, 3. head weights: in this order (LAYER_LOOP.md)
    rng = SplitMix64(a.seed)
    emb = bf16(rng.uniform(T * H)).reshape(T, H)
    subs = []
    for _ in range(S):
        fn = rng.gen(24 * K, 0.02, 0.0).reshape(24, K)
        scale = rng.gen(3, 0.1, 1.0)
        base = rng.gen(24, 0.1, 0.0)
        gain = rng.gen(H, 0.5, 1.0)
        subs.append((dev.f32_tensor(fn), dev.f32_tensor(scale), dev.f32_tensor(base), gain))
    hfn = dev.f32_tensor(rng.gen(4 * K, 0.02, 0.0).reshape(4, K))
    hscale = dev.f32_tensor(rng.gen(1, 0.1, 1.0))
    hbase = dev.f32_tensor(rng.gen(4, 0.1, 0.0))

    with mhc.Context(backend="cuda" if a.cuda else "cpu") as ctx:
        params = mhc.Params()  # MHC_HC_PARAMS_INIT, no norm_weight
        ctx.reserve(T, H, params)

        # state: two buffers of each, swapped at every boundary
        res = [dev.bf16_tensor(np.repeat(emb[:, None, :], 4, axis=1)),
               dev.empty_bf16((T, 4, H))]
        post = [dev.empty_f32((T, 4)), dev.empty_f32((T, 4))]
        comb = [dev.empty_f32((T, 4, 4)), dev.empty_f32((T, 4, 4))]
        li = [dev.empty_bf16((T, H)), dev.empty_bf16((T, H))]
        y = dev.empty_bf16((T, H))
        out = dev.empty_bf16((T, H))
        cur = 0

        t0 = t_layer = time.perf_counter()
        if S > 0:
            fn, scale, base, _ = subs[0]
            ctx.hc_pre(res[0], fn, scale, base, params=params, out=(post[0], comb[0], li[0]))
        for s in range(S):
            # stand-in sub-layer on the host: y = bf16(li * gain_s)
            h_li = dev.download_bf16(li[cur])
            dev.store_bf16(y, bf16(f32(h_li) * subs[s][3][None, :]))
            nxt = 1 - cur
            if s < S - 1:
                fn, scale, base, _ = subs[s + 1]
                ctx.hc_post_pre(y, res[cur], post[cur], comb[cur], fn, scale, base,
                                params=params, out=(res[nxt], post[nxt], comb[nxt], li[nxt]))
            else:
                ctx.hc_post(y, res[cur], post[cur], comb[cur], out=res[nxt])
            cur = nxt
            if s % 2 == 1:
                dev.sync()
                now = time.perf_counter()
                print(f"layer {s // 2}: {(now - t_layer) * 1e6:.1f} us")
                t_layer = now
        ctx.hc_head(res[cur], hfn, hscale, hbase, params=params, out=out)
        dev.sync()
        print(f"stage: {L} layers, T={T}, H={H}, backend={'cuda' if a.cuda else 'cpu'}, "
              f"total {(time.perf_counter() - t0) * 1e6:.1f} us")

        h = fnv1a(0xCBF29CE484222325, dev.download_bf16(out).astype("<u2").tobytes())
        h = fnv1a(h, dev.download_bf16(res[cur]).astype("<u2").tobytes())
    print(f"checksum: 0x{h:016x}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
