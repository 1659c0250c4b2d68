//! Status codes and the error type.
use std::ffi::CStr;
use std::fmt;

use mhc_sys as sys;

/// A status code of the C API (`mhc_status_t`, the `MHC_*` constants of `mhc.h`).
///
/// Codes are append-only in the C library; a code this crate does not know (from a newer
/// library) is kept as [`Status::Unknown`] with its raw value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// `MHC_SUCCESS` (never the status of an [`Error`]).
    Success,
    /// `MHC_ERROR_INVALID_ARGUMENT`: bad shape, stride, overlap or parameter value.
    InvalidArgument,
    /// `MHC_ERROR_INVALID_HANDLE`: NULL or destroyed context.
    InvalidHandle,
    /// `MHC_ERROR_NOT_SUPPORTED`: dtype, hc_mult, shape, backend or architecture.
    NotSupported,
    /// `MHC_ERROR_DEVICE_MISMATCH`: a tensor is not on the context's device.
    DeviceMismatch,
    /// `MHC_ERROR_WORKSPACE_TOO_SMALL`: the message says how many bytes are needed.
    WorkspaceTooSmall,
    /// `MHC_ERROR_OUT_OF_MEMORY`.
    OutOfMemory,
    /// `MHC_ERROR_CUDA`: a CUDA runtime call failed; the message names it.
    Cuda,
    /// `MHC_ERROR_VERSION_MISMATCH`: struct size/version or library version mismatch.
    VersionMismatch,
    /// `MHC_ERROR_INTERNAL`.
    Internal,
    /// A code this version of the crate does not know.
    Unknown(i32),
}

impl Status {
    /// The status of a raw `mhc_status_t`.
    pub fn from_raw(code: i32) -> Status {
        match code {
            sys::MHC_SUCCESS => Status::Success,
            sys::MHC_ERROR_INVALID_ARGUMENT => Status::InvalidArgument,
            sys::MHC_ERROR_INVALID_HANDLE => Status::InvalidHandle,
            sys::MHC_ERROR_NOT_SUPPORTED => Status::NotSupported,
            sys::MHC_ERROR_DEVICE_MISMATCH => Status::DeviceMismatch,
            sys::MHC_ERROR_WORKSPACE_TOO_SMALL => Status::WorkspaceTooSmall,
            sys::MHC_ERROR_OUT_OF_MEMORY => Status::OutOfMemory,
            sys::MHC_ERROR_CUDA => Status::Cuda,
            sys::MHC_ERROR_VERSION_MISMATCH => Status::VersionMismatch,
            sys::MHC_ERROR_INTERNAL => Status::Internal,
            other => Status::Unknown(other),
        }
    }

    /// The raw `mhc_status_t` value.
    pub fn to_raw(self) -> i32 {
        match self {
            Status::Success => sys::MHC_SUCCESS,
            Status::InvalidArgument => sys::MHC_ERROR_INVALID_ARGUMENT,
            Status::InvalidHandle => sys::MHC_ERROR_INVALID_HANDLE,
            Status::NotSupported => sys::MHC_ERROR_NOT_SUPPORTED,
            Status::DeviceMismatch => sys::MHC_ERROR_DEVICE_MISMATCH,
            Status::WorkspaceTooSmall => sys::MHC_ERROR_WORKSPACE_TOO_SMALL,
            Status::OutOfMemory => sys::MHC_ERROR_OUT_OF_MEMORY,
            Status::Cuda => sys::MHC_ERROR_CUDA,
            Status::VersionMismatch => sys::MHC_ERROR_VERSION_MISMATCH,
            Status::Internal => sys::MHC_ERROR_INTERNAL,
            Status::Unknown(code) => code,
        }
    }

    /// The library's name of the status (`mhc_status_string`), e.g.
    /// `"MHC_ERROR_INVALID_ARGUMENT"`; `"MHC_ERROR_UNKNOWN"` for unknown codes.
    pub fn name(self) -> &'static str {
        // SAFETY: mhc_status_string is thread-safe and returns a pointer to a static,
        // NUL-terminated string for every input, never NULL.
        let s = unsafe { CStr::from_ptr(sys::mhc_status_string(self.to_raw())) };
        s.to_str().unwrap_or("MHC_ERROR_UNKNOWN")
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error of the library (or of this crate's argument checks): a [`Status`] and the
/// human-readable message, which names the offending argument and the expected and actual
/// values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure (never [`Status::Success`]).
    pub status: Status,
    /// The detail: `mhc_last_error_message()` of the failed call, or the text of a check done
    /// in Rust before calling the library.
    pub message: String,
}

impl Error {
    /// An error with the given status and message.
    pub fn new(status: Status, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// The error of a failed library call: reads the calling thread's
    /// `mhc_last_error_message()`, which must happen before any other `mhc_*` call on this
    /// thread.
    pub(crate) fn from_last(code: i32) -> Error {
        // SAFETY: never NULL; valid until the next mhc_* call on this thread, and it is copied
        // before any other call.
        let message = unsafe { CStr::from_ptr(sys::mhc_last_error_message()) }
            .to_string_lossy()
            .into_owned();
        Error {
            status: Status::from_raw(code),
            message,
        }
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{}: {}", self.status, self.message)
        }
    }
}

impl std::error::Error for Error {}

/// `Result<T, mhc::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// Ok for `MHC_SUCCESS`, the thread's last error otherwise.
pub(crate) fn check(code: sys::mhc_status_t) -> Result<()> {
    if code == sys::MHC_SUCCESS {
        Ok(())
    } else {
        Err(Error::from_last(code))
    }
}
