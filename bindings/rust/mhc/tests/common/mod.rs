//! Shared test helpers: seeded inputs and a float64 reference of reference/mhc-spec.md §2-3.
#![allow(dead_code, clippy::needless_range_loop)]

use mhc::{Bf16, Context, Params, Stream, TensorMut, TensorRef, Weights, Workspace};

pub const N: usize = 4;
pub const M: usize = 24;

/// splitmix64 with uniform floats in [-1, 1).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn u(&mut self) -> f32 {
        ((self.next() >> 40) as f32) * (2.0 / 16_777_216.0) - 1.0
    }
    pub fn f32s(&mut self, n: usize, mul: f32, add: f32) -> Vec<f32> {
        (0..n).map(|_| self.u() * mul + add).collect()
    }
    pub fn bf16s(&mut self, n: usize, mul: f32) -> Vec<Bf16> {
        (0..n).map(|_| Bf16::from_f32(self.u() * mul)).collect()
    }
}

/// One sub-layer's weights, owned.
pub struct OwnedWeights {
    pub fn_: Vec<f32>,
    pub scale: Vec<f32>,
    pub base: Vec<f32>,
    pub norm_weight: Option<Vec<Bf16>>,
}

impl OwnedWeights {
    /// Model-like weights: fn ~ U(-1,1)*0.02, scale ~ 1 + U*0.5, base ~ U*0.5.
    pub fn random(rng: &mut Rng, h: usize, with_norm: bool) -> Self {
        OwnedWeights {
            fn_: rng.f32s(M * N * h, 0.02, 0.0),
            scale: rng.f32s(3, 0.5, 1.0),
            base: rng.f32s(M, 0.5, 0.0),
            norm_weight: with_norm.then(|| {
                (0..h)
                    .map(|_| Bf16::from_f32(1.0 + 0.5 * rng.u()))
                    .collect()
            }),
        }
    }

    pub fn view(&self, h: usize) -> mhc::Weights<'_> {
        let w = mhc::Weights::new(
            mhc::TensorRef::new(&self.fn_, &[M, N * h]).unwrap(),
            mhc::TensorRef::new(&self.scale, &[3]).unwrap(),
            mhc::TensorRef::new(&self.base, &[M]).unwrap(),
        );
        match &self.norm_weight {
            Some(nw) => w.with_norm_weight(mhc::TensorRef::new(nw, &[h]).unwrap()),
            None => w,
        }
    }
}

/// The outputs of hc_pre (and of the pre half of hc_post_pre).
#[derive(Debug)]
pub struct PreOut {
    pub post: Vec<f32>,
    pub comb: Vec<f32>,
    pub li: Vec<Bf16>,
}

impl PreOut {
    /// Outputs for t tokens of hidden size h, filled with NaN / 0xffff so that an element the
    /// library did not write shows.
    pub fn unwritten(t: usize, h: usize) -> Self {
        PreOut {
            post: vec![f32::NAN; t * N],
            comb: vec![f32::NAN; t * 16],
            li: vec![Bf16(0xffff); t * h],
        }
    }
}

/// hc_pre of `res` into fresh `[t, 4]`, `[t, 4, 4]`, `[t, h]` outputs. `res` is a view so that a
/// caller can hand it a wrong shape.
pub fn try_pre(
    ctx: &Context,
    p: &Params,
    w: &Weights<'_>,
    res: &TensorRef<'_, Bf16>,
    t: usize,
    h: usize,
    ws: Option<&mut Workspace<'_>>,
) -> mhc::Result<PreOut> {
    let mut o = PreOut::unwritten(t, h);
    ctx.hc_pre(
        p,
        w,
        res,
        &mut TensorMut::new(&mut o.post, &[t, N]).unwrap(),
        &mut TensorMut::new(&mut o.comb, &[t, N, N]).unwrap(),
        &mut TensorMut::new(&mut o.li, &[t, h]).unwrap(),
        ws,
        Stream::default(),
    )?;
    Ok(o)
}

