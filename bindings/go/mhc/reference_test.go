package mhc

// Correctness of the CPU backend through the binding, against a float64 transcription of
// reference/mhc-spec.md §2-3 written here: mixes within rtol 1e-4 / atol 1e-5, bf16 outputs
// within one bf16 ulp of the correctly rounded value (plus the fp32 accumulation error the
// summed terms allow). Passing an argument in the wrong place fails these checks.

import (
	"fmt"
	"math"
	"testing"
)

// ---- deterministic inputs ----

type testRNG struct{ s uint64 }

func (r *testRNG) next() uint64 {
	r.s += 0x9E3779B97F4A7C15
	z := r.s
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// u is uniform in [-1, 1).
func (r *testRNG) u() float64 { return float64(r.next()>>11)/(1<<53)*2 - 1 }

func (r *testRNG) bf16s(n int, scale float64) []BF16 {
	out := make([]BF16, n)
	for i := range out {
		out[i] = FromFloat32(float32(r.u() * scale))
	}
	return out
}

func (r *testRNG) f32s(n int, scale, offset float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.u()*scale + offset)
	}
	return out
}

// postInputs draws the inputs of hc_post for T tokens of hidden size H: x [T, H] and residual
// [T, 4, H] bf16, post_mix [T, 4] in (0, 2) and comb_mix [T, 4, 4] in (0, 1), not symmetric:
// catches a missing transpose.
func (r *testRNG) postInputs(T, H int) (x, res []BF16, post, comb []float32) {
	x = r.bf16s(T*H, 2)
	res = r.bf16s(T*4*H, 1)
	post = r.f32s(T*4, 1, 1)
	comb = r.f32s(T*16, 0.5, 0.5)
	return x, res, post, comb
}

// ---- float64 reference of the spec ----

func sigmoid64(z float64) float64 { return 1 / (1 + math.Exp(-z)) }

// refMix returns mix = (X @ fn^T) * inv_rms for one token (X = residual[t] flattened).
func refMix(res []BF16, fn []float32, nOut int, eps float64) []float64 {
	K := len(res)
	ss := 0.0
	for _, v := range res {
		f := float64(v.Float32())
		ss += f * f
	}
	inv := 1 / math.Sqrt(ss/float64(K)+eps)
	mix := make([]float64, nOut)
	for o := range mix {
		acc := 0.0
		for k := 0; k < K; k++ {
			acc += float64(res[k].Float32()) * float64(fn[o*K+k])
		}
		mix[o] = acc * inv
	}
	return mix
}

func refSinkhorn(c *[4][4]float64, iters int, eps float64) {
	for a := 0; a < 4; a++ {
		m := math.Max(math.Max(c[a][0], c[a][1]), math.Max(c[a][2], c[a][3]))
		s := 0.0
		var e [4]float64
		for k := range e {
			e[k] = math.Exp(c[a][k] - m)
			s += e[k]
		}
		for k := range e {
			c[a][k] = e[k]/s + eps
		}
	}
	cols := func() {
		for k := 0; k < 4; k++ {
			s := c[0][k] + c[1][k] + c[2][k] + c[3][k] + eps
			for a := 0; a < 4; a++ {
				c[a][k] /= s
			}
		}
	}
	rows := func() {
		for a := 0; a < 4; a++ {
			s := c[a][0] + c[a][1] + c[a][2] + c[a][3] + eps
			for k := 0; k < 4; k++ {
				c[a][k] /= s
			}
		}
	}
	cols()
	for i := 1; i < iters; i++ {
		rows()
		cols()
	}
}

// refValue is a reference value before its final bf16 rounding, with the sum of the
// magnitudes of the fp32 terms that produced it (for the accumulation allowance).
type refValue struct{ v, mag float64 }

