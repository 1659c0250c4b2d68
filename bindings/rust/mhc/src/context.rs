//! The context: a backend bound to a device, and the operators.
use std::ptr::{self, NonNull};

use mhc_sys as sys;

use crate::error::check;
use crate::{
    Bf16, Error, HeadWeights, Op, Params, Result, Status, Stream, TensorMut, TensorRef, Weights,
    Workspace,
};

/// The backend of a [`Context`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The CPU reference backend: host tensors, synchronous, bit-exact oracle of the kernels.
    Cpu,
    /// The CUDA kernels on the given device ordinal.
    Cuda {
        /// CUDA device ordinal.
        device: i32,
    },
}

/// Options of a context (`mhc_context_config`), built with [`Context::builder`].
#[derive(Clone, Copy, Debug)]
pub struct ContextBuilder {
    backend: Backend,
    flags: u32,
}

impl ContextBuilder {
    /// `MHC_CONTEXT_FLAG_CHECK_POINTERS`: check on every call that each tensor's memory
    /// really lives where its device says (costs host time; CUDA builds only).
    pub fn check_pointers(mut self, on: bool) -> Self {
        self.set(sys::MHC_CONTEXT_FLAG_CHECK_POINTERS as u32, on);
        self
    }

    /// `MHC_CONTEXT_FLAG_PDL`: programmatic dependent launch on Hopper and later (see mhc.h for
    /// when it is allowed).
    pub fn pdl(mut self, on: bool) -> Self {
        self.set(sys::MHC_CONTEXT_FLAG_PDL as u32, on);
        self
    }

    fn set(&mut self, bit: u32, on: bool) {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
    }

    /// Creates the context. Fails with [`Status::VersionMismatch`] if the loaded libmhc is
    /// not ABI-compatible with the header these bindings were generated from.
    pub fn build(self) -> Result<Context> {
        check_library_version()?;
        let (backend, device_id) = match self.backend {
            Backend::Cpu => (sys::MHC_BACKEND_CPU, 0),
            Backend::Cuda { device } => (sys::MHC_BACKEND_CUDA, device),
        };
        let cfg = sys::mhc_context_config {
            size: std::mem::size_of::<sys::mhc_context_config>(),
            version: sys::MHC_CONTEXT_CONFIG_VERSION as u32,
            backend,
            device_id,
            flags: self.flags,
        };
        let mut raw: *mut sys::mhc_context = ptr::null_mut();
        // SAFETY: both pointers are valid for the call; the library keeps neither.
        check(unsafe { sys::mhc_context_create(&mut raw, &cfg) })?;
        let raw = NonNull::new(raw).ok_or_else(|| {
            Error::new(
                Status::Internal,
                "mhc_context_create succeeded but returned NULL",
            )
        })?;
        Ok(Context {
            raw,
            backend: self.backend,
        })
    }
}

/// The library version this crate was generated for, checked against the loaded one: the
/// same major version and, before 1.0, the same minor version; from 1.0 on, a minor version
/// at least the header's.
fn check_library_version() -> Result<()> {
    let (maj, min, pat) = crate::version();
    let (hmaj, hmin) = (sys::MHC_VERSION_MAJOR as u32, sys::MHC_VERSION_MINOR as u32);
    let ok = maj == hmaj && if hmaj == 0 { min == hmin } else { min >= hmin };
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            Status::VersionMismatch,
            format!(
                "libmhc {maj}.{min}.{pat} is loaded, but the mhc crate was built for the {} \
                 header: rebuild against a matching libmhc",
                crate::HEADER_VERSION
            ),
        ))
    }
}

