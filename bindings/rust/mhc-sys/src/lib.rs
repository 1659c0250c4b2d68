//! Raw FFI bindings to `libmhc`, the C ABI of the manifold-constrained Hyper-Connection (mHC)
//! operators of DeepSeek-V4.
//!
//! `src/bindings.rs` is bindgen output generated from `include/mhc/mhc.h` by `generate.sh` and
//! committed; CI runs `generate.sh --check` so that a header change the bindings miss fails. The contract of every
//! item is documented in `mhc.h`. Enums and status codes are plain integer constants (never
//! Rust enums), so a value this crate does not know can never cause undefined behaviour.
//!
//! Everything here is `unsafe`; use the safe `mhc` crate (bindings/rust/mhc) instead.
//!
//! Linking: `build.rs` asks `pkg-config` for `mhc` (set `PKG_CONFIG_PATH=<prefix>/lib/pkgconfig`
//! for a non-system install), or takes the directory of `libmhc.so` from `MHC_LIB_DIR`.
#![cfg_attr(not(test), no_std)]
#![allow(non_camel_case_types, non_upper_case_globals, non_snake_case)]
#![allow(clippy::all)]

include!("bindings.rs");
