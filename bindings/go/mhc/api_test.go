package mhc

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// postCase holds the host buffers of one hc_post call.
type postCase struct {
	T, H           int64
	x, res, out    []BF16
	post, comb     []float32
	xT, resT, outT Tensor
	postT, combT   Tensor
}

func newPostCase(seed uint64, T, H int64) *postCase {
	r := &testRNG{seed}
	c := &postCase{T: T, H: H,
		x: r.bf16s(int(T*H), 1), res: r.bf16s(int(T*4*H), 1), out: make([]BF16, T*4*H),
		post: r.f32s(int(T*4), 1, 1), comb: r.f32s(int(T*16), 0.5, 0.5)}
	c.xT = HostBF16(c.x, T, H)
	c.resT = HostBF16(c.res, T, 4, H)
	c.outT = HostBF16(c.out, T, 4, H)
	c.postT = HostF32(c.post, T, 4)
	c.combT = HostF32(c.comb, T, 4, 4)
	return c
}

func (c *postCase) run(ctx *Context) error {
	return ctx.HcPost(c.xT, c.resT, c.postT, c.combT, c.outT, DefaultStream)
}

// wantError checks the status (through errors.Is) and that the message contains want.
func wantError(t *testing.T, err error, status Status, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected %v (%q), got nil", status, want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *mhc.Error", err, err)
	}
	if e.Status != status || !errors.Is(err, status) {
		t.Errorf("status %v, want %v (error: %v)", e.Status, status, err)
	}
	if StatusOf(err) != status {
		t.Errorf("StatusOf = %v, want %v", StatusOf(err), status)
	}
	if !strings.Contains(e.Message, want) {
		t.Errorf("message %q does not contain %q", e.Message, want)
	}
	if !strings.Contains(err.Error(), status.String()) || !strings.HasPrefix(err.Error(), "mhc: ") {
		t.Errorf("Error() = %q; want the status name in it", err.Error())
	}
}

// startGoroutines runs f(0), ..., f(n-1) on n goroutines at once. The returned wait blocks
// until all of them have returned, then reports each error they returned through t.Error.
func startGoroutines(t *testing.T, n int, f func(g int) error) (wait func()) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			if err := f(g); err != nil {
				errs <- err
			}
		}(g)
	}
	return func() {
		t.Helper()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	}
}

func TestErrorsBadShape(t *testing.T) {
	ctx := newCPU(t)
	c := newPostCase(1, 3, 16)
	x := make([]BF16, 3*17)
	err := ctx.HcPost(HostBF16(x, 3, 17), c.resT, c.postT, c.combT, c.outT, 0)
	wantError(t, err, StatusInvalidArgument, "x: expected shape [T, H] like residual = [3, 16], got [3, 17]")

	// a residual with 3 streams
	res3 := make([]BF16, 3*3*16)
	err = ctx.HcPost(c.xT, HostBF16(res3, 3, 3, 16), c.postT, c.combT, c.outT, 0)
	wantError(t, err, StatusInvalidArgument, "residual: expected shape [T, 4, H]")
	if errors.Is(err, StatusDeviceMismatch) {
		t.Error("errors.Is matched the wrong status")
	}
	if !errors.Is(err, &Error{Status: StatusInvalidArgument}) {
		t.Error("errors.Is(err, &Error{Status}) should match on the status")
	}
}

func TestErrorsShortSlice(t *testing.T) {
	ctx := newCPU(t)
	c := newPostCase(2, 3, 16)
	short := HostBF16(make([]BF16, 3*16-1), 3, 16)
	if short.Err() == nil {
		t.Fatal("a slice shorter than its shape must be rejected")
	}
	err := ctx.HcPost(short, c.resT, c.postT, c.combT, c.outT, 0)
	wantError(t, err, StatusInvalidArgument, "x: HostBF16: slice has 47 elements, shape [3 16] needs 48")

	long := HostF32(make([]float32, 13), 3, 4)
	err = ctx.HcPost(c.xT, c.resT, long, c.combT, c.outT, 0)
	wantError(t, err, StatusInvalidArgument, "post_mix: HostF32: slice has 13 elements")

	for _, tc := range []struct {
		t    Tensor
		want string
	}{
		{HostF32([]float32{}, -1, 4), "dimension 0 of shape [-1 4] is negative"},
		{HostF32(make([]float32, 1), 1, 1, 1, 1, 1, 1, 1, 1, 1), "9 dimensions"},
		{NewTensor(0, Float32, Device{Type: DeviceCUDA}, 1, 1, 1, 1, 1, 1, 1, 1, 1), "9 dimensions"},
		{HostBF16([]uint16{1, 2}, 3), "slice has 2 elements"},
	} {
		wantError(t, tc.t.Err(), StatusInvalidArgument, tc.want)
	}
	// the weights are checked too, before any C call
	w := Weights{Fn: HostF32(make([]float32, 10), 24, 64), Scale: HostF32(make([]float32, 3), 3),
		Base: HostF32(make([]float32, 24), 24)}
	err = ctx.HcPre(nil, w, c.resT, c.postT, c.combT, c.xT, Workspace{}, 0)
	wantError(t, err, StatusInvalidArgument, "fn: HostF32: slice has 10 elements")
}

