//! Correctness of the operators on the CPU backend against a float64 reference of
//! reference/mhc-spec.md §2-3, the fused boundary against post-then-pre (bitwise), T = 0 and
//! batch invariance.
mod common;

use common::*;
use mhc::{Backend, Bf16, Context, HeadWeights, Params, Stream, TensorMut, TensorRef, Workspace};

const SHAPES: [(usize, usize); 5] = [(1, 64), (3, 100), (8, 256), (2, 7), (5, 1)];

fn run_pre(
    ctx: &Context,
    p: &Params,
    w: &OwnedWeights,
    res: &[Bf16],
    t: usize,
    h: usize,
) -> PreOut {
    let mut ws = Workspace::host(ctx.workspace_size(mhc::Op::HcPre, p, t, h).unwrap());
    let res = TensorRef::new(res, &[t, N, h]).unwrap();
    try_pre(ctx, p, &w.view(h), &res, t, h, Some(&mut ws)).unwrap()
}

fn run_post(
    ctx: &Context,
    x: &[Bf16],
    res: &[Bf16],
    post: &[f32],
    comb: &[f32],
    t: usize,
    h: usize,
) -> Vec<Bf16> {
    let mut out = vec![Bf16(0xffff); t * N * h];
    ctx.hc_post(
        &TensorRef::new(x, &[t, h]).unwrap(),
        &TensorRef::new(res, &[t, N, h]).unwrap(),
        &TensorRef::new(post, &[t, N]).unwrap(),
        &TensorRef::new(comb, &[t, N, N]).unwrap(),
        &mut TensorMut::new(&mut out, &[t, N, h]).unwrap(),
        Stream::default(),
    )
    .unwrap();
    out
}

#[test]
fn hc_pre_matches_f64_reference() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let mut worst = 0.0f64;
    for (seed, &(t, h)) in SHAPES.iter().enumerate() {
        for params in [
            Params::default(),
            Params {
                post_mult: 1.0,
                sinkhorn_iters: 7,
                ..Default::default()
            },
        ] {
            let mut rng = Rng(100 + seed as u64);
            let res = rng.bf16s(t * N * h, 2.0);
            let w = OwnedWeights::random(&mut rng, h, false);
            let got = run_pre(&ctx, &params, &w, &res, t, h);
            let want = ref_pre(&params, &w, &res, t, h);
            assert_mixes_close("post_mix", &got.post, &want.post);
            assert_mixes_close("comb_mix", &got.comb, &want.comb);
            worst = worst.max(assert_bf16_close(
                "layer_input",
                &got.li,
                &want.layer_input,
                &want.layer_input_abs,
            ));
        }
    }
    eprintln!("hc_pre layer_input: worst error {worst:.3} bf16 ulp");
}

#[test]
fn hc_pre_fused_rmsnorm_matches_reference() {
    // Spec §2.6: sum of squares of the unrounded weighted sums, then bf16(bf16(ol) * rs * w).
    let ctx = Context::new(Backend::Cpu).unwrap();
    let p = Params::default();
    for (seed, &(t, h)) in SHAPES.iter().enumerate() {
        let mut rng = Rng(200 + seed as u64);
        let res = rng.bf16s(t * N * h, 1.0);
        let w = OwnedWeights::random(&mut rng, h, true);
        let plain_w = OwnedWeights {
            fn_: w.fn_.clone(),
            scale: w.scale.clone(),
            base: w.base.clone(),
            norm_weight: None,
        };
        let plain = run_pre(&ctx, &p, &plain_w, &res, t, h);
        let normed = run_pre(&ctx, &p, &w, &res, t, h);
        // The mixes do not depend on the norm.
        assert_eq!(bits_f32(&plain.post), bits_f32(&normed.post));
        assert_eq!(bits_f32(&plain.comb), bits_f32(&normed.comb));
        let want = ref_pre(&p, &w, &res, t, h);
        let nw = w.norm_weight.as_ref().unwrap();
        let mut expect = vec![0.0; t * h];
        let mut abs = vec![0.0; t * h];
        for ti in 0..t {
            let ol = &want.layer_input[ti * h..(ti + 1) * h];
            let ss: f64 = ol.iter().map(|v| v * v).sum();
            let rs = 1.0 / (ss / h as f64 + p.norm_eps as f64).sqrt();
            for hh in 0..h {
                // bf16(ol) as the library rounded it (checked against the reference above).
                let rounded = plain.li[ti * h + hh].to_f32() as f64;
                expect[ti * h + hh] = rounded * rs * nw[hh].to_f32() as f64;
                abs[ti * h + hh] = expect[ti * h + hh].abs();
            }
        }
        assert_bf16_close("layer_input (rmsnorm)", &normed.li, &expect, &abs);
    }
}

