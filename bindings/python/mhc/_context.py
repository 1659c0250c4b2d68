"""The Pythonic layer: Params, Context and the four operators."""
from __future__ import annotations

import dataclasses
import sys
import threading

import numpy as np

from . import _mhc
from ._errors import InvalidArgument, InvalidHandle, NotSupported, check
from ._tensors import Allocator, describe, residual_dims

BACKEND_CUDA = _mhc.MHC_BACKEND_CUDA
BACKEND_CPU = _mhc.MHC_BACKEND_CPU
OP_HC_PRE = _mhc.MHC_OP_HC_PRE
OP_HC_POST_PRE = _mhc.MHC_OP_HC_POST_PRE
OP_HC_HEAD = _mhc.MHC_OP_HC_HEAD
OP_HC_POST = _mhc.MHC_OP_HC_POST
FLAG_BATCH_INVARIANT = _mhc.MHC_FLAG_BATCH_INVARIANT

_OPS = {"hc_pre": OP_HC_PRE, "hc_post_pre": OP_HC_POST_PRE, "hc_head": OP_HC_HEAD,
        "hc_post": OP_HC_POST}
_BACKENDS = {"cuda": BACKEND_CUDA, "gpu": BACKEND_CUDA, "cpu": BACKEND_CPU}

_c = _mhc  # the functions; typemaps are documented in bindings/swig/mhc.i


@dataclasses.dataclass(frozen=True)
class Params:
    """Operator parameters (mhc_hc_params). The defaults are DeepSeek-V4's
    (MHC_HC_PARAMS_INIT): 4 streams, 20 Sinkhorn iterations, eps 1e-6, post_mult 2.0."""

    hc_mult: int = 4
    sinkhorn_iters: int = 20
    rms_eps: float = 1e-6
    pre_eps: float = 1e-6
    sinkhorn_eps: float = 1e-6
    post_mult: float = 2.0
    norm_eps: float = 1e-6
    batch_invariant: bool = False
    flags: int = 0  # further MHC_FLAG_* bits, OR-ed with batch_invariant
    _tuple: tuple = dataclasses.field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        flags = int(self.flags) | (FLAG_BATCH_INVARIANT if self.batch_invariant else 0)
        object.__setattr__(self, "_tuple", (
            int(self.hc_mult), int(self.sinkhorn_iters), float(self.rms_eps),
            float(self.pre_eps), float(self.sinkhorn_eps), float(self.post_mult),
            float(self.norm_eps), flags))

    def as_tuple(self) -> tuple:
        """(hc_mult, sinkhorn_iters, rms_eps, pre_eps, sinkhorn_eps, post_mult, norm_eps,
        flags), the form the low-level module takes."""
        return self._tuple


DEFAULT_PARAMS = Params()
_DEFAULT_TUPLE = DEFAULT_PARAMS.as_tuple()


def params_tuple(params):
    if params is None:
        return _DEFAULT_TUPLE
    if isinstance(params, Params):
        return params._tuple
    if isinstance(params, _mhc.mhc_hc_params):  # a raw struct, passed through as is
        return params
    if isinstance(params, tuple) and len(params) == 8:
        return params
    raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                          f"params: expected mhc.Params or None, got {type(params).__name__}")


def _parse_backend(backend) -> int:
    if isinstance(backend, str):
        b = _BACKENDS.get(backend.lower())
        if b is None:
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                                  f"backend: expected 'cuda' or 'cpu', got {backend!r}")
        return b
    if isinstance(backend, int):
        return backend  # the library validates the value
    raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                          f"backend: expected 'cuda' or 'cpu', got {type(backend).__name__}")


def _parse_device(device):
    """device as an int; also takes 'cuda:1' and torch.device. Returns (backend hint, id)."""
    if device is None:
        return None, 0
    if isinstance(device, int):
        return None, device
    if isinstance(device, str):
        kind, _, idx = device.partition(":")
        if kind not in _BACKENDS:
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                                  f"device: expected an int, 'cuda:N' or 'cpu', got {device!r}")
        try:
            return _BACKENDS[kind], int(idx) if idx else 0
        except ValueError:
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                                  f"device: bad device string {device!r}") from None
    t = getattr(device, "type", None)  # torch.device
    if t in _BACKENDS:
        return _BACKENDS[t], device.index if device.index is not None else 0
    raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                          f"device: expected an int, got {type(device).__name__}")


