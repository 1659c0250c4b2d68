"""Typed exceptions: one class per mhc_status_t value, all derived from MhcError."""
from __future__ import annotations

from . import _mhc

__all__ = [
    "MhcError", "InvalidArgument", "InvalidHandle", "NotSupported", "DeviceMismatch",
    "WorkspaceTooSmall", "OutOfMemory", "CudaError", "VersionMismatch", "InternalError",
    "error_from_status", "check",
]


class MhcError(Exception):
    """A failed libmhc call: ``status`` is the mhc_status_t value, ``message`` the library's
    message (mhc_last_error_message of the failing call) or the binding's own."""

    status: int = -1

    def __init__(self, status: int, message: str):
        self.status = int(status)
        self.message = str(message)
        super().__init__(self.status, self.message)

    @property
    def status_name(self) -> str:
        return _mhc.mhc_status_string(self.status)

    def __str__(self) -> str:
        return f"{self.status_name}: {self.message}"

    def __reduce__(self):
        return (type(self), (self.status, self.message))


class InvalidArgument(MhcError, ValueError):
    """MHC_ERROR_INVALID_ARGUMENT: NULL pointer, bad shape/stride/overlap/value."""


class InvalidHandle(MhcError):
    """MHC_ERROR_INVALID_HANDLE: NULL, destroyed or closed context."""


class NotSupported(MhcError):
    """MHC_ERROR_NOT_SUPPORTED: dtype, hc_mult, shape, backend or architecture."""


class DeviceMismatch(MhcError):
    """MHC_ERROR_DEVICE_MISMATCH: a tensor lives on another device than the context."""


class WorkspaceTooSmall(MhcError):
    """MHC_ERROR_WORKSPACE_TOO_SMALL: the message says how many bytes are needed."""


class OutOfMemory(MhcError, MemoryError):
    """MHC_ERROR_OUT_OF_MEMORY."""


class CudaError(MhcError):
    """MHC_ERROR_CUDA: a CUDA runtime call failed; the message names it."""


class VersionMismatch(MhcError):
    """MHC_ERROR_VERSION_MISMATCH: struct size/version, or library/binding major version."""


class InternalError(MhcError):
    """MHC_ERROR_INTERNAL."""


_BY_STATUS = {
    _mhc.MHC_ERROR_INVALID_ARGUMENT: InvalidArgument,
    _mhc.MHC_ERROR_INVALID_HANDLE: InvalidHandle,
    _mhc.MHC_ERROR_NOT_SUPPORTED: NotSupported,
    _mhc.MHC_ERROR_DEVICE_MISMATCH: DeviceMismatch,
    _mhc.MHC_ERROR_WORKSPACE_TOO_SMALL: WorkspaceTooSmall,
    _mhc.MHC_ERROR_OUT_OF_MEMORY: OutOfMemory,
    _mhc.MHC_ERROR_CUDA: CudaError,
    _mhc.MHC_ERROR_VERSION_MISMATCH: VersionMismatch,
    _mhc.MHC_ERROR_INTERNAL: InternalError,
}
for _status, _cls in _BY_STATUS.items():
    _cls.status = _status


def error_from_status(status: int, message: str | None = None) -> MhcError:
    """The exception for a status; the message defaults to mhc_last_error_message(), which
    must then be read on the thread of the failing call, right after it (this function is
    called right after it). Unknown (newer) statuses give a plain MhcError."""
    if message is None:
        message = _mhc.mhc_last_error_message()
    return _BY_STATUS.get(int(status), MhcError)(status, message)


def check(status: int) -> None:
    """Raises the typed exception of a non-zero status, with the library's message."""
    if status:
        raise error_from_status(status)
