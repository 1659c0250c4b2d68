"""Zero-copy tensor descriptors for the SWIG typemaps, and output allocation.

A descriptor is the tuple that bindings/swig/mhc.i turns into a DLTensor on the C stack:
``(data, device_type, device_id, code, bits, lanes, shape, strides_or_None, byte_offset)``,
strides in elements. It is read from

* a ``torch.Tensor``: ``data_ptr()`` (storage offset included), ``shape``, ``stride()``;
* a ``numpy.ndarray``: ``__array_interface__`` (bf16 as ``ml_dtypes.bfloat16`` or as
  ``uint16`` holding bf16 bits);
* any other object with ``__dlpack__``/``__dlpack_device__``: the DLManagedTensor of its
  capsule, which is kept alive (not consumed) during the call.

Nothing is copied: the library reads and writes the caller's memory.
"""
from __future__ import annotations

import sys

import numpy as np

from . import _mhc
from ._errors import DeviceMismatch, InvalidArgument, NotSupported

DL_INT, DL_UINT, DL_FLOAT, DL_BFLOAT, DL_BOOL = 0, 1, 2, 4, 6
DL_CPU, DL_CUDA, DL_CUDA_HOST, DL_CUDA_MANAGED = 1, 2, 3, 13

BF16 = (DL_BFLOAT, 16)
F32 = (DL_FLOAT, 32)

KIND_TORCH, KIND_NUMPY, KIND_DLPACK = 0, 1, 2

try:  # optional: numpy's bfloat16
    import ml_dtypes as _ml_dtypes

    NP_BF16 = np.dtype(_ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover - depends on the environment
    NP_BF16 = None

_NP_DTYPES: dict = {}
_TORCH_DTYPES: dict = {}


def _np_dtype(dt: np.dtype, name: str):
    """(code, bits) of a numpy dtype; uint16 means bf16 bits."""
    r = _NP_DTYPES.get(dt)
    if r is not None:
        return r
    if dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big"):
        raise NotSupported(_mhc.MHC_ERROR_NOT_SUPPORTED, f"{name}: big-endian dtype {dt} is not supported")
    if dt.name == "bfloat16" or dt == np.uint16:
        r = BF16
    elif dt.kind == "f":
        r = (DL_FLOAT, dt.itemsize * 8)
    elif dt.kind == "i":
        r = (DL_INT, dt.itemsize * 8)
    elif dt.kind == "u":
        r = (DL_UINT, dt.itemsize * 8)
    elif dt.kind == "b":
        r = (DL_BOOL, 8)
    else:
        raise NotSupported(_mhc.MHC_ERROR_NOT_SUPPORTED,
                           f"{name}: numpy dtype {dt} has no DLPack equivalent here "
                           "(mhc takes bfloat16 and float32)")
    _NP_DTYPES[dt] = r
    return r


def _torch_dtype(torch, dt, name: str):
    r = _TORCH_DTYPES.get(dt)
    if r is not None:
        return r
    table = {
        torch.bfloat16: BF16, torch.float32: F32, torch.float16: (DL_FLOAT, 16),
        torch.float64: (DL_FLOAT, 64), torch.int8: (DL_INT, 8), torch.int16: (DL_INT, 16),
        torch.int32: (DL_INT, 32), torch.int64: (DL_INT, 64), torch.uint8: (DL_UINT, 8),
        torch.bool: (DL_BOOL, 8),
    }
    r = table.get(dt)
    if r is None:
        raise NotSupported(_mhc.MHC_ERROR_NOT_SUPPORTED,
                           f"{name}: torch dtype {dt} has no DLPack equivalent here "
                           "(mhc takes bfloat16 and float32)")
    _TORCH_DTYPES[dt] = r
    return r


def torch_module():
    """torch if the program imported it (never imports torch itself)."""
    return sys.modules.get("torch")


def kind_of(obj) -> int:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        return KIND_TORCH
    if isinstance(obj, np.ndarray):
        return KIND_NUMPY
    return KIND_DLPACK


_TORCH_TENSOR = None  # torch.Tensor, once the program has imported torch


def describe(obj, name: str, keep: list, output: bool = False, dlpack_stream=None):
    """The descriptor tuple of obj. Objects that must outlive the call (DLPack capsules) are
    appended to keep. dlpack_stream: the stream handle to pass to ``__dlpack__(stream=...)``
    of CUDA producers (None: none is passed)."""
    global _TORCH_TENSOR
    tt = _TORCH_TENSOR
    if tt is None:
        torch = sys.modules.get("torch")
        if torch is not None:
            tt = _TORCH_TENSOR = torch.Tensor
    if tt is not None and isinstance(obj, tt):  # the hot path: a few attribute reads
        if obj.is_cuda:
            dt, di = DL_CUDA, obj.get_device()
        elif obj.device.type == "cpu":
            dt, di = DL_CPU, 0
        else:
            raise DeviceMismatch(_mhc.MHC_ERROR_DEVICE_MISMATCH,
                                 f"{name}: tensors on torch device '{obj.device}' are not "
                                 "supported (cpu or cuda)")
        cb = _TORCH_DTYPES.get(obj.dtype) or _torch_dtype(sys.modules["torch"], obj.dtype, name)
        # dense (or empty) tensors go without strides; others let the library name the stride
        strides = None if obj.is_contiguous() or obj.numel() == 0 else tuple(obj.stride())
        return (obj.data_ptr(), dt, di, cb[0], cb[1], 1, obj.shape, strides, 0)
    if isinstance(obj, np.ndarray):
        ai = obj.__array_interface__
        ptr, readonly = ai["data"]
        if output and readonly and obj.size:
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                                  f"{name}: the output array is read-only")
        code, bits = _np_dtype(obj.dtype, name)
        if obj.flags.c_contiguous or obj.size == 0:  # empty arrays may carry any strides
            return (ptr, DL_CPU, 0, code, bits, 1, obj.shape, None, 0)
        size = obj.itemsize
        strides = obj.strides
        if any(s % size for s in strides):
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                                  f"{name}: strides {strides} (bytes) are not multiples of the "
                                  f"element size {size}")
        return (ptr, DL_CPU, 0, code, bits, 1, obj.shape, tuple(s // size for s in strides), 0)
    if hasattr(obj, "__dlpack__"):
        dev = None
        if hasattr(obj, "__dlpack_device__"):
            dev = tuple(obj.__dlpack_device__())
        if dev is not None and dev[0] in (DL_CUDA, DL_CUDA_MANAGED) and dlpack_stream is not None:
            # DLPack: 1 = the legacy default stream (0 is not allowed)
            cap = obj.__dlpack__(stream=dlpack_stream if dlpack_stream else 1)
        else:
            cap = obj.__dlpack__()
        keep.append(cap)
        try:
            return _mhc.dlpack_describe(cap)
        except (TypeError, ValueError) as e:
            raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT, f"{name}: {e}") from None
    if obj is None:
        raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT, f"{name}: expected a tensor, got None")
    raise InvalidArgument(_mhc.MHC_ERROR_INVALID_ARGUMENT,
                          f"{name}: expected a torch.Tensor, a numpy.ndarray or an object with "
                          f"__dlpack__, got {type(obj).__name__}")


