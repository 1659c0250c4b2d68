#!/usr/bin/env bash
# Rust bindings (bindings/rust): the committed bindgen output is current, `cargo test` passes
# on the CPU backend, and the Rust layer-loop example prints the C example's checksum.
#
# Run by scripts/test-all.sh after it has installed libmhc into $MHC_PREFIX and exported
# PKG_CONFIG_PATH and LD_LIBRARY_PATH. Standalone, it uses ${MHC_PREFIX:-$BUILD/prefix}.
# Offline: no crates registry is needed (the crates depend on nothing outside std).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${MHC_BUILD_DIR:-$ROOT/build}
PREFIX=${MHC_PREFIX:-$BUILD/prefix}
export CARGO_NET_OFFLINE=true

# cargo: PATH, else rustup's default location.
if ! command -v cargo >/dev/null; then
  for d in "${CARGO_HOME:-}/bin" "$HOME/.cargo/bin" /root/.cargo/bin; do
    if [ -x "$d/cargo" ]; then PATH="$d:$PATH"; break; fi
  done
fi
command -v cargo >/dev/null || { echo "30-rust.sh: cargo not found (PATH, \$HOME/.cargo/bin)" >&2; exit 1; }
export PATH

# libmhc through pkg-config, as mhc-sys's build.rs finds it.
if [ -f "$PREFIX/lib/pkgconfig/mhc.pc" ]; then
  case ":${PKG_CONFIG_PATH:-}:" in
    *":$PREFIX/lib/pkgconfig:"*) ;;
    *) export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" ;;
  esac
fi
pkg-config --exists mhc || { echo "30-rust.sh: pkg-config cannot find mhc (install libmhc into \$MHC_PREFIX)" >&2; exit 1; }
libdir=$(pkg-config --variable=libdir mhc)
export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The header's generated mhc/version.h, for generate.sh.
export MHC_VERSION_INCLUDE_DIR=${MHC_VERSION_INCLUDE_DIR:-$(pkg-config --variable=includedir mhc)}

echo "-- rust: bindings/rust/mhc-sys/generate.sh --check"
bindings/rust/mhc-sys/generate.sh --check

cd bindings/rust
echo "-- rust: cargo test --offline ($(cargo --version))"
cargo test --offline --locked --workspace

c_example="$BUILD/examples/c/layer_loop"
[ -x "$c_example" ] || { echo "30-rust.sh: $c_example not found (build the C examples)" >&2; exit 1; }
cargo build --offline --locked --release --example layer_loop
rust_example=${CARGO_TARGET_DIR:-$PWD/target}/release/examples/layer_loop

fail=0
for args in "" "--layers 0" "--tokens 0" "--tokens 3 --hidden 100 --layers 3" "--tokens 1 --hidden 7 --layers 1 --seed 12345"; do
  # shellcheck disable=SC2086 # args are word lists
  want=$("$c_example" $args | grep '^checksum: 0x' || true)
  # shellcheck disable=SC2086
  got=$("$rust_example" $args | grep '^checksum: 0x' || true)
  if [ -n "$want" ] && [ "$got" = "$want" ]; then
    echo "layer_loop ${args:-(defaults)}: $got (C and Rust agree)"
  else
    echo "layer_loop ${args:-(defaults)}: Rust printed '$got', C printed '$want'" >&2
    fail=1
  fi
done
# Once through `cargo run`, the documented way to run it.
cargo run --offline --locked --quiet --example layer_loop -- --tokens 2 --hidden 64 --layers 1 | tail -n 1
exit $fail
