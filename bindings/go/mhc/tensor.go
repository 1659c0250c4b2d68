package mhc

import (
	"fmt"
	"unsafe"
)

// DType is a DLPack data type (DLDataType: code, bits, lanes) packed into one comparable
// value. The library uses BFloat16 for activations and Float32 for mixes and weights.
type DType uint32

// DLPack type codes (DLDataTypeCode) used by MakeDType.
const (
	CodeInt    uint8 = 0 // kDLInt
	CodeUInt   uint8 = 1 // kDLUInt
	CodeFloat  uint8 = 2 // kDLFloat
	CodeBfloat uint8 = 4 // kDLBfloat
)

const (
	BFloat16 DType = DType(CodeBfloat) | 16<<8 | 1<<16 // kDLBfloat, 16 bits, 1 lane
	Float32  DType = DType(CodeFloat) | 32<<8 | 1<<16  // kDLFloat, 32 bits, 1 lane
)

// MakeDType builds any DLPack data type, e.g. to pass a tensor of a type the library does
// not support (it answers StatusNotSupported).
func MakeDType(code, bits uint8, lanes uint16) DType {
	return DType(code) | DType(bits)<<8 | DType(lanes)<<16
}

func (d DType) Code() uint8   { return uint8(d) }
func (d DType) Bits() uint8   { return uint8(d >> 8) }
func (d DType) Lanes() uint16 { return uint16(d >> 16) }

func (d DType) String() string {
	switch d {
	case BFloat16:
		return "bfloat16"
	case Float32:
		return "float32"
	}
	return fmt.Sprintf("dtype(code %d, bits %d, lanes %d)", d.Code(), d.Bits(), d.Lanes())
}

// DeviceType is a DLPack DLDeviceType.
type DeviceType int32

const (
	DeviceCPU         DeviceType = 1  // kDLCPU: host memory (CPU backend)
	DeviceCUDA        DeviceType = 2  // kDLCUDA: device memory (CUDA backend)
	DeviceCUDAHost    DeviceType = 3  // kDLCUDAHost: pinned host memory (both backends)
	DeviceCUDAManaged DeviceType = 13 // kDLCUDAManaged: managed memory (CUDA backend)
)

// Device is a DLPack DLDevice.
type Device struct {
	Type DeviceType
	ID   int32
}

// Tensor is a borrowed, dense row-major view of memory in DLPack terms: data, dtype, device
// and shape. It never owns or copies the data. A Tensor over a Go slice (HostBF16, HostF32)
// keeps that slice reachable for as long as the Tensor is.
//
// The zero Tensor stands for "no tensor" (NULL in C): pass it as Weights.NormWeight to skip
// the fused RMSNorm. Any other argument left zero is reported by the library as a missing
// tensor.
//
// A constructor given inconsistent arguments (a slice whose length does not match the
// shape, a negative dimension, more than 8 dimensions) returns a Tensor that carries the
// error: Err reports it, and every operator given that Tensor returns it without calling C.
type Tensor struct {
	ok    bool
	err   *Error
	dtype DType
	dev   Device
	ndim  int32
	shape [maxDims]int64
	host  unsafe.Pointer // data of a Go slice (CPU backend), or nil
	addr  uintptr        // data address of non-Go memory when host is nil
}

// HostBF16 views a Go slice of bfloat16 values ([]BF16 or []uint16 raw bits) as a host
// tensor of the given shape, for the CPU backend. len(data) must equal the product of shape.
func HostBF16[E ~uint16](data []E, shape ...int64) Tensor {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	return hostTensor("HostBF16", p, len(data), BFloat16, shape)
}

// HostF32 views a Go slice of float32 values as a host tensor of the given shape, for the
// CPU backend. len(data) must equal the product of shape.
func HostF32[E ~float32](data []E, shape ...int64) Tensor {
	var p unsafe.Pointer
	if len(data) > 0 {
		p = unsafe.Pointer(&data[0])
	}
	return hostTensor("HostF32", p, len(data), Float32, shape)
}

func hostTensor(fn string, p unsafe.Pointer, n int, dt DType, shape []int64) Tensor {
	t, err := describe(fn, dt, Device{Type: DeviceCPU}, shape)
	if err != nil {
		return Tensor{err: err}
	}
	numel := int64(1)
	for i, d := range shape {
		if d < 0 {
			return Tensor{err: &Error{StatusInvalidArgument,
				fmt.Sprintf("%s: dimension %d of shape %v is negative", fn, i, shape)}}
		}
		if d != 0 && numel > (1<<62)/d {
			return Tensor{err: &Error{StatusInvalidArgument,
				fmt.Sprintf("%s: shape %v is too large", fn, shape)}}
		}
		numel *= d
	}
	if int64(n) != numel {
		return Tensor{err: &Error{StatusInvalidArgument,
			fmt.Sprintf("%s: slice has %d elements, shape %v needs %d", fn, n, shape, numel)}}
	}
	t.host = p
	return t
}

