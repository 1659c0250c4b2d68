package mhc

import (
	"fmt"
	"runtime"
	"sync"
)

// Context is a library context (mhc_context): one backend on one device. It is immutable
// after creation and safe for concurrent use by any number of goroutines, as long as they do
// not share output tensors or workspaces.
//
// Call Close when done. A finalizer closes a Context that becomes unreachable unclosed, but
// only as a safety net: finalizers run late or never, so do not rely on it. Close waits for
// calls in flight on other goroutines; calls after Close return an *Error with
// StatusInvalidHandle and never touch the freed C context.
type Context struct {
	mu      sync.RWMutex // read-held by every call, write-held by Close
	h       handle       // 0 once closed
	backend Backend
	device  int
}

// Option configures NewContext.
type Option func(*contextConfig)

type contextConfig struct {
	flags ContextFlags
}

// WithCheckPointers sets MHC_CONTEXT_FLAG_CHECK_POINTERS: every call checks that each
// tensor's memory lives where its Device says (StatusDeviceMismatch instead of a fault).
// It costs host time per tensor; in a CPU-only build of the library it does nothing. The
// environment variable MHC_CHECK_POINTERS=1 also enables it.
func WithCheckPointers(on bool) Option { return withFlag(ContextFlagCheckPointers, on) }

// WithPDL sets MHC_CONTEXT_FLAG_PDL: programmatic dependent launch of the CUDA kernels
// (Hopper and later). See mhc.h for when that is safe.
func WithPDL(on bool) Option { return withFlag(ContextFlagPDL, on) }

func withFlag(f ContextFlags, on bool) Option {
	return func(c *contextConfig) {
		if on {
			c.flags |= f
		} else {
			c.flags &^= f
		}
	}
}

// NewContext creates a context for backend on device (a CUDA device ordinal; 0 for the
// CPU backend). Errors: StatusInvalidArgument (bad backend or device), StatusNotSupported
// (CUDA backend in a CPU-only build, or a GPU older than sm_80), StatusCUDA (no usable
// device), StatusVersionMismatch (the shared library's major version differs from the
// header this package was compiled with).
func NewContext(backend Backend, device int, opts ...Option) (*Context, error) {
	if lib, hdr := Version(), CompiledVersion(); lib/10000 != hdr/10000 {
		return nil, goError(StatusVersionMismatch, fmt.Sprintf(
			"libmhc version %d does not match the header version %d this package was built with", lib, hdr))
	}
	if int(int32(device)) != device {
		return nil, goError(StatusInvalidArgument, fmt.Sprintf("device: %d is out of range", device))
	}
	var cfg contextConfig
	for _, o := range opts {
		o(&cfg)
	}
	h, err := cContextCreate(backend, int32(device), cfg.flags)
	if err != nil {
		return nil, err
	}
	c := &Context{h: h, backend: backend, device: device}
	runtime.SetFinalizer(c, (*Context).finalize)
	return c, nil
}

func (c *Context) finalize() { _ = c.Close() }

// Close destroys the C context. It is idempotent: closing a closed (or nil) Context returns
// nil. It waits for calls in flight on other goroutines to finish.
func (c *Context) Close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.h == 0 {
		return nil
	}
	h := c.h
	c.h = 0
	runtime.SetFinalizer(c, nil)
	return cContextDestroy(h)
}

func errClosed() error {
	return &Error{Status: StatusInvalidHandle, Message: "ctx: the Context is closed (or nil)"}
}

// acquire read-locks c and returns its live handle; release with c.mu.RUnlock.
func (c *Context) acquire() (handle, error) {
	if c == nil {
		return 0, errClosed()
	}
	c.mu.RLock()
	if c.h == 0 {
		c.mu.RUnlock()
		return 0, errClosed()
	}
	return c.h, nil
}

// Backend returns the backend and device the library reports for this context
// (mhc_context_get_backend).
func (c *Context) Backend() (Backend, int, error) {
	h, err := c.acquire()
	if err != nil {
		return 0, 0, err
	}
	defer c.mu.RUnlock()
	return cContextGetBackend(h)
}

// Weights are one sub-layer's mHC parameters (mhc_hc_weights), with n = 4, H = hidden,
// M = n*(n+2) = 24.
type Weights struct {
	Fn    Tensor // [24, 4*H] float32
	Scale Tensor // [3] float32: alpha_pre, alpha_post, alpha_comb
	Base  Tensor // [24] float32
	// NormWeight is [H] bfloat16, or the zero Tensor for no fused RMSNorm of layer_input.
	NormWeight Tensor
}

func params(p *Params) *Params {
	if p == nil {
		d := DefaultParams()
		return &d
	}
	return p
}

func checkArgs(names []string, ts []*Tensor) error {
	for i, t := range ts {
		if err := t.argError(names[i]); err != nil {
			return err
		}
	}
	return nil
}