def residual_dims(desc):
    """(T, H) of a [T, 4, H] residual descriptor, or None when it is not one (the library
    then reports the precise error)."""
    shape = desc[6]
    if len(shape) != 3 or shape[1] != 4 or shape[0] < 0 or shape[2] < 1:
        return None
    return shape[0], shape[2]


class Allocator:
    """Allocates outputs with the same library, device and bf16 flavour as a reference
    input (the residual)."""

    __slots__ = ("kind", "ref", "desc")

    def __init__(self, ref, desc):
        self.ref = ref
        self.desc = desc
        self.kind = kind_of(ref)

    def empty(self, shape, bf16: bool):
        if self.kind == KIND_TORCH:
            torch = sys.modules["torch"]
            return torch.empty(shape, dtype=torch.bfloat16 if bf16 else torch.float32,
                               device=self.ref.device)
        if self.kind == KIND_NUMPY:
            if bf16:
                dt = self.ref.dtype if (self.ref.dtype == np.uint16 or self.ref.dtype == NP_BF16) \
                    else (NP_BF16 if NP_BF16 is not None else np.uint16)
            else:
                dt = np.float32
            return np.empty(shape, dtype=dt)
        # another DLPack producer: numpy on the host, torch (or cupy) on a GPU
        dev_type, dev_id = self.desc[1], self.desc[2]
        if dev_type in (DL_CPU, DL_CUDA_HOST):
            dt = (NP_BF16 if NP_BF16 is not None else np.uint16) if bf16 else np.float32
            return np.empty(shape, dtype=dt)
        if dev_type == DL_CUDA:
            try:
                import torch
                return torch.empty(shape, dtype=torch.bfloat16 if bf16 else torch.float32,
                                   device=f"cuda:{dev_id}")
            except ImportError:
                pass
            if not bf16:
                try:
                    import cupy
                    with cupy.cuda.Device(dev_id):
                        return cupy.empty(shape, dtype=cupy.float32)
                except ImportError:
                    pass
        raise NotSupported(_mhc.MHC_ERROR_NOT_SUPPORTED,
                           f"cannot allocate outputs on DLPack device {dev_type}:{dev_id}: "
                           "pass out= (or install torch)")
