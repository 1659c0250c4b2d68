//! Errors carry the right Status and the library's message; checks done in Rust before
//! calling C; the status enum.
//!
//! Wrong dtypes are impossible by types (every operator argument has a fixed element type,
//! `TensorRef<'_, Bf16>` or `TensorRef<'_, f32>`), and an output aliasing an input built from
//! the same host memory is impossible by borrows: both are `compile_fail` doctests in
//! src/lib.rs. Workspace-too-small cannot be provoked on the CPU backend (it needs 0 bytes).
mod common;

use common::*;
use mhc::{
    Backend, Bf16, Context, Device, Error, Params, Status, Stream, TensorMut, TensorRef, Workspace,
};

const T: usize = 2;
const H: usize = 16;

struct Bufs {
    x: Vec<Bf16>,
    res: Vec<Bf16>,
    post: Vec<f32>,
    comb: Vec<f32>,
    out: Vec<Bf16>,
}

fn bufs() -> Bufs {
    let mut rng = Rng(1);
    Bufs {
        x: rng.bf16s(T * H, 1.0),
        res: rng.bf16s(T * N * H, 1.0),
        post: rng.f32s(T * N, 1.0, 1.0),
        comb: rng.f32s(T * 16, 0.5, 0.5),
        out: vec![Bf16::ZERO; T * N * H],
    }
}

fn post_with_x_shape(
    ctx: &Context,
    b: &mut Bufs,
    x: &[Bf16],
    x_shape: &[usize],
) -> mhc::Result<()> {
    ctx.hc_post(
        &TensorRef::new(x, x_shape)?,
        &TensorRef::new(&b.res, &[T, N, H])?,
        &TensorRef::new(&b.post, &[T, N])?,
        &TensorRef::new(&b.comb, &[T, N, N])?,
        &mut TensorMut::new(&mut b.out, &[T, N, H])?,
        Stream::default(),
    )
}

#[test]
fn bad_shape_is_invalid_argument_with_the_library_message() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let mut b = bufs();
    let x = vec![Bf16::ZERO; T * (H + 1)];
    let e = post_with_x_shape(&ctx, &mut b, &x, &[T, H + 1]).unwrap_err();
    assert_eq!(e.status, Status::InvalidArgument);
    assert_eq!(
        e.message,
        format!(
            "x: expected shape [T, H] like residual = [{T}, {H}], got [{T}, {}]",
            H + 1
        )
    );
    assert_eq!(
        e.to_string(),
        format!("MHC_ERROR_INVALID_ARGUMENT: {}", e.message)
    );
    // The output was not touched.
    assert!(b.out.iter().all(|v| *v == Bf16::ZERO));

    // Three streams instead of hc_mult = 4.
    let p = Params::default();
    let res3 = vec![Bf16::ZERO; T * 3 * H];
    let w = OwnedWeights::random(&mut Rng(2), H, false);
    let res3_view = TensorRef::new(&res3, &[T, 3, H]).unwrap();
    let e = try_pre(&ctx, &p, &w.view(H), &res3_view, T, H, None).unwrap_err();
    assert_eq!(e.status, Status::InvalidArgument);
    assert!(
        e.message
            .starts_with("residual: expected shape [T, 4, H] (hc_mult = 4)"),
        "{e}"
    );

    // fn of another hidden size than the residual.
    let w_other = OwnedWeights::random(&mut Rng(3), H + 8, false);
    let res = TensorRef::new(&b.res, &[T, N, H]).unwrap();
    let e = try_pre(&ctx, &p, &w_other.view(H + 8), &res, T, H, None).unwrap_err();
    assert_eq!(e.status, Status::InvalidArgument);
    assert!(
        e.message
            .starts_with("fn: expected shape [24, 4*H] = [24, 64], got [24, 96]"),
        "{e}"
    );
}

