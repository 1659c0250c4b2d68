//go:build mhc_cuda

package cudamem

/*
#include <stdint.h>
#include <cuda_runtime_api.h>

static int cm_malloc(uintptr_t *out, size_t bytes) {
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
  *out = (uintptr_t)p;
  return (int)e;
}
static int cm_free(uintptr_t p) { return (int)cudaFree((void *)p); }
static int cm_h2d(uintptr_t dst, const void *src, size_t n) {
  return (int)cudaMemcpy((void *)dst, src, n, cudaMemcpyHostToDevice);
}
static int cm_d2h(void *dst, uintptr_t src, size_t n) {
  return (int)cudaMemcpy(dst, (const void *)src, n, cudaMemcpyDeviceToHost);
}
static int cm_sync(void) { return (int)cudaDeviceSynchronize(); }
static int cm_stream_create(uintptr_t *out) {
  cudaStream_t s = NULL;
  cudaError_t e = cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  *out = (uintptr_t)s;
  return (int)e;
}
static int cm_stream_sync(uintptr_t s) { return (int)cudaStreamSynchronize((cudaStream_t)s); }
static int cm_stream_destroy(uintptr_t s) { return (int)cudaStreamDestroy((cudaStream_t)s); }
static int cm_device_count(int *n) { return (int)cudaGetDeviceCount(n); }
static const char *cm_error_name(int e) { return cudaGetErrorName((cudaError_t)e); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Enabled reports whether this build can drive a GPU.
const Enabled = true

func check(what string, e C.int) error {
	if e == 0 {
		return nil
	}
	return fmt.Errorf("cudamem: %s: %s", what, C.GoString(C.cm_error_name(e)))
}

// Malloc allocates bytes of device memory on the current device (device 0 by default).
func Malloc(bytes int) (uintptr, error) {
	var p C.uintptr_t
	err := check("cudaMalloc", C.cm_malloc(&p, C.size_t(bytes)))
	return uintptr(p), err
}

// Free releases memory from Malloc.
func Free(ptr uintptr) error { return check("cudaFree", C.cm_free(C.uintptr_t(ptr))) }

// CopyToDevice copies n bytes from host memory src (may be Go memory holding no Go pointers).
func CopyToDevice(dst uintptr, src unsafe.Pointer, n int) error {
	if n == 0 {
		return nil
	}
	return check("cudaMemcpy H2D", C.cm_h2d(C.uintptr_t(dst), src, C.size_t(n)))
}

// CopyFromDevice copies n bytes from device memory src to host memory dst.
func CopyFromDevice(dst unsafe.Pointer, src uintptr, n int) error {
	if n == 0 {
		return nil
	}
	return check("cudaMemcpy D2H", C.cm_d2h(dst, C.uintptr_t(src), C.size_t(n)))
}

// Synchronize waits for all work on the current device.
func Synchronize() error { return check("cudaDeviceSynchronize", C.cm_sync()) }

// StreamCreate creates a non-blocking stream; its handle is what mhc.Stream takes.
func StreamCreate() (uintptr, error) {
	var s C.uintptr_t
	err := check("cudaStreamCreate", C.cm_stream_create(&s))
	return uintptr(s), err
}

// StreamSynchronize waits for the work on stream s.
func StreamSynchronize(s uintptr) error {
	return check("cudaStreamSynchronize", C.cm_stream_sync(C.uintptr_t(s)))
}

// StreamDestroy destroys a stream from StreamCreate.
func StreamDestroy(s uintptr) error {
	return check("cudaStreamDestroy", C.cm_stream_destroy(C.uintptr_t(s)))
}

// DeviceCount returns the number of CUDA devices.
func DeviceCount() (int, error) {
	var n C.int
	err := check("cudaGetDeviceCount", C.cm_device_count(&n))
	return int(n), err
}
