// Command layer_loop runs a DeepSeek-V4-shaped layer loop on one pipeline stage through the
// Go binding of libmhc. The program is defined in examples/LAYER_LOOP.md; it prints the same
// checksum as examples/c/layer_loop for the same arguments.
//
//	go run ./examples/go/layer_loop [--tokens T] [--hidden H] [--layers L] [--seed S] [--cuda]
//
// --cuda runs the CUDA backend on device 0. Go's standard library has no CUDA runtime to
// allocate device memory with, so that needs a build with the tag mhc_cuda, which links the
// small cudamem shim against the CUDA runtime (see bindings/go/mhc/cudamem); a default build
// prints an error and exits with status 2. The binding itself takes device pointers from any
// CUDA binding through mhc.DeviceTensor and mhc.DeviceWorkspace.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
	"unsafe"

	"github.com/mhc-project/mhc/bindings/go/mhc"
	"github.com/mhc-project/mhc/bindings/go/mhc/cudamem"
)

// ---- seeded inputs (LAYER_LOOP.md). Every float32 multiply and add is rounded on its own:
// the explicit float32() conversions forbid the compiler to fuse them into an FMA. ----

type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// u returns float32(next() >> 40) * 2^-24 * 2 - 1, exact in float32, in [-1, 1).
func (r *rng) u() float32 {
	k := float32(r.next() >> 40)
	scaled := float32(k * (1.0 / 16777216.0))
	twice := float32(scaled * 2)
	return float32(twice - 1)
}

func mulf(a, b float32) float32 { return float32(a * b) }
func addf(a, b float32) float32 { return float32(a + b) }

// genF32 returns n values u()*mul + add.
func (r *rng) genF32(n int64, mul, add float32) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = addf(mulf(r.u(), mul), add)
	}
	return v
}

func fnv1a(h uint64, v []mhc.BF16) uint64 {
	for _, x := range v {
		h = (h ^ uint64(x&0xff)) * 0x100000001b3
		h = (h ^ uint64(x>>8)) * 0x100000001b3
	}
	return h
}

type sublayer struct {
	w    mhc.Weights
	gain []float32
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// run is the program; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("layer_loop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	T, H, L := int64(4), int64(256), int64(2)
	seed := uint64(42)
	intFlag := func(name string, dst *int64, usage string) {
		fs.Func(name, usage, func(s string) error {
			v, err := strconv.ParseInt(s, 10, 64)
			*dst = v
			return err
		})
	}
	intFlag("tokens", &T, "number of tokens T (default 4)")
	intFlag("hidden", &H, "hidden size H (default 256)")
	intFlag("layers", &L, "decoder layers L, 2 sub-layers each (default 2, may be 0)")
	fs.Func("seed", "splitmix64 seed (default 42; 0x... accepted)", func(s string) error {
		v, err := strconv.ParseUint(s, 0, 64)
		seed = v
		return err
	})
	useCUDA := fs.Bool("cuda", false, "CUDA backend, device 0 (not supported by the Go example)")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "usage: layer_loop [--tokens T] [--hidden H] [--layers L] [--seed S] [--cuda]")
		return 2
	}
	if T < 0 || H < 1 || L < 0 {
		fmt.Fprintln(stderr, "need T >= 0, H >= 1, L >= 0")
		return 2
	}
	if *useCUDA && !cudamem.Enabled {
		fmt.Fprintln(stderr, "--cuda: this build has no CUDA runtime to allocate device memory with; "+
			"rebuild with -tags mhc_cuda (see bindings/go/mhc/cudamem) or run examples/c/layer_loop --cuda")
		return 2
	}
	if err := loop(stdout, T, H, L, seed, *useCUDA); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

// mem places the example's tensors: the Go slices themselves for the CPU backend, or device
// copies of them (through cudamem) for --cuda, like buf_alloc/buf_store in the C example.
type mem struct {
	cuda   bool
	allocs []uintptr
}

// buf is a host slice and, with --cuda, its device copy; T describes what the backend reads.
type buf struct {
	host  unsafe.Pointer // the Go slice's data (nil when empty)
	bytes int
	bf16s []mhc.BF16 // the host slice, for bf16 buffers
	dev   uintptr
	T     mhc.Tensor
}

