//go:build mhc_cuda

package mhc

// CUDA-backend tests of the binding: device tensors, device workspaces, streams, and the
// device-side errors. Built only with -tags mhc_cuda (bindings/go/mhc/cudamem links the CUDA
// runtime for allocations); skipped where no GPU is usable.

import (
	"fmt"
	"runtime"
	"testing"
	"unsafe"

	"github.com/mhc-project/mhc/bindings/go/mhc/cudamem"
)

// devMem uploads host slices into device memory freed at the end of the test.
type devMem struct {
	t    *testing.T
	ptrs []uintptr
}

func newDevMem(t *testing.T) *devMem {
	d := &devMem{t: t}
	t.Cleanup(func() {
		for _, p := range d.ptrs {
			_ = cudamem.Free(p)
		}
	})
	return d
}

func (d *devMem) alloc(bytes int) uintptr {
	p, err := cudamem.Malloc(bytes)
	if err != nil {
		d.t.Fatal(err)
	}
	d.ptrs = append(d.ptrs, p)
	return p
}

func (d *devMem) bf16(h []BF16, shape ...int64) Tensor {
	p := d.alloc(2 * len(h))
	if len(h) > 0 {
		if err := cudamem.CopyToDevice(p, unsafe.Pointer(&h[0]), 2*len(h)); err != nil {
			d.t.Fatal(err)
		}
	}
	return DeviceTensor(p, BFloat16, 0, shape...)
}

func (d *devMem) f32(h []float32, shape ...int64) Tensor {
	p := d.alloc(4 * len(h))
	if len(h) > 0 {
		if err := cudamem.CopyToDevice(p, unsafe.Pointer(&h[0]), 4*len(h)); err != nil {
			d.t.Fatal(err)
		}
	}
	return DeviceTensor(p, Float32, 0, shape...)
}

func (d *devMem) readBF16(t Tensor, n int) []BF16 {
	h := make([]BF16, n)
	if n > 0 {
		if err := cudamem.CopyFromDevice(unsafe.Pointer(&h[0]), t.addr, 2*n); err != nil {
			d.t.Fatal(err)
		}
	}
	return h
}

func (d *devMem) readF32(t Tensor, n int) []float32 {
	h := make([]float32, n)
	if n > 0 {
		if err := cudamem.CopyFromDevice(unsafe.Pointer(&h[0]), t.addr, 4*n); err != nil {
			d.t.Fatal(err)
		}
	}
	return h
}

func (d *devMem) weights(w hostWeights) Weights {
	out := Weights{Fn: d.f32(w.fn, 24, int64(4*w.H)), Scale: d.f32(w.scale, 3), Base: d.f32(w.base, 24)}
	if w.norm != nil {
		out.NormWeight = d.bf16(w.norm, int64(w.H))
	}
	return out
}

func newCUDA(t *testing.T, opts ...Option) *Context {
	t.Helper()
	if n, err := cudamem.DeviceCount(); err != nil || n == 0 {
		t.Skipf("no CUDA device: %v", err)
	}
	ctx, err := NewContext(BackendCUDA, 0, opts...)
	if err != nil {
		t.Skipf("NewContext(BackendCUDA): %v", err)
	}
	t.Cleanup(func() { ctx.Close() })
	return ctx
}

func workspace(t *testing.T, ctx *Context, d *devMem, T, H int64) Workspace {
	n := 0
	for _, op := range []Op{OpHcPre, OpHcPostPre, OpHcHead, OpHcPost} {
		b, err := ctx.WorkspaceSize(op, nil, T, H)
		if err != nil {
			t.Fatal(err)
		}
		if b > n {
			n = b
		}
	}
	if n == 0 {
		return Workspace{}
	}
	return DeviceWorkspace(d.alloc(n), n)
}