#[test]
fn hc_post_matches_f64_reference() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let mut worst = 0.0f64;
    for (seed, &(t, h)) in SHAPES.iter().enumerate() {
        let mut rng = Rng(300 + seed as u64);
        let x = rng.bf16s(t * h, 3.0);
        let res = rng.bf16s(t * N * h, 2.0);
        // Arbitrary signs, as vLLM's test does: post and comb need not be gates.
        let post = rng.f32s(t * N, 2.0, 0.0);
        let comb = rng.f32s(t * 16, 1.0, 0.0);
        let got = run_post(&ctx, &x, &res, &post, &comb, t, h);
        let (want, abs) = ref_post(&x, &res, &post, &comb, t, h);
        worst = worst.max(assert_bf16_close("residual_out", &got, &want, &abs));
    }
    eprintln!("hc_post: worst error {worst:.3} bf16 ulp");
}

#[test]
fn hc_head_matches_f64_reference() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let p = Params::default();
    for (seed, &(t, h)) in SHAPES.iter().enumerate() {
        let mut rng = Rng(400 + seed as u64);
        let res = rng.bf16s(t * N * h, 2.0);
        let fn_ = rng.f32s(N * N * h, 0.02, 0.0);
        let scale = [1.0 + 0.1 * rng.u(), 123.0]; // [S] with S >= 1: element 0 is used
        let base = rng.f32s(N, 0.5, 0.0);
        let mut out = vec![Bf16(0xffff); t * h];
        let head = HeadWeights::new(
            TensorRef::new(&fn_, &[N, N * h]).unwrap(),
            TensorRef::new(&scale, &[2]).unwrap(),
            TensorRef::new(&base, &[N]).unwrap(),
        );
        ctx.hc_head(
            &p,
            &head,
            &TensorRef::new(&res, &[t, N, h]).unwrap(),
            &mut TensorMut::new(&mut out, &[t, h]).unwrap(),
            None,
            Stream::default(),
        )
        .unwrap();
        let (want, abs) = ref_head(&p, &fn_, scale[0], &base, &res, t, h);
        assert_bf16_close("hc_head out", &out, &want, &abs);
    }
}

#[test]
fn fused_post_pre_equals_post_then_pre_bitwise() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    for (seed, &(t, h)) in SHAPES.iter().enumerate() {
        for (with_norm, batch_invariant) in [(false, false), (true, false), (false, true)] {
            let p = Params {
                batch_invariant,
                ..Default::default()
            };
            let mut rng = Rng(500 + seed as u64);
            let x = rng.bf16s(t * h, 1.0);
            let res = rng.bf16s(t * N * h, 1.0);
            let w0 = OwnedWeights::random(&mut rng, h, false);
            let next = OwnedWeights::random(&mut rng, h, with_norm);
            // Model-style post/comb: those of a real hc_pre.
            let first = run_pre(&ctx, &p, &w0, &res, t, h);

            let unfused_res = run_post(&ctx, &x, &res, &first.post, &first.comb, t, h);
            let unfused = run_pre(&ctx, &p, &next, &unfused_res, t, h);

            let (f_res, f) =
                run_post_pre(&ctx, &p, &next, &x, &res, &first.post, &first.comb, t, h);
            let ctx_s = format!("T={t} H={h} norm={with_norm} batch_invariant={batch_invariant}");
            assert_eq!(f_res, unfused_res, "residual_out, {ctx_s}");
            assert_eq!(
                bits_f32(&f.post),
                bits_f32(&unfused.post),
                "post_mix_out, {ctx_s}"
            );
            assert_eq!(
                bits_f32(&f.comb),
                bits_f32(&unfused.comb),
                "comb_mix_out, {ctx_s}"
            );
            assert_eq!(f.li, unfused.li, "layer_input_out, {ctx_s}");
        }
    }
}