// refPre: hc_pre of the spec for all tokens. normW may be nil.
func refPre(res []BF16, fn, scale, base []float32, normW []BF16, p Params, T, H int) (
	post, comb []float64, li []refValue) {
	K := 4 * H
	post = make([]float64, T*4)
	comb = make([]float64, T*16)
	li = make([]refValue, T*H)
	for t := 0; t < T; t++ {
		r := res[t*K : (t+1)*K]
		mix := refMix(r, fn, 24, float64(p.RMSEps))
		var pre [4]float64
		for j := 0; j < 4; j++ {
			pre[j] = sigmoid64(mix[j]*float64(scale[0])+float64(base[j])) + float64(p.PreEps)
			post[t*4+j] = sigmoid64(mix[4+j]*float64(scale[1])+float64(base[4+j])) * float64(p.PostMult)
		}
		var c [4][4]float64
		for a := 0; a < 4; a++ {
			for k := 0; k < 4; k++ {
				c[a][k] = mix[8+4*a+k]*float64(scale[2]) + float64(base[8+4*a+k])
			}
		}
		refSinkhorn(&c, int(p.SinkhornIters), float64(p.SinkhornEps))
		for a := 0; a < 4; a++ {
			for k := 0; k < 4; k++ {
				comb[t*16+4*a+k] = c[a][k]
			}
		}
		ol := make([]refValue, H)
		sumsq := 0.0
		for h := 0; h < H; h++ {
			for j := 0; j < 4; j++ {
				x := float64(r[j*H+h].Float32())
				ol[h].v += pre[j] * x
				ol[h].mag += math.Abs(pre[j] * x)
			}
			sumsq += ol[h].v * ol[h].v
		}
		for h := 0; h < H; h++ {
			if normW == nil {
				li[t*H+h] = ol[h]
				continue
			}
			// spec §2.6: bf16(bf16(ol) * rs * w), rs from the unrounded sum of squares.
			rs := 1 / math.Sqrt(sumsq/float64(H)+float64(p.NormEps))
			rounded := float64(roundBF16(ol[h].v).Float32())
			v := rounded * rs * float64(normW[h].Float32())
			li[t*H+h] = refValue{v, math.Abs(v) + ol[h].mag*rs*math.Abs(float64(normW[h].Float32()))}
		}
	}
	return post, comb, li
}

// refPost: out[t,j,h] = post[t,j]*x[t,h] + sum_i comb[t,i,j]*res[t,i,h] (comb transposed).
func refPost(x, res []BF16, post, comb []float32, T, H int) []refValue {
	out := make([]refValue, T*4*H)
	for t := 0; t < T; t++ {
		for j := 0; j < 4; j++ {
			for h := 0; h < H; h++ {
				v := float64(post[t*4+j]) * float64(x[t*H+h].Float32())
				mag := math.Abs(v)
				for i := 0; i < 4; i++ {
					term := float64(comb[t*16+4*i+j]) * float64(res[(t*4+i)*H+h].Float32())
					v += term
					mag += math.Abs(term)
				}
				out[(t*4+j)*H+h] = refValue{v, mag}
			}
		}
	}
	return out
}

func refHead(res []BF16, fn, scale, base []float32, p Params, T, H int) []refValue {
	K := 4 * H
	out := make([]refValue, T*H)
	for t := 0; t < T; t++ {
		r := res[t*K : (t+1)*K]
		mix := refMix(r, fn, 4, float64(p.RMSEps))
		var pre [4]float64
		for j := range pre {
			pre[j] = sigmoid64(mix[j]*float64(scale[0])+float64(base[j])) + float64(p.PreEps)
		}
		for h := 0; h < H; h++ {
			var v refValue
			for j := 0; j < 4; j++ {
				x := pre[j] * float64(r[j*H+h].Float32())
				v.v += x
				v.mag += math.Abs(x)
			}
			out[t*H+h] = v
		}
	}
	return out
}

// roundBF16 is the correctly rounded (nearest even) bfloat16 of a float64.
func roundBF16(v float64) BF16 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return FromFloat32(float32(v))
	}
	_, exp := math.Frexp(v) // |v| = frac * 2^exp, frac in [0.5, 1)
	e := exp - 8            // 8 significant bits
	if e < -133 {
		e = -133 // subnormal spacing
	}
	ulp := math.Ldexp(1, e)
	return FromFloat32(float32(math.RoundToEven(v/ulp) * ulp)) // exact in float32
}

// bf16Order maps bits to integers ordered like the values (for ulp distances).
func bf16Order(b BF16) int {
	if b&0x8000 != 0 {
		return -int(b & 0x7fff)
	}
	return int(b)
}

// ---- checks ----

