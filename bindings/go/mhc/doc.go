// Package mhc is the Go binding of libmhc, the C library of manifold-constrained
// Hyper-Connection (mHC) operators of DeepSeek-V4: hc_pre, hc_post, the fused boundary
// hc_post_pre and hc_head, on a CUDA backend and a CPU reference backend behind one API.
//
// The package links the installed library through pkg-config (`#cgo pkg-config: mhc`), so
// PKG_CONFIG_PATH must find mhc.pc at build time and the dynamic linker must find
// libmhc.so at run time (LD_LIBRARY_PATH, or an installed prefix in the linker's path).
//
// Usage in brief:
//
//	ctx, err := mhc.NewContext(mhc.BackendCPU, 0)
//	if err != nil { ... }
//	defer ctx.Close()
//	p := mhc.DefaultParams()
//	residual := mhc.HostBF16(res, T, 4, H)      // res []mhc.BF16 of length T*4*H
//	w := mhc.Weights{Fn: mhc.HostF32(fn, 24, 4*H), Scale: mhc.HostF32(scale, 3),
//		Base: mhc.HostF32(base, 24)}
//	err = ctx.HcPre(&p, w, residual, mhc.HostF32(post, T, 4), mhc.HostF32(comb, T, 4, 4),
//		mhc.HostBF16(li, T, H), mhc.Workspace{}, mhc.DefaultStream)
//
// Tensors are borrowed views: HostBF16 and HostF32 wrap Go slices for the CPU backend (the
// slice length must match the shape; a mismatch is reported before any C call), and
// DeviceTensor / NewTensor wrap memory Go does not manage (CUDA device memory from any CUDA
// binding) for the CUDA backend. On the CUDA backend every call is asynchronous on the given
// Stream, so device memory must stay valid until the stream work completes.
//
// Errors are *Error values carrying the library's Status and its message, which names the
// offending argument; errors.Is(err, mhc.StatusDeviceMismatch) tests the status.
//
// The binding respects the cgo pointer rules: it never stores a Go pointer in C memory and
// never passes C a pointer to Go memory that holds Go pointers (its tests run under
// GODEBUG=cgocheck=2).
package mhc