func TestCUDAOpsMatchReference(t *testing.T) {
	ctx := newCUDA(t)
	stream, err := cudamem.StreamCreate()
	if err != nil {
		t.Fatal(err)
	}
	defer cudamem.StreamDestroy(stream)
	for _, norm := range []bool{false, true} {
		for _, s := range []struct{ T, H int }{{1, 4096}, {4, 7168}, {16, 512}, {33, 7}, {300, 256}} {
			t.Run(fmt.Sprintf("T%d_H%d_norm%v", s.T, s.H, norm), func(t *testing.T) {
				d := newDevMem(t)
				r := &testRNG{uint64(31*s.T + s.H)}
				T, H := int64(s.T), int64(s.H)
				x, res, post, comb := r.postInputs(s.T, s.H)
				hw := randWeights(r, s.H, norm)
				w := d.weights(hw)
				fnHead := r.f32s(4*4*s.H, 0.05, 0)
				scaleHead := r.f32s(1, 0.1, 1)
				baseHead := r.f32s(4, 0.1, 0)
				ws := workspace(t, ctx, d, T, H)
				p := DefaultParams()
				st := Stream(stream)

				xT, resT := d.bf16(x, T, H), d.bf16(res, T, 4, H)
				postT, combT := d.f32(post, T, 4), d.f32(comb, T, 4, 4)
				// fused boundary
				fRes, fPost := d.bf16(make([]BF16, s.T*4*s.H), T, 4, H), d.f32(make([]float32, s.T*4), T, 4)
				fComb, fLi := d.f32(make([]float32, s.T*16), T, 4, 4), d.bf16(make([]BF16, s.T*s.H), T, H)
				if err := ctx.HcPostPre(&p, w, xT, resT, postT, combT, fRes, fPost, fComb, fLi, ws, st); err != nil {
					t.Fatal(err)
				}
				// unfused
				uRes, uPost := d.bf16(make([]BF16, s.T*4*s.H), T, 4, H), d.f32(make([]float32, s.T*4), T, 4)
				uComb, uLi := d.f32(make([]float32, s.T*16), T, 4, 4), d.bf16(make([]BF16, s.T*s.H), T, H)
				if err := ctx.HcPost(xT, resT, postT, combT, uRes, st); err != nil {
					t.Fatal(err)
				}
				if err := ctx.HcPre(&p, w, uRes, uPost, uComb, uLi, ws, st); err != nil {
					t.Fatal(err)
				}
				out := d.bf16(make([]BF16, s.T*s.H), T, H)
				if err := ctx.HcHead(&p, d.f32(fnHead, 4, 4*H), d.f32(scaleHead, 1), d.f32(baseHead, 4),
					fRes, out, ws, st); err != nil {
					t.Fatal(err)
				}
				if err := cudamem.StreamSynchronize(stream); err != nil {
					t.Fatal(err)
				}
				gRes, gLi := d.readBF16(fRes, s.T*4*s.H), d.readBF16(fLi, s.T*s.H)
				gPost, gComb := d.readF32(fPost, s.T*4), d.readF32(fComb, s.T*16)
				sameBF16(t, "residual_out", gRes, d.readBF16(uRes, s.T*4*s.H))
				sameF32(t, "post_mix_out", gPost, d.readF32(uPost, s.T*4))
				sameF32(t, "comb_mix_out", gComb, d.readF32(uComb, s.T*16))
				sameBF16(t, "layer_input_out", gLi, d.readBF16(uLi, s.T*s.H))

				checkBF16(t, "residual_out", gRes, refPost(x, res, post, comb, s.T, s.H))
				wp, wc, wl := refPre(gRes, hw.fn, hw.scale, hw.base, hw.norm, p, s.T, s.H)
				checkMixes(t, "post_mix_out", gPost, wp)
				checkMixes(t, "comb_mix_out", gComb, wc)
				checkBF16(t, "layer_input_out", gLi, wl)
				checkBF16(t, "head out", d.readBF16(out, s.T*s.H),
					refHead(gRes, fnHead, scaleHead, baseHead, p, s.T, s.H))
			})
		}
	}
}