/// A libmhc context: one backend bound to one device (`mhc_context`). Dropping it destroys it.
///
/// # Threads
/// A context is immutable after creation, and the C contract allows using it from any number
/// of threads at once, on any streams, as long as the threads do not share output buffers or
/// workspaces. That is what `Send + Sync` promise here, and the borrow rules enforce the
/// rest for host memory: outputs are `&mut` views and the workspace is `&mut`. Share a context
/// between threads with `&Context` (scoped threads) or `Arc<Context>`.
///
/// ```
/// # fn main() -> mhc::Result<()> {
/// let ctx = mhc::Context::new(mhc::Backend::Cpu)?;
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| ctx.workspace_size(mhc::Op::HcPre, &mhc::Params::default(), 8, 256));
///     }
/// });
/// # Ok(()) }
/// ```
pub struct Context {
    raw: NonNull<sys::mhc_context>,
    backend: Backend,
}

// SAFETY: the C library documents mhc_context as immutable after creation and usable from any
// number of threads at once; destruction happens only in Drop, which has exclusive access.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the handle came from mhc_context_create and is destroyed exactly once; no
        // other call can race with Drop. A failure cannot be reported from Drop; destroy of a
        // valid handle does not fail.
        unsafe {
            sys::mhc_context_destroy(self.raw.as_ptr());
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("backend", &self.backend)
            .field("raw", &self.raw)
            .finish()
    }
}

/// The raw `(workspace, workspace_bytes)` of a call; a host workspace cannot serve the CUDA
/// backend (its kernels would write to host memory).
fn workspace_args(
    ctx: &Context,
    ws: Option<&mut Workspace<'_>>,
) -> Result<(*mut std::ffi::c_void, usize)> {
    match ws {
        None => Ok((ptr::null_mut(), 0)),
        Some(ws) => {
            if ws.is_host() && matches!(ctx.backend, Backend::Cuda { .. }) {
                return Err(Error::new(
                    Status::DeviceMismatch,
                    "workspace: a host workspace (Workspace::host) cannot serve the CUDA \
                     backend; use Workspace::from_device_ptr with device memory",
                ));
            }
            Ok(ws.raw())
        }
    }
}

fn to_i64(v: usize, what: &str) -> Result<i64> {
    i64::try_from(v)
        .map_err(|_| Error::new(Status::InvalidArgument, format!("{what}: {v} is too large")))
}

impl Context {
    /// A context of the given backend with default options.
    ///
    /// A CPU-only build of libmhc fails `Backend::Cuda` with [`Status::NotSupported`]; a
    /// machine without a usable GPU fails it with [`Status::Cuda`].
    pub fn new(backend: Backend) -> Result<Context> {
        Context::builder(backend).build()
    }

    /// Options beyond the backend.
    pub fn builder(backend: Backend) -> ContextBuilder {
        ContextBuilder { backend, flags: 0 }
    }

    /// The backend and device.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The raw handle, for calling `mhc_sys` directly. It stays owned by this context.
    pub fn as_raw(&self) -> *mut sys::mhc_context {
        self.raw.as_ptr()
    }

    /// Workspace bytes `op` needs for `num_tokens` tokens of hidden size `hidden` with these
    /// params (0 on the CPU backend). The size for T tokens also serves every smaller T.
    pub fn workspace_size(
        &self,
        op: Op,
        params: &Params,
        num_tokens: usize,
        hidden: usize,
    ) -> Result<usize> {
        let p = params.to_raw();
        let mut bytes = 0usize;
        // SAFETY: valid pointers for the call; the context is alive.
        check(unsafe {
            sys::mhc_workspace_size(
                self.raw.as_ptr(),
                op.to_raw(),
                &p,
                to_i64(num_tokens, "num_tokens")?,
                to_i64(hidden, "hidden")?,
                &mut bytes,
            )
        })?;
        Ok(bytes)
    }

    /// The largest [`workspace_size`](Context::workspace_size) over every operator: one
    /// workspace of this size serves every call with at most `num_tokens` tokens.
    pub fn max_workspace_size(
        &self,
        params: &Params,
        num_tokens: usize,
        hidden: usize,
    ) -> Result<usize> {
        let mut max = 0;
        for op in Op::ALL {
            max = max.max(self.workspace_size(op, params, num_tokens, hidden)?);
        }
        Ok(max)
    }

