#!/usr/bin/env bash
# Go binding (bindings/go/mhc) and Go layer-loop example (examples/go/layer_loop):
#   go vet; go test under GODEBUG=cgocheck=2 (proves the cgo pointer rules hold) and under
#   -race where Go supports it; the example's checksums against the C example's.
# Needs an installed libmhc: scripts/test-all.sh exports PKG_CONFIG_PATH and LD_LIBRARY_PATH;
# run on its own, it falls back to ${MHC_PREFIX:-$MHC_BUILD_DIR/prefix}. Offline: standard
# library only, no module proxy.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${MHC_BUILD_DIR:-$ROOT/build}
PREFIX=${MHC_PREFIX:-$BUILD/prefix}
C_EXAMPLE=$BUILD/examples/c/layer_loop

if ! command -v go >/dev/null 2>&1; then
  echo "40-go.sh: 'go' not found; install Debian's golang-go (scripts/install-deps.sh)" >&2
  exit 1
fi

export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local CGO_ENABLED=1
export MHC_BUILD_DIR=$BUILD
# Go's default caches ($HOME/.cache/go-build, $HOME/go) unless there is no usable HOME.
if [ -z "${GOCACHE:-}" ]; then
  cache=$(go env GOCACHE 2>/dev/null || true)
  if [ -z "$cache" ] || [ "$cache" = off ] || ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
    export GOCACHE=${TMPDIR:-/tmp}/mhc-go/cache
  fi
fi
if [ -z "${GOPATH:-}" ]; then
  gopath=$(go env GOPATH 2>/dev/null || true)
  if [ -z "$gopath" ] || ! mkdir -p "$gopath" 2>/dev/null || [ ! -w "$gopath" ]; then
    export GOPATH=${TMPDIR:-/tmp}/mhc-go/path
  fi
fi

if ! pkg-config --exists mhc 2>/dev/null; then
  if [ -f "$PREFIX/lib/pkgconfig/mhc.pc" ]; then
    export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  else
    echo "40-go.sh: pkg-config cannot find mhc.pc; install libmhc (cmake --install) and set PKG_CONFIG_PATH" >&2
    exit 1
  fi
fi
echo "go: $(go version); libmhc $(pkg-config --modversion mhc) from $(pkg-config --variable=libdir mhc)"

echo "-- go vet ./..."
go vet ./...

echo "-- GODEBUG=cgocheck=2 go test ./..."
GODEBUG=cgocheck=2 go test -count=1 ./...

case "$(go env GOOS)/$(go env GOARCH)" in
  linux/amd64 | linux/arm64)
    echo "-- go test -race ./..."
    go test -race -count=1 ./...
    ;;
esac

echo "-- layer-loop checksums: Go vs C"
if [ ! -x "$C_EXAMPLE" ]; then
  echo "40-go.sh: C example $C_EXAMPLE not found (build with MHC_BUILD_EXAMPLES=ON, or set MHC_BUILD_DIR)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/layer_loop" ./examples/go/layer_loop
fail=0
while IFS= read -r args; do
  # shellcheck disable=SC2086 # word splitting of the argument list is intended
  c=$("$C_EXAMPLE" $args </dev/null | grep '^checksum: ' || true)
  # shellcheck disable=SC2086
  g=$("$tmp/layer_loop" $args </dev/null | grep '^checksum: ' || true)
  if [ "$c" = "$g" ] && [ -n "$c" ]; then
    echo "ok   [${args:-defaults}] $g"
  else
    echo "FAIL [${args:-defaults}] C '$c' vs Go '$g'" >&2
    fail=1
  fi
done <<'EOF'

--layers 0
--tokens 0
--tokens 3 --hidden 100 --layers 3
--seed 7 --tokens 1 --hidden 1 --layers 1
--seed 0xdeadbeef --tokens 17 --hidden 64 --layers 4
EOF
# `go run` works the same way (what the README shows)
g=$(go run ./examples/go/layer_loop --tokens 2 --hidden 8 --layers 1 </dev/null | grep '^checksum: ' || true)
c=$("$C_EXAMPLE" --tokens 2 --hidden 8 --layers 1 </dev/null | grep '^checksum: ' || true)
if [ "$c" = "$g" ] && [ -n "$c" ]; then echo "ok   [go run --tokens 2 --hidden 8 --layers 1] $g"; else
  echo "FAIL go run: C '$c' vs Go '$g'" >&2
  fail=1
fi
exit $fail
