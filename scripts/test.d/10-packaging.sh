#!/usr/bin/env bash
# Packaging (issue #2 item 5): the installed library is consumable by pkg-config and by
# find_package(mhc CONFIG); its SONAME is libmhc.so.<major>; it exports only mhc_* symbols;
# the CUDA runtime is linked statically (no libcudart dependency).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${MHC_BUILD_DIR:-$ROOT/build}
PREFIX=$(mktemp -d)
WORK=$(mktemp -d)
trap 'rm -rf "$PREFIX" "$WORK"' EXIT
cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null
LIB=$(ls "$PREFIX"/lib*/libmhc.so.*.*.* | head -1)
LIBDIR=$(dirname "$LIB")

soname=$(readelf -d "$LIB" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
echo "SONAME: $soname"
[ "$soname" = "libmhc.so.0" ] || { echo "unexpected SONAME" >&2; exit 1; }

others=$(nm -D --defined-only "$LIB" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | grep -v '^mhc_' || true)
echo "exported symbols: $(nm -D --defined-only "$LIB" | awk '$2 ~ /^[TDBRVW]$/' | wc -l), all mhc_*: $([ -z "$others" ] && echo yes || echo no)"
[ -z "$others" ] || { echo "symbols outside mhc_*: $others" >&2; exit 1; }

if readelf -d "$LIB" | grep -q 'NEEDED.*libcudart'; then
  echo "libmhc depends on the shared CUDA runtime" >&2; exit 1
fi
echo "dynamic dependencies: $(readelf -d "$LIB" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"

echo "-- pkg-config"
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig"
flags=$(pkg-config --cflags --libs mhc)
echo "pkg-config --cflags --libs mhc: $flags"
# shellcheck disable=SC2086
cc -std=c99 -Wall -Werror tests/packaging/consumer.c $flags -o "$WORK/consumer-pc"
LD_LIBRARY_PATH="$LIBDIR" "$WORK/consumer-pc"

echo "-- find_package(mhc CONFIG)"
cmake -S tests/packaging -B "$WORK/cmake" -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" >/dev/null
cmake --build "$WORK/cmake" >/dev/null
LD_LIBRARY_PATH="$LIBDIR" "$WORK/cmake/consumer"
echo "packaging: OK"