#[test]
fn slice_shape_mismatch_is_rejected_in_rust() {
    let short = vec![Bf16::ZERO; T * N * H - 1];
    let e = TensorRef::new(&short, &[T, N, H]).unwrap_err();
    assert_eq!(e.status, Status::InvalidArgument);
    assert_eq!(
        e.message,
        format!(
            "TensorRef::new: shape [{T}, {N}, {H}] has {} elements, but the slice has {}",
            T * N * H,
            T * N * H - 1
        )
    );
    // Longer is rejected too: a view describes exactly its slice.
    let mut long = vec![0f32; 17];
    assert_eq!(
        TensorMut::new(&mut long, &[4, 4]).unwrap_err().status,
        Status::InvalidArgument
    );
    // Too many dimensions, and element counts that overflow.
    let e = TensorRef::new(&[0f32; 1], &[1, 1, 1, 1, 1]).unwrap_err();
    assert!(e.message.contains("at most 4 are supported"), "{e}");
    let e = TensorRef::<f32>::new(&[], &[usize::MAX, 2, 0]).unwrap_err();
    assert!(e.message.contains("too large"), "{e}");
    // Empty shapes of empty slices are fine.
    assert_eq!(TensorRef::<Bf16>::new(&[], &[0, 4, 7]).unwrap().numel(), 0);
}

#[test]
fn wrong_device_is_device_mismatch() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let mut b = bufs();
    // A CUDA-device view handed to the CPU backend: rejected by validation before the data is
    // touched (the pointer is host memory anyway, so nothing could go wrong).
    // SAFETY: the pointer holds T*H elements and outlives the call.
    let x_dev = unsafe { TensorRef::from_device_ptr(b.x.as_ptr(), &[T, H], 0) }.unwrap();
    assert_eq!(x_dev.device(), Device::Cuda(0));
    let e = ctx
        .hc_post(
            &x_dev,
            &TensorRef::new(&b.res, &[T, N, H]).unwrap(),
            &TensorRef::new(&b.post, &[T, N]).unwrap(),
            &TensorRef::new(&b.comb, &[T, N, N]).unwrap(),
            &mut TensorMut::new(&mut b.out, &[T, N, H]).unwrap(),
            Stream::default(),
        )
        .unwrap_err();
    assert_eq!(e.status, Status::DeviceMismatch);
    assert!(
        e.message
            .starts_with("x: the CPU backend needs host memory"),
        "{e}"
    );
}

#[test]
fn overlap_through_raw_views_is_rejected_by_the_library() {
    // Safe code cannot alias an output with an input (see the compile_fail doctest); raw views
    // can, and the library then refuses the call.
    let ctx = Context::new(Backend::Cpu).unwrap();
    let b = bufs();
    let mut res = b.res.clone();
    let p = res.as_mut_ptr();
    // SAFETY: both views cover the T*4*H elements of `res`, which outlives them; the library
    // rejects the call before writing.
    let (input, mut output) = unsafe {
        (
            TensorRef::from_raw_parts(p, &[T, N, H], Device::Cpu).unwrap(),
            TensorMut::from_raw_parts(p, &[T, N, H], Device::Cpu).unwrap(),
        )
    };
    let e = ctx
        .hc_post(
            &TensorRef::new(&b.x, &[T, H]).unwrap(),
            &input,
            &TensorRef::new(&b.post, &[T, N]).unwrap(),
            &TensorRef::new(&b.comb, &[T, N, N]).unwrap(),
            &mut output,
            Stream::default(),
        )
        .unwrap_err();
    assert_eq!(e.status, Status::InvalidArgument);
    assert!(
        e.message.contains("residual_out: memory overlaps residual"),
        "{e}"
    );
}

#[test]
fn bad_params_carry_their_status() {
    let ctx = Context::new(Backend::Cpu).unwrap();
    let cases: [(Params, Status, &str); 4] = [
        (
            Params {
                hc_mult: 3,
                ..Default::default()
            },
            Status::NotSupported,
            "p->hc_mult: only 4 streams are supported, got 3",
        ),
        (
            Params {
                sinkhorn_iters: 0,
                ..Default::default()
            },
            Status::InvalidArgument,
            "p->sinkhorn_iters: expected 1..1000, got 0",
        ),
        (
            Params {
                rms_eps: f32::NAN,
                ..Default::default()
            },
            Status::InvalidArgument,
            "p->rms_eps",
        ),
        (
            Params {
                sinkhorn_eps: -1.0,
                ..Default::default()
            },
            Status::InvalidArgument,
            "p->sinkhorn_eps",
        ),
    ];
    for (p, status, msg) in cases {
        let e = ctx.workspace_size(mhc::Op::HcPre, &p, 4, 64).unwrap_err();
        assert_eq!(e.status, status, "{e}");
        assert!(e.message.starts_with(msg), "{e}");
    }
}

