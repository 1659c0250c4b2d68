"""The four operators as PyTorch custom ops: torch.ops.mhc.hc_pre, hc_post, hc_post_pre and
hc_head, with fake (meta) implementations, so they trace under torch.compile (fullgraph too)
and run inside CUDA graphs (torch.compile(mode="reduce-overhead") or torch.cuda.graph).

    import mhc.torch
    post_mix, comb_mix, layer_input = mhc.torch.hc_pre(residual, fn, scale, base)

The ops run on the tensors' device with one shared mhc.Context per device (``context(dev)``)
and on torch's current CUDA stream; outputs are new tensors. Inputs that are not contiguous
are made contiguous (the library takes dense row-major tensors only). No autograd formula is
registered: these are inference ops.

For CUDA-graph capture, size the workspace first: ``mhc.torch.context(dev).reserve(T, H)``
(torch.compile's warm-up runs do that by themselves).
"""
from __future__ import annotations

import threading
from typing import Optional, Tuple

import torch
from torch import Tensor

from ._context import Context, Params, params_tuple

__all__ = ["context", "hc_pre", "hc_post", "hc_post_pre", "hc_head", "Params"]

_contexts: dict = {}
_contexts_lock = threading.Lock()


def context(device=None) -> Context:
    """The shared mhc.Context of a torch device (created on first use, never closed)."""
    device = torch.device("cuda" if device is None else device)
    if device.type == "cuda":
        key = ("cuda", device.index if device.index is not None else torch.cuda.current_device())
    elif device.type == "cpu":
        key = ("cpu", 0)
    else:
        raise ValueError(f"mhc: unsupported device {device}")
    ctx = _contexts.get(key)
    if ctx is None:
        with _contexts_lock:
            ctx = _contexts.get(key)
            if ctx is None:
                ctx = Context(backend=key[0], device=key[1])
                _contexts[key] = ctx
    return ctx


def _dense(t: Optional[Tensor]) -> Optional[Tensor]:
    return t if t is None or t.is_contiguous() else t.contiguous()


# ---- the ops -------------------------------------------------------------------------------
@torch.library.custom_op("mhc::hc_pre", mutates_args=())
def _hc_pre(residual: Tensor, fn: Tensor, scale: Tensor, base: Tensor,
            norm_weight: Optional[Tensor], hc_mult: int, sinkhorn_iters: int, rms_eps: float,
            pre_eps: float, sinkhorn_eps: float, post_mult: float, norm_eps: float,
            flags: int) -> Tuple[Tensor, Tensor, Tensor]:
    p = (hc_mult, sinkhorn_iters, rms_eps, pre_eps, sinkhorn_eps, post_mult, norm_eps, flags)
    return context(residual.device).hc_pre(_dense(residual), _dense(fn), _dense(scale),
                                           _dense(base), _dense(norm_weight), params=p)


@_hc_pre.register_fake
def _hc_pre_fake(residual, fn, scale, base, norm_weight, hc_mult, sinkhorn_iters, rms_eps,
                 pre_eps, sinkhorn_eps, post_mult, norm_eps, flags):
    T, H = residual.shape[0], residual.shape[2]
    return (residual.new_empty((T, 4), dtype=torch.float32),
            residual.new_empty((T, 4, 4), dtype=torch.float32),
            residual.new_empty((T, H), dtype=torch.bfloat16))


@torch.library.custom_op("mhc::hc_post", mutates_args=())
def _hc_post(x: Tensor, residual: Tensor, post_mix: Tensor, comb_mix: Tensor) -> Tensor:
    return context(residual.device).hc_post(_dense(x), _dense(residual), _dense(post_mix),
                                            _dense(comb_mix))


@_hc_post.register_fake
def _hc_post_fake(x, residual, post_mix, comb_mix):
    return residual.new_empty(residual.shape, dtype=torch.bfloat16)


