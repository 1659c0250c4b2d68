// Package cudamem is a minimal CUDA runtime shim for the tests and the layer-loop example of
// the mhc Go binding: device allocation, copies, synchronisation. It is not a CUDA binding;
// real programs take device pointers and streams from the CUDA binding they already use.
//
// By default it is built without CUDA and every function returns ErrNoCUDA. Build with the
// tag mhc_cuda and the CUDA runtime on cgo's paths to enable it, e.g.
//
//	CGO_CFLAGS=-I/usr/local/cuda/include \
//	CGO_LDFLAGS="-L/usr/local/cuda/lib64 -lcudart_static -ldl -lrt -lpthread" \
//	go test -tags mhc_cuda ./...
package cudamem

import "errors"

// ErrNoCUDA is returned by every function of a build without the mhc_cuda tag.
var ErrNoCUDA = errors.New("cudamem: built without CUDA (build with -tags mhc_cuda)")