/// hc_post_pre of `(x, res, post, comb)` with `next`'s weights and a host workspace of
/// `max_workspace_size`: (residual_out, the pre outputs). The outputs start as NaN / 0xffff,
/// as in [`PreOut::unwritten`].
#[allow(clippy::too_many_arguments)]
pub fn run_post_pre(
    ctx: &Context,
    p: &Params,
    next: &OwnedWeights,
    x: &[Bf16],
    res: &[Bf16],
    post: &[f32],
    comb: &[f32],
    t: usize,
    h: usize,
) -> (Vec<Bf16>, PreOut) {
    let mut r_out = vec![Bf16(0xffff); t * N * h];
    let mut o = PreOut::unwritten(t, h);
    let mut ws = Workspace::host(ctx.max_workspace_size(p, t, h).unwrap());
    ctx.hc_post_pre(
        p,
        &next.view(h),
        &TensorRef::new(x, &[t, h]).unwrap(),
        &TensorRef::new(res, &[t, N, h]).unwrap(),
        &TensorRef::new(post, &[t, N]).unwrap(),
        &TensorRef::new(comb, &[t, N, N]).unwrap(),
        &mut TensorMut::new(&mut r_out, &[t, N, h]).unwrap(),
        &mut TensorMut::new(&mut o.post, &[t, N]).unwrap(),
        &mut TensorMut::new(&mut o.comb, &[t, N, N]).unwrap(),
        &mut TensorMut::new(&mut o.li, &[t, h]).unwrap(),
        Some(&mut ws),
        Stream::default(),
    )
    .unwrap();
    (r_out, o)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One token's flattened streams `x` (4*H values) in f64, and its `rows` mixes: the dot
/// products of `x` with the first `rows` rows of `fn_`, times 1/RMS(x) (spec §2).
fn token_mixes(p: &Params, streams: &[Bf16], fn_: &[f32], rows: usize) -> (Vec<f64>, Vec<f64>) {
    let k = streams.len();
    let x: Vec<f64> = streams.iter().map(|v| v.to_f32() as f64).collect();
    let ss: f64 = x.iter().map(|v| v * v).sum();
    let inv_rms = 1.0 / (ss / k as f64 + p.rms_eps as f64).sqrt();
    let mix = (0..rows)
        .map(|o| {
            x.iter()
                .zip(&fn_[o * k..(o + 1) * k])
                .map(|(a, b)| a * *b as f64)
                .sum::<f64>()
                * inv_rms
        })
        .collect();
    (x, mix)
}

/// The pre gates `sigmoid(mix_j * scale + base_j) + pre_eps` of the first N mixes.
fn pre_gates(p: &Params, mix: &[f64], scale: f32, base: &[f32]) -> Vec<f64> {
    (0..N)
        .map(|j| sigmoid(mix[j] * scale as f64 + base[j] as f64) + p.pre_eps as f64)
        .collect()
}

/// One token's `sum_j pre_j * x_j` over the streams into `out` [H], and the sum of the terms'
/// magnitudes into `abs` [H].
fn stream_sum(pre: &[f64], x: &[f64], out: &mut [f64], abs: &mut [f64]) {
    let h = out.len();
    for hh in 0..h {
        let terms = (0..N).map(|j| pre[j] * x[j * h + hh]);
        out[hh] = terms.clone().sum();
        abs[hh] = terms.map(f64::abs).sum();
    }
}

/// Sinkhorn of spec §2.1 on one 4x4 matrix, in f64.
pub fn sinkhorn(c: &mut [[f64; N]; N], iters: i32, eps: f64) {
    for row in c.iter_mut() {
        let mx = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut s = 0.0;
        for v in row.iter_mut() {
            *v = (*v - mx).exp();
            s += *v;
        }
        for v in row.iter_mut() {
            *v = *v / s + eps;
        }
    }
    let col = |c: &mut [[f64; N]; N]| {
        for j in 0..N {
            let s: f64 = (0..N).map(|i| c[i][j]).sum::<f64>() + eps;
            for row in c.iter_mut() {
                row[j] /= s;
            }
        }
    };
    let row = |c: &mut [[f64; N]; N]| {
        for r in c.iter_mut() {
            let s: f64 = r.iter().sum::<f64>() + eps;
            for v in r.iter_mut() {
                *v /= s;
            }
        }
    };
    col(c);
    for _ in 1..iters {
        row(c);
        col(c);
    }
}

/// The float64 reference of hc_pre for all tokens: post [T*4], comb [T*16], and the
/// unrounded layer input [T*H] (before the optional RMSNorm), with the terms' magnitudes
/// sum_j |pre_j * r_j| for the accumulation slack.
pub struct PreRef {
    pub post: Vec<f64>,
    pub comb: Vec<f64>,
    pub layer_input: Vec<f64>,
    pub layer_input_abs: Vec<f64>,
}

pub fn ref_pre(p: &Params, w: &OwnedWeights, residual: &[Bf16], t: usize, h: usize) -> PreRef {
    let k = N * h;
    let mut r = PreRef {
        post: vec![0.0; t * N],
        comb: vec![0.0; t * N * N],
        layer_input: vec![0.0; t * h],
        layer_input_abs: vec![0.0; t * h],
    };
    for ti in 0..t {
        let (x, mix) = token_mixes(p, &residual[ti * k..(ti + 1) * k], &w.fn_, M);
        let (s, b) = (&w.scale, &w.base);
        let pre = pre_gates(p, &mix, s[0], b);
        for j in 0..N {
            r.post[ti * N + j] =
                sigmoid(mix[N + j] * s[1] as f64 + b[N + j] as f64) * p.post_mult as f64;
        }
        let mut c = [[0.0; N]; N];
        for i in 0..N {
            for j in 0..N {
                c[i][j] = mix[2 * N + N * i + j] * s[2] as f64 + b[2 * N + N * i + j] as f64;
            }
        }
        sinkhorn(&mut c, p.sinkhorn_iters, p.sinkhorn_eps as f64);
        for i in 0..N {
            for j in 0..N {
                r.comb[ti * 16 + i * N + j] = c[i][j];
            }
        }
        let rows = ti * h..(ti + 1) * h;
        stream_sum(
            &pre,
            &x,
            &mut r.layer_input[rows.clone()],
            &mut r.layer_input_abs[rows],
        );
    }
    r
}

/// hc_post in f64: (values, sum of |terms|), spec §3 (comb applied transposed).
pub fn ref_post(
    x: &[Bf16],
    residual: &[Bf16],
    post: &[f32],
    comb: &[f32],
    t: usize,
    h: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; t * N * h];
    let mut abs = vec![0.0; t * N * h];
    for ti in 0..t {
        for j in 0..N {
            for hh in 0..h {
                let mut terms = vec![post[ti * N + j] as f64 * x[ti * h + hh].to_f32() as f64];
                for i in 0..N {
                    terms.push(
                        comb[ti * 16 + i * N + j] as f64
                            * residual[(ti * N + i) * h + hh].to_f32() as f64,
                    );
                }
                out[(ti * N + j) * h + hh] = terms.iter().sum();
                abs[(ti * N + j) * h + hh] = terms.iter().map(|v| v.abs()).sum();
            }
        }
    }
    (out, abs)
}