func TestCUDABatchInvariant(t *testing.T) {
	ctx := newCUDA(t)
	d := newDevMem(t)
	r := &testRNG{4242}
	const T, H = 40, 1024
	res := r.bf16s(T*4*H, 1)
	w := d.weights(randWeights(r, H, false))
	p := DefaultParams()
	p.BatchInvariant = true
	ws := workspace(t, ctx, d, T, H)
	post, comb, li := d.f32(make([]float32, T*4), T, 4), d.f32(make([]float32, T*16), T, 4, 4),
		d.bf16(make([]BF16, T*H), T, H)
	if err := ctx.HcPre(&p, w, d.bf16(res, T, 4, H), post, comb, li, ws, 0); err != nil {
		t.Fatal(err)
	}
	if err := cudamem.Synchronize(); err != nil {
		t.Fatal(err)
	}
	allPost, allComb, allLi := d.readF32(post, T*4), d.readF32(comb, T*16), d.readBF16(li, T*H)
	for _, tok := range []int{0, 17, T - 1} {
		post1, comb1, li1 := d.f32(make([]float32, 4), 1, 4), d.f32(make([]float32, 16), 1, 4, 4),
			d.bf16(make([]BF16, H), 1, H)
		if err := ctx.HcPre(&p, w, d.bf16(res[tok*4*H:(tok+1)*4*H], 1, 4, H), post1, comb1, li1, ws, 0); err != nil {
			t.Fatal(err)
		}
		if err := cudamem.Synchronize(); err != nil {
			t.Fatal(err)
		}
		sameF32(t, "post_mix", allPost[tok*4:(tok+1)*4], d.readF32(post1, 4))
		sameF32(t, "comb_mix", allComb[tok*16:(tok+1)*16], d.readF32(comb1, 16))
		sameBF16(t, "layer_input", allLi[tok*H:(tok+1)*H], d.readBF16(li1, H))
	}
}

func TestCUDAErrors(t *testing.T) {
	ctx := newCUDA(t)
	d := newDevMem(t)
	r := &testRNG{5}
	const T, H = 4, 256
	x, res := d.bf16(r.bf16s(T*H, 1), T, H), d.bf16(r.bf16s(T*4*H, 1), T, 4, H)
	post, comb := d.f32(r.f32s(T*4, 1, 1), T, 4), d.f32(r.f32s(T*16, 0.5, 0.5), T, 4, 4)
	out := d.bf16(make([]BF16, T*4*H), T, 4, H)

	if b, dev, err := ctx.Backend(); err != nil || b != BackendCUDA || dev != 0 {
		t.Errorf("Backend() = %v %d %v", b, dev, err)
	}
	// a host slice given to the CUDA backend
	hostX := HostBF16(make([]BF16, T*H), T, H)
	wantError(t, ctx.HcPost(hostX, res, post, comb, out, 0), StatusDeviceMismatch,
		"x: the CUDA backend needs kDLCUDA")
	// a tensor on another device id
	other := NewTensor(x.addr, BFloat16, Device{Type: DeviceCUDA, ID: 1}, T, H)
	wantError(t, ctx.HcPost(other, res, post, comb, out, 0), StatusDeviceMismatch,
		"x: expected CUDA device 0 (the context's), got device 1")
	// T = 0 on the device
	z := DeviceTensor(0, BFloat16, 0, 0, H)
	if err := ctx.HcPost(z, DeviceTensor(0, BFloat16, 0, 0, 4, H), DeviceTensor(0, Float32, 0, 0, 4),
		DeviceTensor(0, Float32, 0, 0, 4, 4), DeviceTensor(0, BFloat16, 0, 0, 4, H), 0); err != nil {
		t.Errorf("T=0: %v", err)
	}
	// workspace too small
	w := d.weights(randWeights(r, H, false))
	need, err := ctx.WorkspaceSize(OpHcPostPre, nil, T, H)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hc_post_pre workspace for T=%d H=%d: %d bytes", T, H, need)
	if need > 0 {
		small := DeviceWorkspace(d.alloc(need), need-1)
		err := ctx.HcPostPre(nil, w, x, res, post, comb, out, d.f32(make([]float32, T*4), T, 4),
			d.f32(make([]float32, T*16), T, 4, 4), d.bf16(make([]BF16, T*H), T, H), small, 0)
		wantError(t, err, StatusWorkspaceTooSmall, fmt.Sprintf("need at least %d bytes", need))
	}
	if err := cudamem.Synchronize(); err != nil {
		t.Fatal(err)
	}
}