func (m *mem) bf16(host []mhc.BF16, shape ...int64) (*buf, error) {
	var p unsafe.Pointer
	if len(host) > 0 {
		p = unsafe.Pointer(&host[0])
	}
	b, err := m.wrap(p, 2*len(host), mhc.BFloat16, mhc.HostBF16(host, shape...), shape)
	if b != nil {
		b.bf16s = host
	}
	return b, err
}

func (m *mem) f32(host []float32, shape ...int64) (*buf, error) {
	var p unsafe.Pointer
	if len(host) > 0 {
		p = unsafe.Pointer(&host[0])
	}
	return m.wrap(p, 4*len(host), mhc.Float32, mhc.HostF32(host, shape...), shape)
}

func (m *mem) wrap(p unsafe.Pointer, bytes int, dt mhc.DType, hostT mhc.Tensor, shape []int64) (*buf, error) {
	b := &buf{host: p, bytes: bytes, T: hostT}
	if !m.cuda {
		return b, hostT.Err()
	}
	d, err := m.alloc(bytes)
	if err != nil {
		return nil, err
	}
	b.dev = d
	b.T = mhc.DeviceTensor(d, dt, 0, shape...)
	return b, m.upload(b)
}

func (m *mem) alloc(bytes int) (uintptr, error) {
	d, err := cudamem.Malloc(bytes)
	if err == nil {
		m.allocs = append(m.allocs, d)
	}
	return d, err
}

// upload copies the host slice to the device copy (nothing to do on the CPU backend).
func (m *mem) upload(b *buf) error {
	if !m.cuda {
		return nil
	}
	return cudamem.CopyToDevice(b.dev, b.host, b.bytes)
}

// download copies the device copy back into the host slice.
func (m *mem) download(b *buf) error {
	if !m.cuda {
		return nil
	}
	return cudamem.CopyFromDevice(b.host, b.dev, b.bytes)
}

func (m *mem) sync() error {
	if !m.cuda {
		return nil
	}
	return cudamem.Synchronize()
}

func (m *mem) free() {
	for _, d := range m.allocs {
		_ = cudamem.Free(d)
	}
	m.allocs = nil
}

