"""A small float64 numpy reference of the operators (reference/mhc-spec.md §2-3), written
from the spec, and bf16 helpers. bf16 tensors are handled as uint16 bit patterns here."""
from __future__ import annotations

import numpy as np

N = 4  # hc_mult


def bf16_to_f64(bits: np.ndarray) -> np.ndarray:
    bits = np.ascontiguousarray(bits).view(np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def f32_to_bf16(x) -> np.ndarray:
    """Round-to-nearest-even of float32 values to bf16 bits (NaN -> 0x7fff)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = (u & 0x7FFFFFFF) > 0x7F800000
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    r[nan] = 0x7FFF
    return r


def bf16_ulp(ref: np.ndarray) -> np.ndarray:
    """One bf16 ulp at the magnitude of ref (8 significant bits)."""
    a = np.abs(ref)
    a = np.where(a < 2.0 ** -126, 2.0 ** -126, a)
    return 2.0 ** (np.floor(np.log2(a)) - 7)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def sinkhorn(c, iters, eps):
    c = c - c.max(axis=-1, keepdims=True)
    c = np.exp(c)
    c = c / c.sum(axis=-1, keepdims=True) + eps
    c = c / (c.sum(axis=-2, keepdims=True) + eps)
    for _ in range(iters - 1):
        c = c / (c.sum(axis=-1, keepdims=True) + eps)
        c = c / (c.sum(axis=-2, keepdims=True) + eps)
    return c


def _inv_rms(x_flat, eps):
    return 1.0 / np.sqrt((x_flat * x_flat).mean(axis=1) + eps)


def hc_pre(residual_bits, fn, scale, base, norm_weight_bits=None, iters=20, rms_eps=1e-6,
           pre_eps=1e-6, sk_eps=1e-6, post_mult=2.0, norm_eps=1e-6, magnitudes=False):
    """Returns (post [T,4], comb [T,4,4], layer_input [T,H]) in float64; layer_input is the
    exact value before the final bf16 rounding. With magnitudes=True a fourth element, the
    magnitude sum_j |pre_j * r_j| (times the RMSNorm factor) that bounds the fp32 error of
    layer_input, is appended."""
    r = bf16_to_f64(residual_bits)
    T, n, H = r.shape
    x = r.reshape(T, n * H)
    mix = (x @ fn.astype(np.float64).T) * _inv_rms(x, rms_eps)[:, None]
    s = scale.astype(np.float64)
    b = base.astype(np.float64)
    pre = sigmoid(mix[:, :n] * s[0] + b[:n]) + pre_eps
    post = sigmoid(mix[:, n:2 * n] * s[1] + b[n:2 * n]) * post_mult
    comb = sinkhorn((mix[:, 2 * n:] * s[2] + b[2 * n:]).reshape(T, n, n), iters, sk_eps)
    li = (pre[:, :, None] * r).sum(axis=1)
    mag = np.abs(pre[:, :, None] * r).sum(axis=1)
    if norm_weight_bits is not None:
        rs = 1.0 / np.sqrt((li * li).mean(axis=1) + norm_eps)
        li_rounded = bf16_to_f64(f32_to_bf16(li.astype(np.float32)))
        w = bf16_to_f64(norm_weight_bits)[None, :]
        # Where the sum lies within its fp32 error of a bf16 rounding midpoint, the library's
        # bf16(sum) may round the other way: one ulp of the sum, times rs * |w| -- up to two
        # ulps of the output when the sum sits low in its binade and the output high in its
        # own. The magnitude grows by that step / ACCUMULATION_EPS there, so either rounding
        # passes; elsewhere the budget is unchanged.
        ulp = bf16_ulp(li)
        near_tie = ulp / 2 - np.abs(li - li_rounded) <= ACCUMULATION_EPS * mag
        mag = mag + np.where(near_tie, ulp / ACCUMULATION_EPS, 0.0)
        li = li_rounded * rs[:, None] * w
        mag = mag * rs[:, None] * np.abs(w)
    return (post, comb, li, mag) if magnitudes else (post, comb, li)


def hc_post(x_bits, residual_bits, post, comb, magnitudes=False):
    """new residual [T,4,H] in float64, before the bf16 rounding (and, with magnitudes=True,
    the magnitude of its terms)."""
    x = bf16_to_f64(x_bits)
    r = bf16_to_f64(residual_bits)
    post = np.asarray(post, dtype=np.float64).reshape(r.shape[0], N)
    comb = np.asarray(comb, dtype=np.float64)
    out = post[:, :, None] * x[:, None, :] + np.einsum("tij,tih->tjh", comb, r)
    if not magnitudes:
        return out
    mag = np.abs(post[:, :, None] * x[:, None, :]) + np.einsum("tij,tih->tjh", np.abs(comb),
                                                                np.abs(r))
    return out, mag


def hc_head(residual_bits, fn, scale, base, rms_eps=1e-6, pre_eps=1e-6, magnitudes=False):
    r = bf16_to_f64(residual_bits)
    T, n, H = r.shape
    x = r.reshape(T, n * H)
    mix = (x @ fn.astype(np.float64).T) * _inv_rms(x, rms_eps)[:, None]
    pre = sigmoid(mix * float(scale[0]) + base.astype(np.float64)) + pre_eps
    out = (pre[:, :, None] * r).sum(axis=1)
    return (out, np.abs(pre[:, :, None] * r).sum(axis=1)) if magnitudes else out


# fp32 error allowed relative to the magnitude of the summed terms: the library computes the
# gates (K-long dot products, sigmoid) and the sums in fp32, so where the terms cancel the
# fp32 error, not the bf16 rounding, dominates. 64 eps = 7.6e-6, far below a bf16 ulp (3.9e-3).
ACCUMULATION_EPS = 64 * float(np.finfo(np.float32).eps)


def assert_bf16_close(got_bits, ref, ulps=1.0, what="bf16", magnitude=None):
    """got (bf16 bits) within `ulps` bf16 ulps of the exact value ref, plus the fp32 error
    that the magnitude of the summed terms allows (default: |ref|)."""
    got = bf16_to_f64(got_bits)
    ref = np.asarray(ref, dtype=np.float64)
    mag = np.abs(ref) if magnitude is None else np.asarray(magnitude, dtype=np.float64)
    tol = ulps * bf16_ulp(ref) + ACCUMULATION_EPS * mag + 1e-30
    err = np.abs(got - ref)
    bad = err > tol
    if bad.any():
        i = np.argwhere(bad)[0]
        raise AssertionError(f"{what}: {bad.sum()} of {bad.size} values off by more than "
                             f"{ulps} ulp; first at {tuple(i)}: got {got[tuple(i)]!r}, "
                             f"exact {ref[tuple(i)]!r}")


def assert_mix_close(got, ref, what="mix"):
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), ref, rtol=1e-4, atol=1e-5,
                               err_msg=what)
