#!/usr/bin/env bash
# The cross-language check of issue #3: the C, Python (package and ctypes-only), Rust and Go
# layer-loop examples (examples/LAYER_LOOP.md) must print the same checksum on the CPU
# backend for the same arguments. A binding that passes any argument wrongly breaks this.
# Runs after 20-python.sh (which builds the extension in place), 30-rust.sh and 40-go.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${MHC_BUILD_DIR:-$ROOT/build}
export PYTHONPATH="$ROOT/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
export MHC_LIBRARY="${MHC_PREFIX:-$BUILD/prefix}/lib/libmhc.so"
export GOFLAGS=-mod=mod GOPROXY=off CARGO_NET_OFFLINE=true
command -v cargo >/dev/null || PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/root/.cargo/bin:$PATH"

(cd bindings/rust && cargo build --offline -q --example layer_loop)
go build -o "$BUILD/go_layer_loop" ./examples/go/layer_loop
RUST_BIN=$(ls -t bindings/rust/target/debug/examples/layer_loop 2>/dev/null | head -1)

checksum() { "$@" | sed -n 's/^checksum: //p'; }
fail=0
for args in "" "--layers 0" "--tokens 0" "--tokens 3 --hidden 100 --layers 3" "--tokens 5 --hidden 4096 --layers 1 --seed 7"; do
  # shellcheck disable=SC2086
  c=$(checksum "$BUILD/examples/c/layer_loop" $args)
  py=$(checksum python3 examples/python/layer_loop.py $args)
  ct=$(checksum python3 examples/python/ctypes_layer_loop.py $args)
  rs=$(checksum "$RUST_BIN" $args)
  go=$(checksum "$BUILD/go_layer_loop" $args)
  status=ok
  for v in "$py" "$ct" "$rs" "$go"; do [ "$v" = "$c" ] && [ -n "$c" ] || status=MISMATCH; done
  [ $status = ok ] || fail=1
  printf '%-8s [%s]  C %s  Python %s  ctypes %s  Rust %s  Go %s\n' "$status" "$args" "$c" "$py" "$ct" "$rs" "$go"
done
exit $fail