func checkMixes(t *testing.T, name string, got []float32, want []float64) {
	t.Helper()
	bad := 0
	for i := range want {
		if d := math.Abs(float64(got[i]) - want[i]); d > 1e-5+1e-4*math.Abs(want[i]) {
			if bad < 5 {
				t.Errorf("%s[%d] = %.9g, reference %.9g (|diff| %.3g)", name, i, got[i], want[i], d)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance", name, bad, len(want))
	}
}

// bf16Close: got within 1 ulp of the correctly rounded reference, or within the fp32
// accumulation error of the summed terms (8 fp32 roundings of their magnitudes).
func bf16Close(got BF16, w refValue) bool {
	d := bf16Order(got) - bf16Order(roundBF16(w.v))
	return (d >= -1 && d <= 1) || math.Abs(float64(got.Float32())-w.v) <= 8*0x1p-24*w.mag
}

// checkBF16: got within 1 ulp of the correctly rounded reference, or within the fp32
// accumulation error of the summed terms (8 fp32 roundings of their magnitudes).
func checkBF16(t *testing.T, name string, got []BF16, want []refValue) {
	t.Helper()
	bad := 0
	for i, w := range want {
		if bf16Close(got[i], w) {
			continue
		}
		r := roundBF16(w.v)
		d := bf16Order(got[i]) - bf16Order(r)
		if bad < 5 {
			t.Errorf("%s[%d] = %#04x (%g), reference %g rounds to %#04x (%d ulp apart)", name, i,
				uint16(got[i]), got[i].Float32(), w.v, uint16(r), d)
		}
		bad++
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d values out of tolerance", name, bad, len(want))
	}
}

func newCPU(t testing.TB, opts ...Option) *Context {
	t.Helper()
	ctx, err := NewContext(BackendCPU, 0, opts...)
	if err != nil {
		t.Fatalf("NewContext(BackendCPU): %v", err)
	}
	t.Cleanup(func() { ctx.Close() })
	return ctx
}

// weights of one sub-layer, with magnitudes that keep the gates away from saturation.
type hostWeights struct {
	fn, scale, base []float32
	norm            []BF16
	H               int
}

func randWeights(r *testRNG, H int, withNorm bool) hostWeights {
	w := hostWeights{
		fn:    r.f32s(24*4*H, 0.05, 0),
		scale: r.f32s(3, 0.1, 1),
		base:  r.f32s(24, 0.1, 0),
		H:     H,
	}
	if withNorm {
		w.norm = r.bf16s(H, 0.5)
		for i := range w.norm {
			w.norm[i] = FromFloat32(w.norm[i].Float32() + 1)
		}
	}
	return w
}

func (w hostWeights) tensors() Weights {
	out := Weights{
		Fn:    HostF32(w.fn, 24, int64(4*w.H)),
		Scale: HostF32(w.scale, 3),
		Base:  HostF32(w.base, 24),
	}
	if w.norm != nil {
		out.NormWeight = HostBF16(w.norm, int64(w.H))
	}
	return out
}

// hostPre runs HcPre on host tensors: the residual res [T, 4, H] in, and the outputs in new
// slices, returned: post_mix [T, 4], comb_mix [T, 4, 4] and layer_input [T, H].
func hostPre(t *testing.T, ctx *Context, p *Params, w hostWeights, res []BF16, T, H int) (
	post, comb []float32, li []BF16) {
	t.Helper()
	post = make([]float32, T*4)
	comb = make([]float32, T*16)
	li = make([]BF16, T*H)
	if err := ctx.HcPre(p, w.tensors(), HostBF16(res, int64(T), 4, int64(H)),
		HostF32(post, int64(T), 4), HostF32(comb, int64(T), 4, 4),
		HostBF16(li, int64(T), int64(H)), Workspace{}, DefaultStream); err != nil {
		t.Fatal(err)
	}
	return post, comb, li
}

var shapes = []struct{ T, H int }{{1, 8}, {5, 40}, {3, 256}, {2, 7}}

func TestHcPreMatchesReference(t *testing.T) {
	ctx := newCPU(t)
	for _, norm := range []bool{false, true} {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("T%d_H%d_norm%v", s.T, s.H, norm), func(t *testing.T) {
				r := &testRNG{uint64(s.T*1000 + s.H)}
				T, H := s.T, s.H
				res := r.bf16s(T*4*H, 1)
				w := randWeights(r, H, norm)
				p := DefaultParams()
				post, comb, li := hostPre(t, ctx, &p, w, res, T, H)
				wp, wc, wl := refPre(res, w.fn, w.scale, w.base, w.norm, p, T, H)
				checkMixes(t, "post_mix", post, wp)
				checkMixes(t, "comb_mix", comb, wc)
				checkBF16(t, "layer_input", li, wl)
			})
		}
	}
}