func TestErrorsWrongDevice(t *testing.T) {
	ctx := newCPU(t)
	c := newPostCase(3, 2, 8)
	// A made-up device address: the library must reject it by its DLDevice, never touch it.
	dev := DeviceTensor(0xdead0000, BFloat16, 0, 2, 8)
	err := ctx.HcPost(dev, c.resT, c.postT, c.combT, c.outT, 0)
	wantError(t, err, StatusDeviceMismatch, "x: the CPU backend needs host memory (kDLCPU or kDLCUDAHost), got kDLCUDA")

	// Pinned host memory is accepted by the CPU backend's DLDevice check (nothing is read
	// here because a later argument fails first).
	pinned := NewTensor(0x1000, BFloat16, Device{Type: DeviceCUDAHost}, 2, 8)
	err = ctx.HcPost(pinned, c.resT, c.postT, HostF32(make([]float32, 2*4*4), 2, 4, 4),
		HostBF16(make([]BF16, 2*4*9), 2, 4, 9), 0)
	wantError(t, err, StatusInvalidArgument, "residual_out: expected shape")
}

func TestErrorsOther(t *testing.T) {
	ctx := newCPU(t)
	c := newPostCase(4, 2, 8)

	// wrong dtype
	resF := HostF32(make([]float32, 2*4*8), 2, 4, 8)
	wantError(t, ctx.HcPost(c.xT, resF, c.postT, c.combT, c.outT, 0), StatusNotSupported,
		"residual: expected dtype bfloat16")
	odd := NewTensor(0x1000, MakeDType(CodeFloat, 16, 1), Device{Type: DeviceCPU}, 2, 8)
	wantError(t, ctx.HcPost(odd, c.resT, c.postT, c.combT, c.outT, 0), StatusNotSupported,
		"x: expected dtype bfloat16")

	// missing tensor (the zero Tensor is NULL)
	wantError(t, ctx.HcPost(Tensor{}, c.resT, c.postT, c.combT, c.outT, 0), StatusInvalidArgument,
		"x: expected a DLTensor, got NULL")

	// output aliasing an input
	wantError(t, ctx.HcPost(c.xT, c.resT, c.postT, c.combT, c.resT, 0), StatusInvalidArgument,
		"residual_out: memory overlaps residual")

	// bad params
	w := randWeights(&testRNG{5}, 8, false).tensors()
	pre := func(p *Params) error {
		return ctx.HcPre(p, w, c.resT, HostF32(make([]float32, 8), 2, 4),
			HostF32(make([]float32, 32), 2, 4, 4), HostBF16(make([]BF16, 16), 2, 8), Workspace{}, 0)
	}
	if err := pre(nil); err != nil {
		t.Fatalf("nil params (defaults): %v", err)
	}
	p := DefaultParams()
	p.HcMult = 3
	wantError(t, pre(&p), StatusNotSupported, "p->hc_mult: only 4 streams are supported, got 3")
	p = DefaultParams()
	p.SinkhornIters = 0
	wantError(t, pre(&p), StatusInvalidArgument, "p->sinkhorn_iters: expected 1..1000, got 0")
	p = DefaultParams()
	p.RMSEps = -1
	wantError(t, pre(&p), StatusInvalidArgument, "p->rms_eps")

	// workspace query
	if n, err := ctx.WorkspaceSize(OpHcPostPre, nil, 128, 4096); err != nil || n != 0 {
		t.Errorf("CPU WorkspaceSize = %d, %v; want 0, nil", n, err)
	}
	_, err := ctx.WorkspaceSize(Op(42), nil, 1, 16)
	wantError(t, err, StatusInvalidArgument, "op: expected an MHC_OP_* value")
	_, err = ctx.WorkspaceSize(OpHcPre, nil, -1, 16)
	wantError(t, err, StatusInvalidArgument, "num_tokens: expected >= 0, got -1")

	// contexts
	_, err = NewContext(BackendCPU, 1)
	wantError(t, err, StatusInvalidArgument, "cfg->device_id: expected 0 for the CPU backend, got 1")
	_, err = NewContext(Backend(7), 0)
	wantError(t, err, StatusInvalidArgument, "cfg->backend")
	if gpu, err := NewContext(BackendCUDA, 0); err == nil {
		t.Log("a CUDA device is usable here")
		gpu.Close()
	} else if s := StatusOf(err); s != StatusNotSupported && s != StatusCUDA {
		t.Errorf("NewContext(BackendCUDA) on this machine: %v", err)
	} else {
		t.Logf("NewContext(BackendCUDA): %v", err)
	}

	// status strings come from the library
	if StatusSuccess.String() != "MHC_SUCCESS" || StatusWorkspaceTooSmall.String() != "MHC_ERROR_WORKSPACE_TOO_SMALL" ||
		Status(99).String() != "MHC_ERROR_UNKNOWN" {
		t.Errorf("status strings: %v %v %v", StatusSuccess, StatusWorkspaceTooSmall, Status(99))
	}
	if StatusOf(nil) != StatusSuccess || StatusOf(errors.New("x")) != StatusInternal ||
		StatusOf(fmt.Errorf("wrapped: %w", StatusCUDA)) != StatusCUDA {
		t.Error("StatusOf")
	}
}

