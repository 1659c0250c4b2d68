//go:build !mhc_cuda

package cudamem

import "unsafe"

// Enabled reports whether this build can drive a GPU.
const Enabled = false

func Malloc(bytes int) (uintptr, error)                           { return 0, ErrNoCUDA }
func Free(ptr uintptr) error                                      { return ErrNoCUDA }
func CopyToDevice(dst uintptr, src unsafe.Pointer, n int) error   { return ErrNoCUDA }
func CopyFromDevice(dst unsafe.Pointer, src uintptr, n int) error { return ErrNoCUDA }
func Synchronize() error                                          { return ErrNoCUDA }
func StreamCreate() (uintptr, error)                              { return 0, ErrNoCUDA }
func StreamSynchronize(s uintptr) error                           { return ErrNoCUDA }
func StreamDestroy(s uintptr) error                               { return ErrNoCUDA }
func DeviceCount() (int, error)                                   { return 0, ErrNoCUDA }
