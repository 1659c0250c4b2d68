"""mhc: manifold-constrained Hyper-Connection operators of DeepSeek-V4 (libmhc) for Python.

    import mhc
    with mhc.Context(backend="cuda") as ctx:            # or backend="cpu"
        post_mix, comb_mix, layer_input = ctx.hc_pre(residual, fn, scale, base)
        ...
        residual, post_mix, comb_mix, layer_input = ctx.hc_post_pre(
            y, residual, post_mix, comb_mix, fn2, scale2, base2)
        residual = ctx.hc_post(y, residual, post_mix, comb_mix)
        out = ctx.hc_head(residual, fn_head, scale_head, base_head)

Tensors are torch tensors, numpy arrays (CPU backend; bf16 as ml_dtypes.bfloat16 or uint16
bits) or any DLPack object; nothing is copied. ``mhc.torch`` (needs torch) registers the ops
as torch.ops.mhc.* for torch.compile and CUDA graphs. The raw SWIG module is ``mhc._mhc``.
"""
from . import _mhc
from ._context import (BACKEND_CPU, BACKEND_CUDA, DEFAULT_PARAMS, FLAG_BATCH_INVARIANT,
                       OP_HC_HEAD, OP_HC_POST, OP_HC_POST_PRE, OP_HC_PRE, Context, Params)
from ._errors import (CudaError, DeviceMismatch, InternalError, InvalidArgument, InvalidHandle,
                      MhcError, NotSupported, OutOfMemory, VersionMismatch, WorkspaceTooSmall,
                      error_from_status)

__version__ = _mhc.MHC_VERSION_STRING

#: Version of the header the binding was built from (MAJOR*10000 + MINOR*100 + PATCH).
HEADER_VERSION = _mhc.MHC_VERSION


def library_version() -> int:
    """Version of the loaded libmhc (mhc_get_version())."""
    return _mhc.mhc_get_version()


def status_string(status: int) -> str:
    """Static name of a status (mhc_status_string)."""
    return _mhc.mhc_status_string(int(status))


if library_version() // 10000 != _mhc.MHC_VERSION_MAJOR:  # pragma: no cover
    raise VersionMismatch(_mhc.MHC_ERROR_VERSION_MISMATCH,
                          f"libmhc {library_version()} loaded, but the binding was built for "
                          f"major version {_mhc.MHC_VERSION_MAJOR}")


def __getattr__(name):  # `mhc.torch` on first use, without importing torch eagerly
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'mhc' has no attribute {name!r}")


__all__ = [
    "Context", "Params", "DEFAULT_PARAMS", "MhcError", "InvalidArgument", "InvalidHandle",
    "NotSupported", "DeviceMismatch", "WorkspaceTooSmall", "OutOfMemory", "CudaError",
    "VersionMismatch", "InternalError", "error_from_status", "library_version",
    "status_string", "BACKEND_CPU", "BACKEND_CUDA", "OP_HC_PRE", "OP_HC_POST_PRE",
    "OP_HC_HEAD", "OP_HC_POST", "FLAG_BATCH_INVARIANT", "HEADER_VERSION",
]
