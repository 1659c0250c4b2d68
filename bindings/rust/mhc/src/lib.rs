//! Safe Rust bindings to **libmhc**: the manifold-constrained Hyper-Connection (mHC) operators
//! of DeepSeek-V4 (`hc_pre`, `hc_post`, the fused boundary `hc_post_pre`, `hc_head`) as CUDA
//! kernels, with a CPU reference backend behind the same API.
//!
//! * [`Context`] binds a [`Backend`] (CPU, or CUDA on a device); it is `Send + Sync`.
//! * Tensors are borrowed views with lifetimes: [`TensorRef`] (inputs) and [`TensorMut`]
//!   (outputs), built from host slices of [`Bf16`] or `f32` with a shape, or, for the CUDA
//!   backend, from device pointers (`unsafe`: the one place where the caller vouches for
//!   memory). The element type of every operator argument is fixed by its signature, so a
//!   wrong dtype does not compile; shapes are checked by the library (plus, in Rust, that a
//!   slice holds exactly as many elements as its shape says).
//! * Errors are [`Error`] `{ status, message }`, the message being the library's detail
//!   (which argument, expected and actual value).
//!
//! ```
//! use mhc::{Backend, Bf16, Context, Params, TensorMut, TensorRef, Weights, Stream};
//! # fn main() -> mhc::Result<()> {
//! let (t, h) = (2, 64);
//! let ctx = Context::new(Backend::Cpu)?;
//! let residual = vec![Bf16::from_f32(0.5); t * 4 * h];
//! let (fn_, scale, base) = (vec![0.01f32; 24 * 4 * h], [1.0f32; 3], [0.0f32; 24]);
//! let w = Weights::new(TensorRef::new(&fn_, &[24, 4 * h])?, TensorRef::new(&scale, &[3])?,
//!                      TensorRef::new(&base, &[24])?);
//! let (mut post, mut comb, mut li) = (vec![0f32; t * 4], vec![0f32; t * 16], vec![Bf16::ZERO; t * h]);
//! ctx.hc_pre(&Params::default(), &w, &TensorRef::new(&residual, &[t, 4, h])?,
//!            &mut TensorMut::new(&mut post, &[t, 4])?, &mut TensorMut::new(&mut comb, &[t, 4, 4])?,
//!            &mut TensorMut::new(&mut li, &[t, h])?, None, Stream::default())?;
//! assert!((comb[0..4].iter().sum::<f32>() - 1.0).abs() < 1e-3); // doubly stochastic
//! # Ok(()) }
//! ```
//!
//! Wrong dtypes are compile errors:
//!
//! ```compile_fail,E0308
//! # use mhc::*;
//! # fn f(ctx: &Context, x: TensorRef<'_, f32>, r: TensorRef<'_, Bf16>, p: TensorRef<'_, f32>,
//! #      c: TensorRef<'_, f32>, mut o: TensorMut<'_, Bf16>) {
//! // x must be bf16
//! ctx.hc_post(&x, &r, &p, &c, &mut o, Stream::default());
//! # }
//! ```
//!
//! and an output can never alias an input built from the same host memory:
//!
//! ```compile_fail,E0502
//! # use mhc::*;
//! let mut buf = vec![Bf16::ZERO; 4 * 4 * 8];
//! let input = TensorRef::new(&buf, &[4, 4, 8]).unwrap();
//! let output = TensorMut::new(&mut buf, &[4, 4, 8]).unwrap(); // buf is already borrowed
//! drop((input, output));
//! ```
#![warn(missing_docs)]

mod bf16;
mod context;
mod error;
mod params;
mod tensor;
mod workspace;

pub use bf16::Bf16;
pub use context::{Backend, Context, ContextBuilder};
pub use error::{Error, Result, Status};
pub use params::{HeadWeights, Params, Weights};
pub use tensor::{Device, Element, TensorMut, TensorRef, MAX_NDIM};
pub use workspace::{Op, Stream, Workspace};

/// The raw FFI crate.
pub use mhc_sys as sys;

/// The `MHC_VERSION_STRING` of the header these bindings were generated from (e.g. "0.1.0").
pub const HEADER_VERSION: &str = match sys::MHC_VERSION_STRING.split_last() {
    Some((_, s)) => match std::str::from_utf8(s) {
        Ok(s) => s,
        Err(_) => panic!("MHC_VERSION_STRING is not UTF-8"),
    },
    None => "",
};

/// Version of the loaded libmhc, `(major, minor, patch)` (`mhc_get_version`).
pub fn version() -> (u32, u32, u32) {
    // SAFETY: no arguments; thread-safe.
    let v = unsafe { sys::mhc_get_version() }.max(0) as u32;
    (v / 10000, (v / 100) % 100, v % 100)
}

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