    /// `hc_pre`: the sub-layer input and the mixes from the residual streams.
    ///
    /// * `residual` `[T, 4, H]` bf16
    /// * `post_mix_out` `[T, 4]` (or `[T, 4, 1]`) f32: `post_mult * sigmoid(...)`
    /// * `comb_mix_out` `[T, 4, 4]` f32: the Sinkhorn-projected comb, `comb[t, src, dst]`
    /// * `layer_input_out` `[T, H]` bf16: `sum_j pre_j * residual_j` (then the RMSNorm with
    ///   `weights.norm_weight`, if given)
    #[allow(clippy::too_many_arguments)]
    pub fn hc_pre(
        &self,
        params: &Params,
        weights: &Weights<'_>,
        residual: &TensorRef<'_, Bf16>,
        post_mix_out: &mut TensorMut<'_, f32>,
        comb_mix_out: &mut TensorMut<'_, f32>,
        layer_input_out: &mut TensorMut<'_, Bf16>,
        workspace: Option<&mut Workspace<'_>>,
        stream: Stream,
    ) -> Result<()> {
        let (ws, ws_bytes) = workspace_args(self, workspace)?;
        let p = params.to_raw();
        let w_dl = WeightsDl::new(weights);
        let w = w_dl.raw();
        let residual = residual.dl();
        let (post, comb, li) = (post_mix_out.dl(), comb_mix_out.dl(), layer_input_out.dl());
        // SAFETY: every DLTensor describes memory that its view borrows for the whole call
        // (slices checked against their shapes, or vouched for by an unsafe constructor), and
        // points at shape storage of a view that outlives the call. Outputs come from `&mut`
        // views, so they alias nothing else in safe code. The library validates everything
        // else and keeps no pointer after the call.
        check(unsafe {
            sys::mhc_hc_pre(
                self.raw.as_ptr(),
                &p,
                &w,
                &residual,
                &post,
                &comb,
                &li,
                ws,
                ws_bytes,
                stream.raw(),
            )
        })
    }

    /// `hc_post`: the new residual streams after a sub-layer,
    /// `residual_out[t,j,h] = bf16(post[t,j]*x[t,h] + sum_i comb[t,i,j]*residual[t,i,h])`.
    ///
    /// * `x` `[T, H]` bf16 (the sub-layer output), `residual` `[T, 4, H]` bf16 (what fed the
    ///   matching `hc_pre`), `post_mix` `[T, 4]` f32, `comb_mix` `[T, 4, 4]` f32
    /// * `residual_out` `[T, 4, H]` bf16
    #[allow(clippy::too_many_arguments)]
    pub fn hc_post(
        &self,
        x: &TensorRef<'_, Bf16>,
        residual: &TensorRef<'_, Bf16>,
        post_mix: &TensorRef<'_, f32>,
        comb_mix: &TensorRef<'_, f32>,
        residual_out: &mut TensorMut<'_, Bf16>,
        stream: Stream,
    ) -> Result<()> {
        let (x, residual, post, comb) = (x.dl(), residual.dl(), post_mix.dl(), comb_mix.dl());
        let out = residual_out.dl();
        // SAFETY: as in hc_pre.
        check(unsafe {
            sys::mhc_hc_post(
                self.raw.as_ptr(),
                &x,
                &residual,
                &post,
                &comb,
                &out,
                stream.raw(),
            )
        })
    }

