#!/usr/bin/env bash
# The README's test command: builds libmhc, installs it into build/prefix, and runs every
# test: C tests (ctest; GPU tests skip without a GPU), the bindings' tests, the layer-loop
# checksum comparison, sanitizers and a short fuzz run. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${MHC_BUILD_DIR:-$ROOT/build}
export MHC_PREFIX=${MHC_PREFIX:-$BUILD/prefix}
JOBS=$(nproc)

cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMHC_ENABLE_CUDA="${MHC_ENABLE_CUDA:-AUTO}"
cmake --build "$BUILD" -j "$JOBS"
cmake --install "$BUILD" --prefix "$MHC_PREFIX" >/dev/null
export PKG_CONFIG_PATH="$MHC_PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
export LD_LIBRARY_PATH="$MHC_PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

echo "== C tests (ctest)"
ctest --test-dir "$BUILD" --output-on-failure -j "$JOBS"

for t in scripts/test.d/*.sh; do
  [ -e "$t" ] || continue
  echo "== $t"
  bash "$t"
done
echo "== all tests passed"