func TestCUDACheckPointers(t *testing.T) {
	ctx := newCUDA(t, WithCheckPointers(true))
	d := newDevMem(t)
	r := &testRNG{6}
	const T, H = 2, 64
	res := d.bf16(r.bf16s(T*4*H, 1), T, 4, H)
	post, comb := d.f32(r.f32s(T*4, 1, 1), T, 4), d.f32(r.f32s(T*16, 0.5, 0.5), T, 4, 4)
	out := d.bf16(make([]BF16, T*4*H), T, 4, H)
	// Pageable host memory labelled as device memory: the check must catch it before any
	// kernel reads it. (Deliberate misuse of a Go address, kept alive below.)
	host := make([]BF16, T*H)
	lie := DeviceTensor(uintptr(unsafe.Pointer(&host[0])), BFloat16, 0, T, H)
	wantError(t, ctx.HcPost(lie, res, post, comb, out, 0), StatusDeviceMismatch, "x: ")
	runtime.KeepAlive(host)
	// and real device memory passes
	if err := ctx.HcPost(d.bf16(r.bf16s(T*H, 1), T, H), res, post, comb, out, 0); err != nil {
		t.Fatal(err)
	}
	if err := cudamem.Synchronize(); err != nil {
		t.Fatal(err)
	}
}

// Goroutines sharing one CUDA context, each on its own stream and buffers.
func TestCUDAConcurrentStreams(t *testing.T) {
	ctx := newCUDA(t)
	const G, iters, T, H = 8, 10, 8, 1024
	wait := startGoroutines(t, G, func(g int) error {
		st, err := cudamem.StreamCreate()
		if err != nil {
			return err
		}
		defer cudamem.StreamDestroy(st)
		var ptrs []uintptr
		defer func() {
			for _, p := range ptrs {
				_ = cudamem.Free(p)
			}
		}()
		up := func(h unsafe.Pointer, n int) uintptr {
			p, _ := cudamem.Malloc(n)
			ptrs = append(ptrs, p)
			_ = cudamem.CopyToDevice(p, h, n)
			return p
		}
		r := &testRNG{uint64(g)}
		x, res := r.bf16s(T*H, 1), r.bf16s(T*4*H, 1)
		post, comb := r.f32s(T*4, 1, 1), r.f32s(T*16, 0.5, 0.5)
		xT := DeviceTensor(up(unsafe.Pointer(&x[0]), 2*len(x)), BFloat16, 0, T, H)
		resT := DeviceTensor(up(unsafe.Pointer(&res[0]), 2*len(res)), BFloat16, 0, T, 4, H)
		postT := DeviceTensor(up(unsafe.Pointer(&post[0]), 4*len(post)), Float32, 0, T, 4)
		combT := DeviceTensor(up(unsafe.Pointer(&comb[0]), 4*len(comb)), Float32, 0, T, 4, 4)
		outP := up(unsafe.Pointer(&res[0]), 2*len(res))
		outT := DeviceTensor(outP, BFloat16, 0, T, 4, H)
		got := make([]BF16, T*4*H)
		want := refPost(x, res, post, comb, T, H)
		for i := 0; i < iters; i++ {
			if err := ctx.HcPost(xT, resT, postT, combT, outT, Stream(st)); err != nil {
				return err
			}
			if err := cudamem.StreamSynchronize(st); err != nil {
				return err
			}
			if err := cudamem.CopyFromDevice(unsafe.Pointer(&got[0]), outP, 2*len(got)); err != nil {
				return err
			}
			for k := range got {
				if !bf16Close(got[k], want[k]) {
					return fmt.Errorf("goroutine %d iteration %d: element %d = %g, reference %g", g, i, k,
						got[k].Float32(), want[k].v)
				}
			}
		}
		return nil
	})
	wait()
}