@torch.library.custom_op("mhc::hc_post_pre", mutates_args=())
def _hc_post_pre(x: Tensor, residual: Tensor, post_mix: Tensor, comb_mix: Tensor, fn: Tensor,
                 scale: Tensor, base: Tensor, norm_weight: Optional[Tensor], hc_mult: int,
                 sinkhorn_iters: int, rms_eps: float, pre_eps: float, sinkhorn_eps: float,
                 post_mult: float, norm_eps: float,
                 flags: int) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    p = (hc_mult, sinkhorn_iters, rms_eps, pre_eps, sinkhorn_eps, post_mult, norm_eps, flags)
    return context(residual.device).hc_post_pre(
        _dense(x), _dense(residual), _dense(post_mix), _dense(comb_mix), _dense(fn),
        _dense(scale), _dense(base), _dense(norm_weight), params=p)


@_hc_post_pre.register_fake
def _hc_post_pre_fake(x, residual, post_mix, comb_mix, fn, scale, base, norm_weight, hc_mult,
                      sinkhorn_iters, rms_eps, pre_eps, sinkhorn_eps, post_mult, norm_eps, flags):
    T, H = residual.shape[0], residual.shape[2]
    return (residual.new_empty(residual.shape, dtype=torch.bfloat16),
            residual.new_empty((T, 4), dtype=torch.float32),
            residual.new_empty((T, 4, 4), dtype=torch.float32),
            residual.new_empty((T, H), dtype=torch.bfloat16))


@torch.library.custom_op("mhc::hc_head", mutates_args=())
def _hc_head(residual: Tensor, fn: Tensor, scale: Tensor, base: Tensor, hc_mult: int,
             sinkhorn_iters: int, rms_eps: float, pre_eps: float, sinkhorn_eps: float,
             post_mult: float, norm_eps: float, flags: int) -> Tensor:
    p = (hc_mult, sinkhorn_iters, rms_eps, pre_eps, sinkhorn_eps, post_mult, norm_eps, flags)
    return context(residual.device).hc_head(_dense(residual), _dense(fn), _dense(scale),
                                            _dense(base), params=p)


@_hc_head.register_fake
def _hc_head_fake(residual, fn, scale, base, hc_mult, sinkhorn_iters, rms_eps, pre_eps,
                  sinkhorn_eps, post_mult, norm_eps, flags):
    return residual.new_empty((residual.shape[0], residual.shape[2]), dtype=torch.bfloat16)


# ---- Pythonic entry points (traceable by torch.compile) ---------------------------------
def _p(params):
    p = params_tuple(params)
    if not isinstance(p, tuple):
        raise TypeError("params: expected mhc.Params or None")
    return p


def hc_pre(residual: Tensor, fn: Tensor, scale: Tensor, base: Tensor,
           norm_weight: Optional[Tensor] = None, params: Optional[Params] = None):
    """torch.ops.mhc.hc_pre: (post_mix [T,4] f32, comb_mix [T,4,4] f32, layer_input [T,H] bf16)."""
    return torch.ops.mhc.hc_pre(residual, fn, scale, base, norm_weight, *_p(params))


def hc_post(x: Tensor, residual: Tensor, post_mix: Tensor, comb_mix: Tensor) -> Tensor:
    """torch.ops.mhc.hc_post: the new residual [T,4,H] bf16."""
    return torch.ops.mhc.hc_post(x, residual, post_mix, comb_mix)


def hc_post_pre(x: Tensor, residual: Tensor, post_mix: Tensor, comb_mix: Tensor, fn: Tensor,
                scale: Tensor, base: Tensor, norm_weight: Optional[Tensor] = None,
                params: Optional[Params] = None):
    """torch.ops.mhc.hc_post_pre: (residual_out, post_mix, comb_mix, layer_input)."""
    return torch.ops.mhc.hc_post_pre(x, residual, post_mix, comb_mix, fn, scale, base,
                                     norm_weight, *_p(params))


def hc_head(residual: Tensor, fn: Tensor, scale: Tensor, base: Tensor,
            params: Optional[Params] = None) -> Tensor:
    """torch.ops.mhc.hc_head: out [T,H] bf16."""
    return torch.ops.mhc.hc_head(residual, fn, scale, base, *_p(params))