/// hc_head in f64: (values, sum of |terms|).
pub fn ref_head(
    p: &Params,
    fn_: &[f32],
    scale: f32,
    base: &[f32],
    residual: &[Bf16],
    t: usize,
    h: usize,
) -> (Vec<f64>, Vec<f64>) {
    let k = N * h;
    let mut out = vec![0.0; t * h];
    let mut abs = vec![0.0; t * h];
    for ti in 0..t {
        let (x, mix) = token_mixes(p, &residual[ti * k..(ti + 1) * k], fn_, N);
        let pre = pre_gates(p, &mix, scale, base);
        let rows = ti * h..(ti + 1) * h;
        stream_sum(&pre, &x, &mut out[rows.clone()], &mut abs[rows]);
    }
    (out, abs)
}

/// Tolerance of the fp32 mixes (DeepSeek's): |got - want| <= 1e-5 + 1e-4 |want|.
pub fn assert_mixes_close(what: &str, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(
            err <= 1e-5 + 1e-4 * w.abs(),
            "{what}[{i}]: got {g}, want {w} (error {err:e})"
        );
    }
}

/// Size of one bf16 ulp at |v| (the spacing of bf16 numbers in v's binade).
pub fn bf16_ulp(v: f64) -> f64 {
    let a = v.abs().max(f32::MIN_POSITIVE as f64);
    2f64.powi(a.log2().floor() as i32 - 7)
}

/// bf16 outputs: within one bf16 ulp of the exact value, plus the fp32 accumulation error
/// the summed terms allow (|terms| * 2^-20: a few fp32 roundings of the terms and of their
/// fp32 coefficients). Returns the largest error in ulps.
pub fn assert_bf16_close(what: &str, got: &[Bf16], want: &[f64], abs_terms: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let mut worst = 0.0f64;
    for i in 0..got.len() {
        let (g, w) = (got[i].to_f32() as f64, want[i]);
        let err = (g - w).abs();
        let ulp = bf16_ulp(w);
        let slack = abs_terms[i] * 2f64.powi(-20);
        assert!(
            err <= ulp + slack,
            "{what}[{i}]: got {g}, want {w}: error {err:e} = {:.3} ulp (allowed 1 ulp + {slack:e})",
            err / ulp
        );
        worst = worst.max(err / ulp);
    }
    worst
}

pub fn bits_f32(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
