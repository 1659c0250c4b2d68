//! A Context is Send + Sync and usable from several threads at once; the error message is
//! per thread.
mod common;

use common::*;
use mhc::{Backend, Bf16, Context, Params, Status, Stream, TensorMut, TensorRef, Workspace};
use std::sync::Arc;

// Compile-time assertions: these bounds are checked when this file compiles.
#[allow(dead_code)]
fn assert_send_sync<T: Send + Sync>() {}
#[allow(dead_code)]
fn send_sync_assertions() {
    assert_send_sync::<Context>();
    assert_send_sync::<Arc<Context>>();
    assert_send_sync::<mhc::Error>();
    assert_send_sync::<TensorRef<'static, Bf16>>();
    assert_send_sync::<TensorMut<'static, f32>>();
    assert_send_sync::<Workspace<'static>>();
    assert_send_sync::<Stream>();
    assert_send_sync::<mhc::Weights<'static>>();
}

/// One boundary (hc_post_pre) on seeded inputs: (residual_out, post, comb, layer_input).
fn boundary(
    ctx: &Context,
    seed: u64,
    t: usize,
    h: usize,
) -> (Vec<Bf16>, Vec<u32>, Vec<u32>, Vec<Bf16>) {
    let p = Params::default();
    let mut rng = Rng(seed);
    let x = rng.bf16s(t * h, 1.0);
    let res = rng.bf16s(t * N * h, 1.0);
    let post = rng.f32s(t * N, 0.5, 1.0);
    let comb = rng.f32s(t * 16, 0.25, 0.25);
    let w = OwnedWeights::random(&mut rng, h, seed & 1 == 0);
    let (r_out, o) = run_post_pre(ctx, &p, &w, &x, &res, &post, &comb, t, h);
    (r_out, bits_f32(&o.post), bits_f32(&o.comb), o.li)
}

#[test]
fn one_context_many_threads() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let (t, h) = (5, 96);
    let expected: Vec<_> = (0..8).map(|i| boundary(&ctx, 1000 + i, t, h)).collect();
    std::thread::scope(|s| {
        for (i, want) in expected.iter().enumerate() {
            let ctx = &ctx;
            s.spawn(move || {
                for _ in 0..10 {
                    assert!(
                        boundary(ctx, 1000 + i as u64, t, h) == *want,
                        "thread {i}: results differ"
                    );
                }
            });
        }
        // Meanwhile, threads whose calls fail: each sees its own message.
        for i in 0..4usize {
            let ctx = &ctx;
            s.spawn(move || {
                let hh = 8 + i;
                let x = vec![Bf16::ZERO; 2 * (hh + 1)];
                let res = vec![Bf16::ZERO; 2 * N * hh];
                let (post, comb) = (vec![0f32; 2 * N], vec![0f32; 2 * 16]);
                let mut out = vec![Bf16::ZERO; 2 * N * hh];
                for _ in 0..50 {
                    let e = ctx
                        .hc_post(
                            &TensorRef::new(&x, &[2, hh + 1]).unwrap(),
                            &TensorRef::new(&res, &[2, N, hh]).unwrap(),
                            &TensorRef::new(&post, &[2, N]).unwrap(),
                            &TensorRef::new(&comb, &[2, N, N]).unwrap(),
                            &mut TensorMut::new(&mut out, &[2, N, hh]).unwrap(),
                            Stream::default(),
                        )
                        .unwrap_err();
                    assert_eq!(e.status, Status::InvalidArgument);
                    assert!(
                        e.message
                            .ends_with(&format!("= [2, {hh}], got [2, {}]", hh + 1)),
                        "thread {i}: {e}"
                    );
                }
            });
        }
    });
}

#[test]
fn context_moves_to_another_thread_in_an_arc() {
    let ctx = Arc::new(Context::new(Backend::Cpu).unwrap());
    let want = boundary(&ctx, 7, 3, 32);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let ctx = Arc::clone(&ctx);
            std::thread::spawn(move || boundary(&ctx, 7, 3, 32))
        })
        .collect();
    for hnd in handles {
        assert!(hnd.join().unwrap() == want);
    }
    // The last Arc dropped on another thread destroys the context there.
    std::thread::spawn(move || drop(ctx)).join().unwrap();
}