func TestHcPreParams(t *testing.T) {
	// Non-default params reach the library: post_mult 1.0 (vLLM tests), 5 Sinkhorn
	// iterations, and post_mix in its [T, 4, 1] form.
	ctx := newCPU(t)
	r := &testRNG{7}
	T, H := 3, 16
	res := r.bf16s(T*4*H, 1)
	w := randWeights(r, H, false)
	p := DefaultParams()
	p.PostMult = 1.0
	p.SinkhornIters = 5
	p.PreEps = 0.01
	post := make([]float32, T*4)
	comb := make([]float32, T*16)
	li := make([]BF16, T*H)
	if err := ctx.HcPre(&p, w.tensors(), HostBF16(res, int64(T), 4, int64(H)),
		HostF32(post, int64(T), 4, 1), HostF32(comb, int64(T), 4, 4),
		HostBF16(li, int64(T), int64(H)), Workspace{}, 0); err != nil {
		t.Fatal(err)
	}
	wp, wc, wl := refPre(res, w.fn, w.scale, w.base, nil, p, T, H)
	checkMixes(t, "post_mix", post, wp)
	checkMixes(t, "comb_mix", comb, wc)
	checkBF16(t, "layer_input", li, wl)
}

func TestHcPostMatchesReference(t *testing.T) {
	ctx := newCPU(t)
	for _, s := range shapes {
		t.Run(fmt.Sprintf("T%d_H%d", s.T, s.H), func(t *testing.T) {
			r := &testRNG{uint64(77 + s.T*s.H)}
			T, H := s.T, s.H
			x, res, post, comb := r.postInputs(T, H)
			out := make([]BF16, T*4*H)
			if err := ctx.HcPost(HostBF16(x, int64(T), int64(H)), HostBF16(res, int64(T), 4, int64(H)),
				HostF32(post, int64(T), 4), HostF32(comb, int64(T), 4, 4),
				HostBF16(out, int64(T), 4, int64(H)), 0); err != nil {
				t.Fatal(err)
			}
			checkBF16(t, "residual_out", out, refPost(x, res, post, comb, T, H))
		})
	}
}

func TestHcHeadMatchesReference(t *testing.T) {
	ctx := newCPU(t)
	for _, s := range shapes {
		for _, nscale := range []int{1, 3} {
			t.Run(fmt.Sprintf("T%d_H%d_scale%d", s.T, s.H, nscale), func(t *testing.T) {
				r := &testRNG{uint64(5 + s.T*s.H)}
				T, H := s.T, s.H
				res := r.bf16s(T*4*H, 1)
				fn := r.f32s(4*4*H, 0.05, 0)
				scale := r.f32s(nscale, 0.1, 1)
				base := r.f32s(4, 0.1, 0)
				out := make([]BF16, T*H)
				p := DefaultParams()
				if err := ctx.HcHead(&p, HostF32(fn, 4, int64(4*H)), HostF32(scale, int64(nscale)),
					HostF32(base, 4), HostBF16(res, int64(T), 4, int64(H)),
					HostBF16(out, int64(T), int64(H)), Workspace{}, 0); err != nil {
					t.Fatal(err)
				}
				checkBF16(t, "out", out, refHead(res, fn, scale, base, p, T, H))
			})
		}
	}
}