// WorkspaceSize returns the workspace bytes op needs for numTokens tokens of the given hidden
// size with these params (nil: DefaultParams). 0 on the CPU backend. The size for T tokens
// also serves every smaller T.
func (c *Context) WorkspaceSize(op Op, p *Params, numTokens, hidden int64) (int, error) {
	h, err := c.acquire()
	if err != nil {
		return 0, err
	}
	defer c.mu.RUnlock()
	return cWorkspaceSize(h, op, params(p), numTokens, hidden)
}

// HcPre runs hc_pre (mhc_hc_pre): sub-layer input and mixes from the residual streams.
//
//	residual      [T, 4, H] bf16 (in)
//	postMixOut    [T, 4] or [T, 4, 1] f32 (out)
//	combMixOut    [T, 4, 4] f32 (out), comb[t, src, dst]
//	layerInputOut [T, H] bf16 (out)
//
// p nil means DefaultParams. ws must hold WorkspaceSize(OpHcPre) bytes. On the CUDA backend
// the call is asynchronous on stream; on the CPU backend it is synchronous.
func (c *Context) HcPre(p *Params, w Weights, residual, postMixOut, combMixOut, layerInputOut Tensor,
	ws Workspace, stream Stream) error {
	if err := checkArgs([]string{"fn", "scale", "base", "norm_weight", "residual", "post_mix_out",
		"comb_mix_out", "layer_input_out"},
		[]*Tensor{&w.Fn, &w.Scale, &w.Base, &w.NormWeight, &residual, &postMixOut, &combMixOut,
			&layerInputOut}); err != nil {
		return err
	}
	h, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	return cHcPre(h, params(p), &w, [4]*Tensor{&residual, &postMixOut, &combMixOut, &layerInputOut},
		&ws, stream)
}

// HcPost runs hc_post (mhc_hc_post): the new residual streams after a sub-layer,
//
//	residualOut[t,j,h] = bf16(postMix[t,j]*x[t,h] + sum_i combMix[t,i,j]*residual[t,i,h])
//
// with x [T, H] bf16, residual [T, 4, H] bf16, postMix [T, 4] or [T, 4, 1] f32, combMix
// [T, 4, 4] f32 and residualOut [T, 4, H] bf16. Needs no workspace.
func (c *Context) HcPost(x, residual, postMix, combMix, residualOut Tensor, stream Stream) error {
	if err := checkArgs([]string{"x", "residual", "post_mix", "comb_mix", "residual_out"},
		[]*Tensor{&x, &residual, &postMix, &combMix, &residualOut}); err != nil {
		return err
	}
	h, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	return cHcPost(h, [5]*Tensor{&x, &residual, &postMix, &combMix, &residualOut}, stream)
}

// HcPostPre runs the fused sub-layer boundary (mhc_hc_post_pre): HcPost with (x, residual,
// postMix, combMix) into residualOut, then HcPre of the next sub-layer (weights next) on
// residualOut into postMixOut, combMixOut and layerInputOut. The results are bit for bit those
// of HcPost followed by HcPre on the same context. ws: WorkspaceSize(OpHcPostPre) bytes.
func (c *Context) HcPostPre(p *Params, next Weights, x, residual, postMix, combMix, residualOut,
	postMixOut, combMixOut, layerInputOut Tensor, ws Workspace, stream Stream) error {
	if err := checkArgs([]string{"fn", "scale", "base", "norm_weight", "x", "residual",
		"post_mix", "comb_mix", "residual_out", "post_mix_out", "comb_mix_out", "layer_input_out"},
		[]*Tensor{&next.Fn, &next.Scale, &next.Base, &next.NormWeight, &x, &residual, &postMix,
			&combMix, &residualOut, &postMixOut, &combMixOut, &layerInputOut}); err != nil {
		return err
	}
	h, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	return cHcPostPre(h, params(p), &next, [8]*Tensor{&x, &residual, &postMix, &combMix,
		&residualOut, &postMixOut, &combMixOut, &layerInputOut}, &ws, stream)
}

// HcHead runs hc_head (mhc_hc_head) at the end of the model: out [T, H] bf16 =
// bf16(sum_j pre_j * residual_j) with pre = sigmoid(mix*scale[0] + base) + p.PreEps, from
// fnHead [4, 4*H] f32, scale [S >= 1] f32 (element 0 is used), base [4] f32 and residual
// [T, 4, H] bf16. ws: WorkspaceSize(OpHcHead) bytes.
func (c *Context) HcHead(p *Params, fnHead, scale, base, residual, out Tensor, ws Workspace,
	stream Stream) error {
	if err := checkArgs([]string{"fn_head", "scale", "base", "residual", "out"},
		[]*Tensor{&fnHead, &scale, &base, &residual, &out}); err != nil {
		return err
	}
	h, err := c.acquire()
	if err != nil {
		return err
	}
	defer c.mu.RUnlock()
	return cHcHead(h, params(p), [5]*Tensor{&fnHead, &scale, &base, &residual, &out}, &ws, stream)
}
