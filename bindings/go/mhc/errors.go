package mhc

import "errors"

// Status is an mhc_status_t: the result code of every library call. Values mirror the
// MHC_SUCCESS / MHC_ERROR_* macros of mhc.h (a test keeps them in step) and are append-only.
//
// Status implements error so that errors.Is(err, mhc.StatusDeviceMismatch) works on any
// error returned by this package.
type Status int32

const (
	StatusSuccess           Status = 0 // MHC_SUCCESS
	StatusInvalidArgument   Status = 1 // MHC_ERROR_INVALID_ARGUMENT: NULL, bad shape/stride/overlap/value
	StatusInvalidHandle     Status = 2 // MHC_ERROR_INVALID_HANDLE: NULL, destroyed or closed context
	StatusNotSupported      Status = 3 // MHC_ERROR_NOT_SUPPORTED: dtype, hc_mult, shape or arch
	StatusDeviceMismatch    Status = 4 // MHC_ERROR_DEVICE_MISMATCH: tensor on another device
	StatusWorkspaceTooSmall Status = 5 // MHC_ERROR_WORKSPACE_TOO_SMALL: message says the bytes needed
	StatusOutOfMemory       Status = 6 // MHC_ERROR_OUT_OF_MEMORY
	StatusCUDA              Status = 7 // MHC_ERROR_CUDA: a CUDA runtime call failed
	StatusVersionMismatch   Status = 8 // MHC_ERROR_VERSION_MISMATCH: struct size/version or library version
	StatusInternal          Status = 9 // MHC_ERROR_INTERNAL
)

// String returns the library's name of the status ("MHC_ERROR_INVALID_ARGUMENT", ...);
// unknown values give "MHC_ERROR_UNKNOWN".
func (s Status) String() string { return cStatusString(s) }

// Error makes a Status usable as an error and as an errors.Is target.
func (s Status) Error() string { return s.String() }

// Error is the error returned by every failing call of this package.
//
// Message is the library's detail for the failed call (it names the offending argument and
// the expected and actual values), read on the same OS thread as the call. Errors that the
// Go layer detects before calling C (a slice shorter than its shape, a closed context) use
// the Status the library would have used and a message written by this package.
type Error struct {
	Status  Status
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "mhc: " + e.Status.String()
	}
	return "mhc: " + e.Status.String() + ": " + e.Message
}

// Unwrap returns the Status, so errors.Is(err, mhc.StatusInvalidArgument) and
// errors.As(err, &status) see through the *Error.
func (e *Error) Unwrap() error { return e.Status }

// Is reports whether target is an *Error with the same Status (and, if target has one, the
// same Message). Comparing with a Status goes through Unwrap.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok || t == nil {
		return false
	}
	return t.Status == e.Status && (t.Message == "" || t.Message == e.Message)
}

// StatusOf returns the Status carried by err: StatusSuccess for nil, the status of an
// *Error or Status anywhere in err's chain, and StatusInternal for any other error.
func StatusOf(err error) Status {
	if err == nil {
		return StatusSuccess
	}
	var s Status
	if errors.As(err, &s) {
		return s
	}
	return StatusInternal
}

func goError(s Status, msg string) error { return &Error{Status: s, Message: msg} }