// The fused boundary returns exactly what HcPost followed by HcPre returns.
func TestHcPostPreEqualsPostThenPre(t *testing.T) {
	ctx := newCPU(t)
	for _, norm := range []bool{false, true} {
		for _, s := range shapes {
			t.Run(fmt.Sprintf("T%d_H%d_norm%v", s.T, s.H, norm), func(t *testing.T) {
				r := &testRNG{uint64(99 + s.T + s.H)}
				T, H := int64(s.T), int64(s.H)
				x, res, post, comb := r.postInputs(s.T, s.H)
				w := randWeights(r, s.H, norm)
				p := DefaultParams()

				fRes := make([]BF16, s.T*4*s.H)
				fPost := make([]float32, s.T*4)
				fComb := make([]float32, s.T*16)
				fLi := make([]BF16, s.T*s.H)
				if err := ctx.HcPostPre(&p, w.tensors(), HostBF16(x, T, H), HostBF16(res, T, 4, H),
					HostF32(post, T, 4), HostF32(comb, T, 4, 4), HostBF16(fRes, T, 4, H),
					HostF32(fPost, T, 4), HostF32(fComb, T, 4, 4), HostBF16(fLi, T, H),
					Workspace{}, 0); err != nil {
					t.Fatal(err)
				}

				uRes := make([]BF16, s.T*4*s.H)
				if err := ctx.HcPost(HostBF16(x, T, H), HostBF16(res, T, 4, H), HostF32(post, T, 4),
					HostF32(comb, T, 4, 4), HostBF16(uRes, T, 4, H), 0); err != nil {
					t.Fatal(err)
				}
				uPost, uComb, uLi := hostPre(t, ctx, &p, w, uRes, s.T, s.H)
				sameBF16(t, "residual_out", fRes, uRes)
				sameF32(t, "post_mix_out", fPost, uPost)
				sameF32(t, "comb_mix_out", fComb, uComb)
				sameBF16(t, "layer_input_out", fLi, uLi)
				// and the fused outputs are right, not just consistent
				checkBF16(t, "residual_out", fRes, refPost(x, res, post, comb, s.T, s.H))
				wp, wc, wl := refPre(fRes, w.fn, w.scale, w.base, w.norm, p, s.T, s.H)
				checkMixes(t, "post_mix_out", fPost, wp)
				checkMixes(t, "comb_mix_out", fComb, wc)
				checkBF16(t, "layer_input_out", fLi, wl)
			})
		}
	}
}

func sameBF16(t *testing.T, name string, a, b []BF16) {
	t.Helper()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("%s[%d]: fused %#04x, unfused %#04x", name, i, uint16(a[i]), uint16(b[i]))
		}
	}
}

func sameF32(t *testing.T, name string, a, b []float32) {
	t.Helper()
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			t.Fatalf("%s[%d]: fused %08x, unfused %08x", name, i, math.Float32bits(a[i]),
				math.Float32bits(b[i]))
		}
	}
}

// With BatchInvariant, each token's outputs equal those of a call with that token alone.
func TestBatchInvariant(t *testing.T) {
	ctx := newCPU(t)
	r := &testRNG{2024}
	T, H := 6, 32
	res := r.bf16s(T*4*H, 1)
	w := randWeights(r, H, false)
	p := DefaultParams()
	p.BatchInvariant = true
	post, comb, li := hostPre(t, ctx, &p, w, res, T, H)
	for tok := 0; tok < T; tok++ {
		post1, comb1, li1 := hostPre(t, ctx, &p, w, res[tok*4*H:(tok+1)*4*H], 1, H)
		sameF32(t, "post_mix", post[tok*4:(tok+1)*4], post1)
		sameF32(t, "comb_mix", comb[tok*16:(tok+1)*16], comb1)
		sameBF16(t, "layer_input", li[tok*H:(tok+1)*H], li1)
	}
}

func TestBF16Rounding(t *testing.T) {
	cases := []struct {
		f    float32
		want BF16
	}{
		{0, 0}, {float32(math.Copysign(0, -1)), 0x8000}, {1, 0x3f80}, {-2, 0xc000},
		{1 + 0x1p-8, 0x3f80},   // tie, even stays
		{1 + 3*0x1p-8, 0x3f82}, // tie, odd rounds up
		{1 + 0x1p-8 + 0x1p-20, 0x3f81},
		{float32(math.Inf(1)), 0x7f80},
		{math.MaxFloat32, 0x7f80}, // rounds to infinity
		{float32(math.NaN()), 0x7fff},
	}
	for _, c := range cases {
		if got := FromFloat32(c.f); got != c.want {
			t.Errorf("FromFloat32(%g) = %#04x, want %#04x", c.f, uint16(got), uint16(c.want))
		}
	}
	for b := 0; b < 1<<16; b++ {
		v := BF16(b)
		f := v.Float32()
		if math.IsNaN(float64(f)) {
			continue
		}
		if FromFloat32(f) != v {
			t.Fatalf("round trip of %#04x gives %#04x", b, uint16(FromFloat32(f)))
		}
	}
	r := &testRNG{1}
	for i := 0; i < 100000; i++ {
		f := float32(r.u() * math.Pow(2, float64(int(r.next()%60)-30)))
		if got, want := FromFloat32(f), roundBF16(float64(f)); got != want {
			t.Fatalf("FromFloat32(%g) = %#04x, want %#04x", f, uint16(got), uint16(want))
		}
	}
}