    /// The fused sub-layer boundary: [`hc_post`](Context::hc_post) with
    /// `(x, residual, post_mix, comb_mix)` into `residual_out`, then
    /// [`hc_pre`](Context::hc_pre) of the next sub-layer (`next`) on `residual_out`. The
    /// outputs are bit for bit those of the two separate calls.
    #[allow(clippy::too_many_arguments)]
    pub fn hc_post_pre(
        &self,
        params: &Params,
        next: &Weights<'_>,
        x: &TensorRef<'_, Bf16>,
        residual: &TensorRef<'_, Bf16>,
        post_mix: &TensorRef<'_, f32>,
        comb_mix: &TensorRef<'_, f32>,
        residual_out: &mut TensorMut<'_, Bf16>,
        post_mix_out: &mut TensorMut<'_, f32>,
        comb_mix_out: &mut TensorMut<'_, f32>,
        layer_input_out: &mut TensorMut<'_, Bf16>,
        workspace: Option<&mut Workspace<'_>>,
        stream: Stream,
    ) -> Result<()> {
        let (ws, ws_bytes) = workspace_args(self, workspace)?;
        let p = params.to_raw();
        let w_dl = WeightsDl::new(next);
        let w = w_dl.raw();
        let (x, residual, post, comb) = (x.dl(), residual.dl(), post_mix.dl(), comb_mix.dl());
        let res_out = residual_out.dl();
        let (post_out, comb_out, li_out) =
            (post_mix_out.dl(), comb_mix_out.dl(), layer_input_out.dl());
        // SAFETY: as in hc_pre.
        check(unsafe {
            sys::mhc_hc_post_pre(
                self.raw.as_ptr(),
                &p,
                &w,
                &x,
                &residual,
                &post,
                &comb,
                &res_out,
                &post_out,
                &comb_out,
                &li_out,
                ws,
                ws_bytes,
                stream.raw(),
            )
        })
    }

    /// `hc_head`: collapses the streams at the end of the model,
    /// `out = bf16(sum_j pre_j * residual_j)` with `pre = sigmoid(mix*scale[0] + base) + pre_eps`.
    ///
    /// * `head`: `fn_head` `[4, 4*H]`, `scale` `[1]`, `base` `[4]` (f32)
    /// * `residual` `[T, 4, H]` bf16, `out` `[T, H]` bf16
    pub fn hc_head(
        &self,
        params: &Params,
        head: &HeadWeights<'_>,
        residual: &TensorRef<'_, Bf16>,
        out: &mut TensorMut<'_, Bf16>,
        workspace: Option<&mut Workspace<'_>>,
        stream: Stream,
    ) -> Result<()> {
        let (ws, ws_bytes) = workspace_args(self, workspace)?;
        let p = params.to_raw();
        let (fn_, scale, base) = (head.fn_.dl(), head.scale.dl(), head.base.dl());
        let residual = residual.dl();
        let out = out.dl();
        // SAFETY: as in hc_pre.
        check(unsafe {
            sys::mhc_hc_head(
                self.raw.as_ptr(),
                &p,
                &fn_,
                &scale,
                &base,
                &residual,
                &out,
                ws,
                ws_bytes,
                stream.raw(),
            )
        })
    }
}

/// The `DLTensor`s of a [`Weights`], for `hc_pre` and `hc_post_pre`.
struct WeightsDl {
    fn_: sys::DLTensor,
    scale: sys::DLTensor,
    base: sys::DLTensor,
    norm_weight: Option<sys::DLTensor>,
}

impl WeightsDl {
    fn new(w: &Weights<'_>) -> WeightsDl {
        WeightsDl {
            fn_: w.fn_.dl(),
            scale: w.scale.dl(),
            base: w.base.dl(),
            norm_weight: w.norm_weight.as_ref().map(|t| t.dl()),
        }
    }

    /// The C struct; it points into `self`, so keep `self` in place until the call returns.
    fn raw(&self) -> sys::mhc_hc_weights {
        sys::mhc_hc_weights {
            fn_: &self.fn_,
            scale: &self.scale,
            base: &self.base,
            norm_weight: self
                .norm_weight
                .as_ref()
                .map_or(ptr::null(), |t| t as *const _),
        }
    }
}