#[test]
fn cuda_backend_without_a_usable_gpu() {
    match Context::new(Backend::Cuda { device: 0 }) {
        // CPU-only build: NotSupported; CUDA build without a usable GPU: Cuda.
        Err(e) => {
            assert!(
                matches!(e.status, Status::NotSupported | Status::Cuda),
                "{e}"
            );
            assert!(!e.message.is_empty());
        }
        // A GPU is present: host memory must be refused, by the library (views) and by the
        // binding (host workspaces).
        Ok(ctx) => {
            let mut b = bufs();
            let e = post_with_x_shape(&ctx, &mut b, &bufs().x, &[T, H]).unwrap_err();
            assert_eq!(e.status, Status::DeviceMismatch, "{e}");
            let mut ws = Workspace::host(64);
            let w = OwnedWeights::random(&mut Rng(4), H, false);
            let p = Params::default();
            let res = TensorRef::new(&b.res, &[T, N, H]).unwrap();
            let e = try_pre(&ctx, &p, &w.view(H), &res, T, H, Some(&mut ws)).unwrap_err();
            assert_eq!(e.status, Status::DeviceMismatch, "{e}");
        }
    }
    // A negative device ordinal is refused whatever the build.
    let e = Context::new(Backend::Cuda { device: -1 }).unwrap_err();
    assert!(
        matches!(e.status, Status::InvalidArgument | Status::NotSupported),
        "{e}"
    );
}

#[test]
fn status_codes_round_trip_and_have_library_names() {
    let names = [
        "MHC_SUCCESS",
        "MHC_ERROR_INVALID_ARGUMENT",
        "MHC_ERROR_INVALID_HANDLE",
        "MHC_ERROR_NOT_SUPPORTED",
        "MHC_ERROR_DEVICE_MISMATCH",
        "MHC_ERROR_WORKSPACE_TOO_SMALL",
        "MHC_ERROR_OUT_OF_MEMORY",
        "MHC_ERROR_CUDA",
        "MHC_ERROR_VERSION_MISMATCH",
        "MHC_ERROR_INTERNAL",
    ];
    for (code, name) in names.iter().enumerate() {
        let s = Status::from_raw(code as i32);
        assert!(!matches!(s, Status::Unknown(_)), "{code}");
        assert_eq!(s.to_raw(), code as i32);
        assert_eq!(s.name(), *name);
    }
    assert_eq!(Status::from_raw(42), Status::Unknown(42));
    assert_eq!(Status::Unknown(42).to_raw(), 42);
    assert_eq!(Status::from_raw(-1).name(), "MHC_ERROR_UNKNOWN");
}

#[test]
fn error_is_a_std_error() {
    fn fails() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        TensorRef::new(&[0f32; 3], &[2, 2])?;
        Ok(())
    }
    let e = fails().unwrap_err();
    let e: &Error = e.downcast_ref().unwrap();
    assert_eq!(e.status(), Status::InvalidArgument);
    assert_eq!(
        Error::new(Status::Internal, "").to_string(),
        "MHC_ERROR_INTERNAL"
    );
}

#[test]
fn versions_agree() {
    let (maj, min, pat) = mhc::version();
    assert_eq!(
        (maj, min, pat),
        (
            mhc::sys::MHC_VERSION_MAJOR as u32,
            mhc::sys::MHC_VERSION_MINOR as u32,
            mhc::sys::MHC_VERSION_PATCH as u32
        )
    );
    assert_eq!(mhc::HEADER_VERSION, format!("{maj}.{min}.{pat}"));
}

#[test]
fn context_builder_flags() {
    // Both flags are accepted by the CPU backend (check_pointers does nothing without CUDA).
    let ctx = Context::builder(Backend::Cpu)
        .check_pointers(true)
        .pdl(true)
        .build()
        .unwrap();
    assert_eq!(ctx.backend(), Backend::Cpu);
    let mut backend = 0;
    let mut device = -1;
    // SAFETY: valid handle and out-pointers.
    let rc = unsafe { mhc::sys::mhc_context_get_backend(ctx.as_raw(), &mut backend, &mut device) };
    assert_eq!(
        (rc, backend, device),
        (mhc::sys::MHC_SUCCESS, mhc::sys::MHC_BACKEND_CPU, 0)
    );
}