func loop(w io.Writer, T, H, L int64, seed uint64, useCUDA bool) (err error) {
	r := &rng{seed}
	S, K := 2*L, 4*H
	m := &mem{cuda: useCUDA}
	defer m.free()
	// must collects the first error of the many allocations below.
	must := func(b *buf, e error) *buf {
		if e != nil && err == nil {
			err = e
		}
		return b
	}

	// 1. embeddings, 2. sub-layer weights, 3. head weights: in this order.
	emb := make([]mhc.BF16, T*H)
	for i := range emb {
		emb[i] = mhc.FromFloat32(r.u())
	}
	sl := make([]sublayer, S)
	for s := range sl {
		fn := r.genF32(24*K, 0.02, 0)
		scale := r.genF32(3, 0.1, 1)
		base := r.genF32(24, 0.1, 0)
		sl[s].gain = r.genF32(H, 0.5, 1)
		sl[s].w = mhc.Weights{
			Fn:    must(m.f32(fn, 24, K)).T,
			Scale: must(m.f32(scale, 3)).T,
			Base:  must(m.f32(base, 24)).T,
		}
		if err != nil {
			return err
		}
	}
	hfn := must(m.f32(r.genF32(4*K, 0.02, 0), 4, K))
	hscale := must(m.f32(r.genF32(1, 0.1, 1), 1))
	hbase := must(m.f32(r.genF32(4, 0.1, 0), 4))
	if err != nil {
		return err
	}

	// context, params, workspace
	backend, backendName := mhc.BackendCPU, "cpu"
	if useCUDA {
		backend, backendName = mhc.BackendCUDA, "cuda"
	}
	ctx, err := mhc.NewContext(backend, 0)
	if err != nil {
		return err
	}
	defer ctx.Close()
	p := mhc.DefaultParams()
	wsBytes := 0
	for _, op := range []mhc.Op{mhc.OpHcPre, mhc.OpHcPostPre, mhc.OpHcHead} {
		b, err := ctx.WorkspaceSize(op, &p, T, H)
		if err != nil {
			return err
		}
		if b > wsBytes {
			wsBytes = b
		}
	}
	var ws mhc.Workspace
	if wsBytes > 0 {
		if !useCUDA {
			ws = mhc.NewHostWorkspace(wsBytes)
		} else {
			d, err := m.alloc(wsBytes)
			if err != nil {
				return err
			}
			ws = mhc.DeviceWorkspace(d, wsBytes)
		}
	}

	// state: two buffers of each, swapped at every boundary
	hres := make([]mhc.BF16, T*4*H)
	for t := int64(0); t < T; t++ {
		for j := int64(0); j < 4; j++ {
			copy(hres[(t*4+j)*H:(t*4+j+1)*H], emb[t*H:(t+1)*H])
		}
	}
	var res, post, comb, li [2]*buf
	res[0] = must(m.bf16(hres, T, 4, H))
	res[1] = must(m.bf16(make([]mhc.BF16, T*4*H), T, 4, H))
	for i := 0; i < 2; i++ {
		post[i] = must(m.f32(make([]float32, T*4), T, 4))
		comb[i] = must(m.f32(make([]float32, T*16), T, 4, 4))
		li[i] = must(m.bf16(make([]mhc.BF16, T*H), T, H))
	}
	hy := make([]mhc.BF16, T*H)
	hout := make([]mhc.BF16, T*H)
	y := must(m.bf16(hy, T, H))
	out := must(m.bf16(hout, T, H))
	if err != nil {
		return err
	}
	cur := 0

	t0 := time.Now()
	tLayer := t0
	if S > 0 {
		if err := ctx.HcPre(&p, sl[0].w, res[0].T, post[0].T, comb[0].T, li[0].T, ws, mhc.DefaultStream); err != nil {
			return fmt.Errorf("hc_pre: %w", err)
		}
	}
	for s := int64(0); s < S; s++ {
		// stand-in sub-layer on the host: y = bf16(li * gain_s)
		if err := m.download(li[cur]); err != nil {
			return err
		}
		lih := li[cur].bf16s
		gain := sl[s].gain
		for t := int64(0); t < T; t++ {
			for h := int64(0); h < H; h++ {
				hy[t*H+h] = mhc.FromFloat32(mulf(lih[t*H+h].Float32(), gain[h]))
			}
		}
		if err := m.upload(y); err != nil {
			return err
		}
		nxt := 1 - cur
		if s < S-1 {
			err = ctx.HcPostPre(&p, sl[s+1].w, y.T, res[cur].T, post[cur].T, comb[cur].T,
				res[nxt].T, post[nxt].T, comb[nxt].T, li[nxt].T, ws, mhc.DefaultStream)
			if err != nil {
				return fmt.Errorf("hc_post_pre: %w", err)
			}
		} else {
			err = ctx.HcPost(y.T, res[cur].T, post[cur].T, comb[cur].T, res[nxt].T, mhc.DefaultStream)
			if err != nil {
				return fmt.Errorf("hc_post: %w", err)
			}
		}
		cur = nxt
		if s%2 == 1 {
			if err := m.sync(); err != nil {
				return err
			}
			now := time.Now()
			fmt.Fprintf(w, "layer %d: %.1f us\n", s/2, float64(now.Sub(tLayer).Nanoseconds())/1e3)
			tLayer = now
		}
	}
	if err := ctx.HcHead(&p, hfn.T, hscale.T, hbase.T, res[cur].T, out.T, ws, mhc.DefaultStream); err != nil {
		return fmt.Errorf("hc_head: %w", err)
	}
	if err := m.sync(); err != nil {
		return err
	}
	fmt.Fprintf(w, "stage: %d layers, T=%d, H=%d, backend=%s, total %.1f us\n", L, T, H,
		backendName, float64(time.Since(t0).Nanoseconds())/1e3)

	if err := m.download(out); err != nil {
		return err
	}
	if err := m.download(res[cur]); err != nil {
		return err
	}
	sum := fnv1a(0xcbf29ce484222325, hout)
	sum = fnv1a(sum, res[cur].bf16s)
	fmt.Fprintf(w, "checksum: 0x%016x\n", sum)
	return nil
}
