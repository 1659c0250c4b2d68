"""Shared fixtures: a CPU context and seeded DeepSeek-V4-shaped inputs (numpy)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import mhc  # noqa: E402
from reference import f32_to_bf16  # noqa: E402

try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    BF16 = None


@pytest.fixture
def ctx():
    with mhc.Context(backend="cpu") as c:
        yield c


class Inputs:
    """Model-style inputs for T tokens of hidden H, bf16 as uint16 bits."""

    def __init__(self, T=5, H=64, seed=0):
        rng = np.random.default_rng(seed)
        self.T, self.H = T, H
        self.residual = f32_to_bf16(rng.standard_normal((T, 4, H)).astype(np.float32))
        self.x = f32_to_bf16(rng.standard_normal((T, H)).astype(np.float32))
        self.fn = (rng.standard_normal((24, 4 * H)) * 0.05).astype(np.float32)
        self.scale = (1.0 + rng.standard_normal(3) * 0.1).astype(np.float32)
        self.base = (rng.standard_normal(24) * 0.1).astype(np.float32)
        self.fn2 = (rng.standard_normal((24, 4 * H)) * 0.05).astype(np.float32)
        self.scale2 = (1.0 + rng.standard_normal(3) * 0.1).astype(np.float32)
        self.base2 = (rng.standard_normal(24) * 0.1).astype(np.float32)
        self.norm_weight = f32_to_bf16((1.0 + rng.standard_normal(H) * 0.2).astype(np.float32))
        self.fn_head = (rng.standard_normal((4, 4 * H)) * 0.05).astype(np.float32)
        self.scale_head = (1.0 + rng.standard_normal(1) * 0.1).astype(np.float32)
        self.base_head = (rng.standard_normal(4) * 0.1).astype(np.float32)
        # post/comb as hc_pre would give them (positive post, doubly stochastic comb)
        self.post = (2.0 / (1.0 + np.exp(-rng.standard_normal((T, 4))))).astype(np.float32)
        c = np.exp(rng.standard_normal((T, 4, 4)))
        for _ in range(10):
            c /= c.sum(axis=2, keepdims=True)
            c /= c.sum(axis=1, keepdims=True)
        self.comb = c.astype(np.float32)


@pytest.fixture
def inputs():
    return Inputs()


class DLPackOnly:
    """Only the wrapped array's own __dlpack__/__dlpack_device__ are visible (not its numpy or
    torch type)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, stream=None):
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()
