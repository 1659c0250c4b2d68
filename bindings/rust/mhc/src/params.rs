//! Operator parameters and weights.
use mhc_sys as sys;

use crate::{Bf16, TensorRef};

/// Scalar parameters of the operators (`mhc_hc_params`). [`Params::default`] gives the
/// DeepSeek-V4 values (`MHC_HC_PARAMS_INIT`).
///
/// ```
/// let p = mhc::Params { post_mult: 1.0, batch_invariant: true, ..Default::default() };
/// assert_eq!(p.sinkhorn_iters, 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    /// Number of residual streams n; only 4 is supported.
    pub hc_mult: i32,
    /// Sinkhorn repeats, >= 1 (DeepSeek-V4: 20).
    pub sinkhorn_iters: i32,
    /// eps of the RMS over the n*H flattened streams (1e-6).
    pub rms_eps: f32,
    /// Added to the pre gates (1e-6).
    pub pre_eps: f32,
    /// Sinkhorn eps (1e-6).
    pub sinkhorn_eps: f32,
    /// Post gate multiplier (2.0 in the model; vLLM's tests use 1.0).
    pub post_mult: f32,
    /// eps of the optional fused RMSNorm of layer_input (1e-6).
    pub norm_eps: f32,
    /// `MHC_FLAG_BATCH_INVARIANT`: a token's outputs are bitwise identical whatever the number
    /// of tokens in the call (slightly slower at some T on the CUDA backend).
    pub batch_invariant: bool,
}

impl Default for Params {
    /// DeepSeek-V4: hc_mult 4, 20 Sinkhorn iterations, every eps 1e-6, post_mult 2.0.
    fn default() -> Self {
        Params {
            hc_mult: 4,
            sinkhorn_iters: 20,
            rms_eps: 1e-6,
            pre_eps: 1e-6,
            sinkhorn_eps: 1e-6,
            post_mult: 2.0,
            norm_eps: 1e-6,
            batch_invariant: false,
        }
    }
}

impl Params {
    /// The C struct, with `size` and `version` filled in.
    pub fn to_raw(&self) -> sys::mhc_hc_params {
        sys::mhc_hc_params {
            size: std::mem::size_of::<sys::mhc_hc_params>(),
            version: sys::MHC_HC_PARAMS_VERSION as u32,
            hc_mult: self.hc_mult,
            sinkhorn_iters: self.sinkhorn_iters,
            rms_eps: self.rms_eps,
            pre_eps: self.pre_eps,
            sinkhorn_eps: self.sinkhorn_eps,
            post_mult: self.post_mult,
            norm_eps: self.norm_eps,
            flags: if self.batch_invariant {
                sys::MHC_FLAG_BATCH_INVARIANT as u32
            } else {
                0
            },
        }
    }
}

/// One sub-layer's mHC weights (`mhc_hc_weights`); n = 4, H = hidden, M = n*(n+2) = 24.
#[derive(Clone, Copy, Debug)]
pub struct Weights<'a> {
    /// `fn` `[24, 4*H]` f32: row o multiplies the flattened streams.
    pub fn_: TensorRef<'a, f32>,
    /// `[3]` f32: alpha_pre, alpha_post, alpha_comb.
    pub scale: TensorRef<'a, f32>,
    /// `[24]` f32.
    pub base: TensorRef<'a, f32>,
    /// `[H]` bf16 weight of the RMSNorm fused into layer_input, or `None` (no RMSNorm).
    pub norm_weight: Option<TensorRef<'a, Bf16>>,
}

impl<'a> Weights<'a> {
    /// Weights without a fused RMSNorm.
    pub fn new(
        fn_: TensorRef<'a, f32>,
        scale: TensorRef<'a, f32>,
        base: TensorRef<'a, f32>,
    ) -> Self {
        Weights {
            fn_,
            scale,
            base,
            norm_weight: None,
        }
    }

    /// The same weights, with the RMSNorm of layer_input fused (weight `[H]` bf16).
    pub fn with_norm_weight(mut self, norm_weight: TensorRef<'a, Bf16>) -> Self {
        self.norm_weight = Some(norm_weight);
        self
    }
}

/// The weights of `hc_head`, the stream collapse at the end of the model.
#[derive(Clone, Copy, Debug)]
pub struct HeadWeights<'a> {
    /// `fn_head` `[4, 4*H]` f32.
    pub fn_: TensorRef<'a, f32>,
    /// `[1]` (or more; element 0 is used) f32.
    pub scale: TensorRef<'a, f32>,
    /// `[4]` f32.
    pub base: TensorRef<'a, f32>,
}

impl<'a> HeadWeights<'a> {
    /// The head weights.
    pub fn new(
        fn_: TensorRef<'a, f32>,
        scale: TensorRef<'a, f32>,
        base: TensorRef<'a, f32>,
    ) -> Self {
        HeadWeights { fn_, scale, base }
    }
}