// NewTensor views memory that Go does not manage (CUDA device memory, pinned or C-allocated
// host memory) from its raw parts: address, dtype, device and shape. ptr must never be a Go
// pointer converted to uintptr: the garbage collector would not keep that memory alive. The
// library validates the shape, dtype and device; with WithCheckPointers it also checks where
// the memory really lives.
func NewTensor(ptr uintptr, dtype DType, dev Device, shape ...int64) Tensor {
	t, err := describe("NewTensor", dtype, dev, shape)
	if err != nil {
		return Tensor{err: err}
	}
	t.addr = ptr
	return t
}

// DeviceTensor views CUDA device memory of GPU `device` (kDLCUDA), e.g. from cudaMalloc or
// another framework's tensor, for the CUDA backend. See NewTensor.
func DeviceTensor(ptr uintptr, dtype DType, device int, shape ...int64) Tensor {
	return NewTensor(ptr, dtype, Device{Type: DeviceCUDA, ID: int32(device)}, shape...)
}

func describe(fn string, dtype DType, dev Device, shape []int64) (Tensor, *Error) {
	if len(shape) > maxDims {
		return Tensor{}, &Error{StatusInvalidArgument,
			fmt.Sprintf("%s: %d dimensions, at most %d are supported", fn, len(shape), maxDims)}
	}
	t := Tensor{ok: true, dtype: dtype, dev: dev, ndim: int32(len(shape))}
	copy(t.shape[:], shape)
	return t, nil
}

// Err returns the construction error of t, or nil.
func (t Tensor) Err() error {
	if t.err == nil {
		return nil
	}
	return t.err
}

// IsZero reports whether t is the zero Tensor ("no tensor").
func (t Tensor) IsZero() bool { return !t.ok && t.err == nil }

// Shape returns a copy of the shape.
func (t Tensor) Shape() []int64 { return append([]int64(nil), t.shape[:t.ndim]...) }

// DType returns the data type.
func (t Tensor) DType() DType { return t.dtype }

// Device returns the DLPack device.
func (t Tensor) Device() Device { return t.dev }

// argError prefixes a construction error with the operator argument's name.
func (t *Tensor) argError(name string) error {
	if t.err == nil {
		return nil
	}
	return &Error{Status: t.err.Status, Message: name + ": " + t.err.Message}
}

// Workspace is the scratch memory of an operator call: a Go byte slice for the CPU backend
// or a device allocation for the CUDA backend. Size it with Context.WorkspaceSize (0 on the
// CPU backend, where the zero Workspace is all you need). A workspace may be reused by later
// calls on the same stream, never by concurrent calls.
type Workspace struct {
	host unsafe.Pointer
	addr uintptr
	size int
}

// HostWorkspace uses buf as a host workspace. The library needs it 16-byte aligned when a
// non-zero size is required; NewHostWorkspace guarantees that.
func HostWorkspace(buf []byte) Workspace {
	if len(buf) == 0 {
		return Workspace{}
	}
	return Workspace{host: unsafe.Pointer(&buf[0]), size: len(buf)}
}

// NewHostWorkspace allocates a 16-byte aligned host workspace of n bytes.
func NewHostWorkspace(n int) Workspace {
	if n <= 0 {
		return Workspace{}
	}
	buf := make([]byte, n+15)
	off := int((16 - uintptr(unsafe.Pointer(&buf[0]))%16) % 16)
	return HostWorkspace(buf[off : off+n])
}

// DeviceWorkspace uses `bytes` bytes of device memory at ptr (e.g. from cudaMalloc) as the
// workspace of CUDA-backend calls.
func DeviceWorkspace(ptr uintptr, bytes int) Workspace {
	return Workspace{addr: ptr, size: bytes}
}

// Size returns the workspace size in bytes.
func (w Workspace) Size() int { return w.size }

// Stream is a CUDA stream (cudaStream_t / CUstream) as an integer; 0 is the legacy default
// stream. The CPU backend ignores it. Obtain it from whatever CUDA binding you use.
type Stream uintptr

// DefaultStream is the legacy default CUDA stream.
const DefaultStream Stream = 0