#[test]
fn post_mix_may_be_t_n_1() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let (t, h) = (3, 16);
    let mut rng = Rng(600);
    let res = rng.bf16s(t * N * h, 1.0);
    let w = OwnedWeights::random(&mut rng, h, false);
    let a = run_pre(&ctx, &Params::default(), &w, &res, t, h);
    let (mut post, mut comb, mut li) = (
        vec![0f32; t * N],
        vec![0f32; t * 16],
        vec![Bf16::ZERO; t * h],
    );
    ctx.hc_pre(
        &Params::default(),
        &w.view(h),
        &TensorRef::new(&res, &[t, N, h]).unwrap(),
        &mut TensorMut::new(&mut post, &[t, N, 1]).unwrap(),
        &mut TensorMut::new(&mut comb, &[t, N, N]).unwrap(),
        &mut TensorMut::new(&mut li, &[t, h]).unwrap(),
        None,
        Stream::default(),
    )
    .unwrap();
    assert_eq!(bits_f32(&post), bits_f32(&a.post));
}

#[test]
fn zero_tokens_is_a_valid_no_op() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let (t, h) = (0, 32);
    let p = Params::default();
    let mut rng = Rng(700);
    let w = OwnedWeights::random(&mut rng, h, true);
    let (x, res, post, comb) = (
        Vec::<Bf16>::new(),
        Vec::<Bf16>::new(),
        Vec::<f32>::new(),
        Vec::<f32>::new(),
    );
    for op in mhc::Op::ALL {
        assert_eq!(ctx.workspace_size(op, &p, 0, h).unwrap(), 0);
    }
    let pre = run_pre(&ctx, &p, &w, &res, t, h);
    assert!(pre.post.is_empty() && pre.comb.is_empty() && pre.li.is_empty());
    assert!(run_post(&ctx, &x, &res, &post, &comb, t, h).is_empty());
    run_post_pre(&ctx, &p, &w, &x, &res, &post, &comb, t, h);
    let fn_head = rng.f32s(N * N * h, 0.02, 0.0);
    let head = HeadWeights::new(
        TensorRef::new(&fn_head, &[N, N * h]).unwrap(),
        TensorRef::new(&[1.0f32], &[1]).unwrap(),
        TensorRef::new(&[0.0f32; 4], &[N]).unwrap(),
    );
    let mut out = Vec::<Bf16>::new();
    ctx.hc_head(
        &p,
        &head,
        &TensorRef::new(&res, &[t, N, h]).unwrap(),
        &mut TensorMut::new(&mut out, &[t, h]).unwrap(),
        None,
        Stream::default(),
    )
    .unwrap();
}

#[test]
fn batch_invariant_and_deterministic() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let p = Params {
        batch_invariant: true,
        ..Default::default()
    };
    let (t, h) = (7, 48);
    let mut rng = Rng(800);
    let res = rng.bf16s(t * N * h, 1.0);
    let w = OwnedWeights::random(&mut rng, h, true);
    let all = run_pre(&ctx, &p, &w, &res, t, h);
    let again = run_pre(&ctx, &p, &w, &res, t, h);
    assert_eq!(bits_f32(&all.comb), bits_f32(&again.comb));
    assert_eq!(all.li, again.li);
    for ti in 0..t {
        let one = run_pre(&ctx, &p, &w, &res[ti * N * h..(ti + 1) * N * h], 1, h);
        assert_eq!(
            bits_f32(&one.post),
            bits_f32(&all.post[ti * N..(ti + 1) * N]),
            "token {ti}"
        );
        assert_eq!(
            bits_f32(&one.comb),
            bits_f32(&all.comb[ti * 16..(ti + 1) * 16]),
            "token {ti}"
        );
        assert_eq!(one.li, all.li[ti * h..(ti + 1) * h], "token {ti}");
    }
}

#[test]
fn workspace_sizes_on_cpu_are_zero() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let p = Params::default();
    for op in mhc::Op::ALL {
        assert_eq!(ctx.workspace_size(op, &p, 4096, 7168).unwrap(), 0, "{op:?}");
    }
    let ws = Workspace::host(0);
    assert!(ws.is_empty() && ws.is_host());
}