class Context:
    """One libmhc context: a backend ("cuda" or "cpu") on one device, plus the workspace of
    this (context, device), which is allocated once and grown when an op needs more.

    Thread safety: the library context may be shared by threads; this object's workspace
    may not be used by two launches in flight at once, so give each thread or CUDA stream
    that runs concurrently its own Context (calls on one stream are ordered and fine).

    CUDA graphs: operator calls allocate nothing but their outputs (with out=, nothing at
    all) once the workspace is large enough: call ``reserve(max_tokens, hidden)`` before
    capturing. A workspace that grows keeps its older buffers alive until close() or
    release_workspace(), so graphs captured earlier stay valid.
    """

    def __init__(self, backend="cuda", device=0, check_pointers: bool = False,
                 pdl: bool = False):
        self._handle = None
        hint, dev = _parse_device(device)
        b = _parse_backend(backend)
        if hint is not None and hint != b:
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                                  f"device: {device!r} does not match backend {backend!r}")
        flags = 0
        if check_pointers:
            flags |= _mhc.MHC_CONTEXT_FLAG_CHECK_POINTERS
        if pdl:
            flags |= _mhc.MHC_CONTEXT_FLAG_PDL
        status, handle = _c.mhc_context_create((b, dev, flags))
        check(status)
        st, backend_id, device_id = _c.mhc_context_get_backend(handle)
        check(st)
        self._handle = handle
        self._backend = backend_id
        self._device = device_id
        self._lock = threading.Lock()
        self._ws = None  # buffer object (torch/cupy/numpy) keeping the workspace alive
        self._ws_ptr = 0
        self._ws_bytes = 0
        self._ws_retired = []  # smaller buffers replaced by growth; see the class docstring
        self._ws_need = {}  # (op, params, T, H) -> bytes

    # ---- lifetime ------------------------------------------------------------------------
    def close(self) -> None:
        """Destroys the context (idempotent). Later calls raise mhc.InvalidHandle. Does not
        synchronise: finish the streams that use it first."""
        handle, self._handle = self._handle, None
        self._ws = None
        self._ws_retired = []
        self._ws_ptr = self._ws_bytes = 0
        if handle is not None:
            check(_c.mhc_context_destroy(handle))

    def __enter__(self):
        self._live()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            if getattr(self, "_handle", None) is not None:
                self.close()
        except Exception:
            pass

    @property
    def closed(self) -> bool:
        return self._handle is None

    @property
    def backend(self) -> str:
        return "cuda" if self._backend == BACKEND_CUDA else "cpu"

    @property
    def device(self) -> int:
        return self._device

    def __repr__(self) -> str:
        state = "closed" if self._handle is None else f"{self.backend}:{self._device}"
        return f"<mhc.Context {state}>"

    def _live(self):
        h = self._handle
        if h is None:
            raise InvalidHandle(_mhc.MHC_ERROR_INVALID_HANDLE, "ctx: the context is closed")
        return h

    # ---- workspace -----------------------------------------------------------------------
    def workspace_size(self, op, num_tokens: int, hidden: int, params=None) -> int:
        """Bytes of workspace an op needs (mhc_workspace_size); op is 'hc_pre',
        'hc_post_pre', 'hc_head', 'hc_post' or an MHC_OP_* value."""
        op_id = _OPS.get(op, op) if isinstance(op, str) else op
        if isinstance(op, str) and op not in _OPS:
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                                  f"op: expected one of {sorted(_OPS)}, got {op!r}")
        st, nbytes = _c.mhc_workspace_size(self._live(), op_id, params_tuple(params),
                                           int(num_tokens), int(hidden))
        check(st)
        return nbytes

    def reserve(self, max_tokens: int, hidden: int, params=None) -> int:
        """Preallocates the workspace for every op up to max_tokens tokens of this hidden
        size (call before CUDA-graph capture). Returns the workspace size in bytes."""
        need = max(self.workspace_size(op, max_tokens, hidden, params)
                   for op in (OP_HC_PRE, OP_HC_POST_PRE, OP_HC_HEAD))
        if need > self._ws_bytes:
            self._grow(need, exact=True)
        return self._ws_bytes

    def release_workspace(self) -> None:
        """Frees the workspace buffers. Only when no stream work or captured CUDA graph that
        used this context is still to run."""
        with self._lock:
            self._ws = None
            self._ws_retired = []
            self._ws_ptr = self._ws_bytes = 0

    @property
    def workspace_bytes(self) -> int:
        return self._ws_bytes

    def _workspace(self, op, p, T, H):
        if T is None:
            return 0, 0  # the residual is malformed: the op reports it
        key = (op, p, T, H)
        need = self._ws_need.get(key)
        if need is None:
            st, need = _c.mhc_workspace_size(self._handle, op, p, T, H)
            if st:
                return 0, 0  # the op itself reports the same error with its own message
            if len(self._ws_need) > 4096:
                self._ws_need.clear()
            self._ws_need[key] = need
        if need == 0:
            return 0, 0
        if need > self._ws_bytes:
            self._grow(need)
        return self._ws_ptr, self._ws_bytes

    def _grow(self, need: int, exact: bool = False):
        with self._lock:
            if need <= self._ws_bytes:
                return
            nbytes = need if exact else max(need, 2 * self._ws_bytes)
            nbytes = (nbytes + 255) // 256 * 256
            buf, ptr = self._allocate(nbytes)
            if self._ws is not None:
                self._ws_retired.append(self._ws)
            self._ws, self._ws_ptr, self._ws_bytes = buf, ptr, nbytes

    def _allocate(self, nbytes: int):
        if self._backend != BACKEND_CUDA:
            raw = np.empty(nbytes + 16, dtype=np.uint8)
            ptr = raw.__array_interface__["data"][0]
            off = (-ptr) % 16
            return raw, ptr + off
        try:
            import torch
            buf = torch.empty(nbytes, dtype=torch.uint8, device=f"cuda:{self._device}")
            return buf, buf.data_ptr()
        except ImportError:
            pass
        try:
            import cupy
            with cupy.cuda.Device(self._device):
                buf = cupy.empty(nbytes, dtype=cupy.uint8)
            return buf, buf.data.ptr
        except ImportError:
            pass
        raise NotSupported(_mhc.MHC_ERROR_NOT_SUPPORTED,
                           f"workspace: the CUDA backend needs {nbytes} bytes of device memory "
                           "and mhc allocates it with torch or cupy, neither is installed")

    # ---- streams -------------------------------------------------------------------------
    def _stream(self, stream) -> int:
        if self._backend != BACKEND_CUDA:
            return 0
        if stream is None:
            torch = sys.modules.get("torch")
            if torch is not None:
                raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)  # no Stream object
                if raw is not None:
                    return raw(self._device)
                return torch.cuda.current_stream(self._device).cuda_stream
            return 0
        if isinstance(stream, int):
            return stream
        handle = getattr(stream, "cuda_stream", None)  # torch.cuda.Stream, cupy Stream.ptr
        if handle is None:
            handle = getattr(stream, "ptr", None)
        if handle is None and hasattr(stream, "__cuda_stream__"):
            handle = stream.__cuda_stream__()[1]
        if not isinstance(handle, int):
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                                  f"stream: expected an int handle or a CUDA stream object, got "
                                  f"{type(stream).__name__}")
        return handle

    # ---- helpers ---------------------------------------------------------------------------
    def _begin(self, params, stream):
        """(handle, params tuple, stream handle, DLPack stream) of an operator call, checked in
        this order. The DLPack stream is what describe() passes to CUDA producers: None on the
        CPU backend."""
        h = self._live()
        p = params_tuple(params)
        s = self._stream(stream)
        return h, p, s, (s if self._backend == BACKEND_CUDA else None)

    def _weights(self, fn, scale, base, norm_weight, keep, stream_fn):
        return (describe(fn, "fn", keep, False, stream_fn),
                describe(scale, "scale", keep, False, stream_fn),
                describe(base, "base", keep, False, stream_fn),
                None if norm_weight is None
                else describe(norm_weight, "norm_weight", keep, False, stream_fn))

    @staticmethod
    def _post_inputs(x, residual, post_mix, comb_mix, keep, stream_fn):
        """DLTensors of residual, x, post_mix, comb_mix (described in that order)."""
        return (describe(residual, "residual", keep, False, stream_fn),
                describe(x, "x", keep, False, stream_fn),
                describe(post_mix, "post_mix", keep, False, stream_fn),
                describe(comb_mix, "comb_mix", keep, False, stream_fn))

    @staticmethod
    def _outs(out, n, what):
        if n == 1:
            return (out,)
        if not isinstance(out, (tuple, list)) or len(out) != n:
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                                  f"out: expected a tuple {what}")
        return tuple(out)

    # ---- operators -----------------------------------------------------------------------
    def hc_pre(self, residual, fn, scale, base, norm_weight=None, params=None, out=None,
               stream=None):
        """hc_pre: (post_mix [T,4] f32, comb_mix [T,4,4] f32, layer_input [T,H] bf16) of the
        residual streams [T,4,H] bf16 with one sub-layer's weights fn [24,4H] f32,
        scale [3] f32, base [24] f32 and optional norm_weight [H] bf16 (fused RMSNorm).
        out: a tuple of the three outputs to write into (then returned)."""
        h, p, s, dls = self._begin(params, stream)
        keep = []
        r = describe(residual, "residual", keep, False, dls)
        w = self._weights(fn, scale, base, norm_weight, keep, dls)
        dims = residual_dims(r)
        if out is None:
            if dims is None:
                outs = (None, None, None)
            else:
                T, H = dims
                a = Allocator(residual, r)
                outs = (a.empty((T, 4), False), a.empty((T, 4, 4), False), a.empty((T, H), True))
        else:
            outs = self._outs(out, 3, "(post_mix, comb_mix, layer_input)")
        d = [None if o is None else describe(o, n, keep, True, dls)
             for n, o in zip(("post_mix_out", "comb_mix_out", "layer_input_out"), outs)]
        T, H = dims if dims else (None, None)
        ws, wsb = self._workspace(OP_HC_PRE, p, T, H)
        check(_c.mhc_hc_pre(h, p, w, r, d[0], d[1], d[2], ws, wsb, s))
        return outs

    def hc_post(self, x, residual, post_mix, comb_mix, out=None, stream=None):
        """hc_post: the new residual streams [T,4,H] bf16 =
        bf16(post_mix[t,j] * x[t,h] + sum_i comb_mix[t,i,j] * residual[t,i,h])."""
        h, _, s, dls = self._begin(None, stream)  # hc_post takes no params
        keep = []
        r, dx, dp, dc = self._post_inputs(x, residual, post_mix, comb_mix, keep, dls)
        dims = residual_dims(r)
        if out is None:
            out = None if dims is None else Allocator(residual, r).empty(
                (dims[0], 4, dims[1]), True)
        do = None if out is None else describe(out, "residual_out", keep, True, dls)
        check(_c.mhc_hc_post(h, dx, r, dp, dc, do, s))
        return out

    def hc_post_pre(self, x, residual, post_mix, comb_mix, fn, scale, base, norm_weight=None,
                    params=None, out=None, stream=None):
        """The fused sub-layer boundary: hc_post, then hc_pre of the next sub-layer (weights
        fn, scale, base, norm_weight) on the new residual. Returns (residual_out, post_mix,
        comb_mix, layer_input), bit for bit what hc_post followed by hc_pre returns."""
        h, p, s, dls = self._begin(params, stream)
        keep = []
        r, dx, dp, dc = self._post_inputs(x, residual, post_mix, comb_mix, keep, dls)
        w = self._weights(fn, scale, base, norm_weight, keep, dls)
        dims = residual_dims(r)
        if out is None:
            if dims is None:
                outs = (None, None, None, None)
            else:
                T, H = dims
                a = Allocator(residual, r)
                outs = (a.empty((T, 4, H), True), a.empty((T, 4), False),
                        a.empty((T, 4, 4), False), a.empty((T, H), True))
        else:
            outs = self._outs(out, 4, "(residual_out, post_mix, comb_mix, layer_input)")
        d = [None if o is None else describe(o, n, keep, True, dls)
             for n, o in zip(("residual_out", "post_mix_out", "comb_mix_out", "layer_input_out"),
                             outs)]
        T, H = dims if dims else (None, None)
        ws, wsb = self._workspace(OP_HC_POST_PRE, p, T, H)
        check(_c.mhc_hc_post_pre(h, p, w, dx, r, dp, dc, d[0], d[1], d[2], d[3], ws, wsb, s))
        return outs

    def hc_head(self, residual, fn, scale, base, params=None, out=None, stream=None):
        """hc_head: collapses the streams at the end of the model: out [T,H] bf16 from
        residual [T,4,H] bf16, fn [4,4H] f32, scale [1] f32, base [4] f32."""
        h, p, s, dls = self._begin(params, stream)
        keep = []
        r = describe(residual, "residual", keep, False, dls)
        dfn = describe(fn, "fn_head", keep, False, dls)
        dsc = describe(scale, "scale", keep, False, dls)
        dba = describe(base, "base", keep, False, dls)
        dims = residual_dims(r)
        if out is None:
            out = None if dims is None else Allocator(residual, r).empty((dims[0], dims[1]), True)
        do = None if out is None else describe(out, "out", keep, True, dls)
        T, H = dims if dims else (None, None)
        ws, wsb = self._workspace(OP_HC_HEAD, p, T, H)
        check(_c.mhc_hc_head(h, p, dfn, dsc, dba, r, do, ws, wsb, s))
        return out


__all__ = ["Params", "Context", "DEFAULT_PARAMS", "BACKEND_CUDA", "BACKEND_CPU", "OP_HC_PRE",
           "OP_HC_POST_PRE", "OP_HC_HEAD", "OP_HC_POST", "FLAG_BATCH_INVARIANT", "params_tuple"]