func TestCheckPointersOption(t *testing.T) {
	// Accepted (a no-op for host memory and in a CPU-only build); results unchanged.
	ctx := newCPU(t, WithCheckPointers(true), WithPDL(false))
	c := newPostCase(6, 2, 8)
	if err := c.run(ctx); err != nil {
		t.Fatal(err)
	}
	checkBF16(t, "out", c.out, refPost(c.x, c.res, c.post, c.comb, 2, 8))
}

func TestZeroTokens(t *testing.T) {
	ctx := newCPU(t)
	const H = 16
	var none []BF16
	var nonef []float32
	res := HostBF16(none, 0, 4, H)
	x := HostBF16(none, 0, H)
	post := HostF32(nonef, 0, 4)
	comb := HostF32(nonef, 0, 4, 4)
	w := randWeights(&testRNG{8}, H, true).tensors()
	out := HostBF16([]BF16{}, 0, 4, H)
	li := HostBF16([]BF16{}, 0, H)
	if err := ctx.HcPre(nil, w, res, post, comb, li, Workspace{}, 0); err != nil {
		t.Errorf("HcPre T=0: %v", err)
	}
	if err := ctx.HcPost(x, res, post, comb, out, 0); err != nil {
		t.Errorf("HcPost T=0: %v", err)
	}
	if err := ctx.HcPostPre(nil, w, x, res, post, comb, out, HostF32(nonef, 0, 4),
		HostF32(nonef, 0, 4, 4), li, Workspace{}, 0); err != nil {
		t.Errorf("HcPostPre T=0: %v", err)
	}
	fnHead := HostF32(make([]float32, 4*4*H), 4, 4*H)
	if err := ctx.HcHead(nil, fnHead, HostF32(make([]float32, 1), 1), HostF32(make([]float32, 4), 4),
		res, HostBF16(none, 0, H), Workspace{}, 0); err != nil {
		t.Errorf("HcHead T=0: %v", err)
	}
	for _, op := range []Op{OpHcPre, OpHcPost, OpHcPostPre, OpHcHead} {
		if n, err := ctx.WorkspaceSize(op, nil, 0, H); err != nil || n != 0 {
			t.Errorf("WorkspaceSize(%d, T=0) = %d, %v", op, n, err)
		}
	}
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	ctx, err := NewContext(BackendCPU, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b, d, err := ctx.Backend(); err != nil || b != BackendCPU || d != 0 {
		t.Errorf("Backend() = %v, %d, %v", b, d, err)
	}
	if err := ctx.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := ctx.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	c := newPostCase(9, 2, 8)
	wantError(t, c.run(ctx), StatusInvalidHandle, "closed")
	_, _, err = ctx.Backend()
	wantError(t, err, StatusInvalidHandle, "closed")
	_, err = ctx.WorkspaceSize(OpHcPre, nil, 1, 8)
	wantError(t, err, StatusInvalidHandle, "closed")
	w := randWeights(&testRNG{1}, 8, false).tensors()
	wantError(t, ctx.HcPre(nil, w, c.resT, c.postT, c.combT, c.xT, Workspace{}, 0), StatusInvalidHandle, "closed")
	wantError(t, ctx.HcPostPre(nil, w, c.xT, c.resT, c.postT, c.combT, c.outT, c.postT, c.combT, c.xT,
		Workspace{}, 0), StatusInvalidHandle, "closed")
	wantError(t, ctx.HcHead(nil, c.xT, c.xT, c.xT, c.resT, c.xT, Workspace{}, 0), StatusInvalidHandle, "closed")

	var nilCtx *Context
	if err := nilCtx.Close(); err != nil {
		t.Errorf("nil Close: %v", err)
	}
	wantError(t, c.run(nilCtx), StatusInvalidHandle, "closed")
}

func TestFinalizerSafetyNet(t *testing.T) {
	// Unclosed contexts are reclaimed by the finalizer without crashing.
	for i := 0; i < 50; i++ {
		if _, err := NewContext(BackendCPU, 0); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
}

// One Context used by many goroutines at once gives the same bits as serial calls.
func TestConcurrentUse(t *testing.T) {
	ctx := newCPU(t)
	const G, iters, T, H = 16, 20, 3, 32
	type job struct {
		c    *postCase
		w    hostWeights
		want []BF16 // serial hc_post output
		li   []BF16 // serial hc_post_pre layer input
	}
	jobs := make([]*job, G)
	for g := range jobs {
		j := &job{c: newPostCase(uint64(100+g), T, H), w: randWeights(&testRNG{uint64(g)}, H, g%2 == 0)}
		if err := j.c.run(ctx); err != nil {
			t.Fatal(err)
		}
		j.want = append([]BF16(nil), j.c.out...)
		j.li = make([]BF16, T*H)
		if err := ctx.HcPostPre(nil, j.w.tensors(), j.c.xT, j.c.resT, j.c.postT, j.c.combT,
			HostBF16(make([]BF16, T*4*H), T, 4, H), HostF32(make([]float32, T*4), T, 4),
			HostF32(make([]float32, T*16), T, 4, 4), HostBF16(j.li, T, H), Workspace{}, 0); err != nil {
			t.Fatal(err)
		}
		jobs[g] = j
	}
	wait := startGoroutines(t, G, func(g int) error {
		j := jobs[g]
		out := make([]BF16, T*4*H)
		res2 := make([]BF16, T*4*H)
		post2 := make([]float32, T*4)
		comb2 := make([]float32, T*16)
		li := make([]BF16, T*H)
		for i := 0; i < iters; i++ {
			if err := ctx.HcPost(j.c.xT, j.c.resT, j.c.postT, j.c.combT, HostBF16(out, T, 4, H), 0); err != nil {
				return err
			}
			if err := ctx.HcPostPre(nil, j.w.tensors(), j.c.xT, j.c.resT, j.c.postT, j.c.combT,
				HostBF16(res2, T, 4, H), HostF32(post2, T, 4), HostF32(comb2, T, 4, 4),
				HostBF16(li, T, H), Workspace{}, 0); err != nil {
				return err
			}
			for k := range out {
				if out[k] != j.want[k] || res2[k] != j.want[k] {
					return fmt.Errorf("goroutine %d iteration %d: residual differs at %d", g, i, k)
				}
			}
			for k := range li {
				if li[k] != j.li[k] {
					return fmt.Errorf("goroutine %d iteration %d: layer input differs at %d", g, i, k)
				}
			}
		}
		return nil
	})
	wait()
}

// Each goroutine gets the message of its own failed call, even though the library keeps the
// message per OS thread and goroutines migrate between threads.
func TestConcurrentErrorMessages(t *testing.T) {
	ctx := newCPU(t)
	const G, iters = 12, 50
	wait := startGoroutines(t, G, func(g int) error {
		c := newPostCase(uint64(g), 2, 8)
		bad := HostBF16(make([]BF16, 2*(9+g)), 2, int64(9+g))
		want := fmt.Sprintf("got [2, %d]", 9+g)
		for i := 0; i < iters; i++ {
			err := ctx.HcPost(bad, c.resT, c.postT, c.combT, c.outT, 0)
			var e *Error
			if !errors.As(err, &e) || !strings.Contains(e.Message, want) {
				return fmt.Errorf("goroutine %d: got %v, want a message with %q", g, err, want)
			}
			runtime.Gosched()
		}
		return nil
	})
	wait()
}

// Close while other goroutines are calling: every call either succeeds or reports a closed
// context; nothing crashes.
func TestCloseDuringUse(t *testing.T) {
	ctx, err := NewContext(BackendCPU, 0)
	if err != nil {
		t.Fatal(err)
	}
	const G = 8
	start := make(chan struct{})
	wait := startGoroutines(t, G, func(g int) error {
		c := newPostCase(uint64(g), 2, 64)
		<-start
		for i := 0; ; i++ {
			err := c.run(ctx)
			if err == nil {
				continue
			}
			if StatusOf(err) != StatusInvalidHandle {
				return err
			}
			return nil
		}
	})
	close(start)
	runtime.Gosched()
	if err := ctx.Close(); err != nil {
		t.Error(err)
	}
	wait()
}
