#!/usr/bin/env bash
# Runs the GPU checks on a lent H100/H200 against a CUDA build made elsewhere and carried
# over (plus .gpu/ from ../shared/scripts/gpu-pack.sh: the DLPack header and libcmocka).
#
#   scripts/gpu-suite.sh tests  [BUILD]   ctest -L gpu, C layer loop --cuda, Python CUDA tests
#   scripts/gpu-suite.sh perf   [BUILD]   mhc_bench (full grid, or $BENCH_ARGS) and
#                                         compare_torch.py --quick (unless SKIP_COMPARE=1)
#   scripts/gpu-suite.sh sanitize [BUILD] scripts/gpu-sanitizers.sh on the GPU tests
#
# Logs go to $OUT (default /tmp/mhc-gpu-out). The build's absolute paths are those of the
# machine that built it; a symlink makes them valid here.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MODE=${1:-tests}
BUILD=${2:-build-gpu}
OUT=${OUT:-/tmp/mhc-gpu-out}
mkdir -p "$OUT"
BUILT_AT=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")
if [ -n "$BUILT_AT" ] && [ "$BUILT_AT" != "$ROOT" ] && [ ! -e "$BUILT_AT" ]; then
  mkdir -p "$(dirname "$BUILT_AT")" && ln -s "$ROOT" "$BUILT_AT"
fi
export LD_LIBRARY_PATH="$ROOT/.gpu/lib:$ROOT/$BUILD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export CPATH="$ROOT/.gpu/include${CPATH:+:$CPATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
rc=0
case "$MODE" in
  tests)
    echo "== ctest -L gpu"
    ctest --test-dir "$BUILD" -L gpu --output-on-failure > "$OUT/ctest-gpu.log" 2>&1 || rc=1
    grep -E "tests passed|Test +#|Failed|\*\*\*" "$OUT/ctest-gpu.log" | tail -15
    echo "== C layer loop, CUDA backend"
    "$BUILD/examples/c/layer_loop" --cuda --tokens 16 --hidden 7168 --layers 4 | tail -3 || rc=1
    echo "== Python binding on the GPU (extension built from the carried SWIG wrapper)"
    cmake --install "$BUILD" --prefix "$ROOT/$BUILD/prefix" > /dev/null
    export PKG_CONFIG_PATH="$ROOT/$BUILD/prefix/lib/pkgconfig" LD_LIBRARY_PATH="$ROOT/$BUILD/prefix/lib:$LD_LIBRARY_PATH"
    MHC_PY_SKIP_PIP=1 MHC_BUILD_DIR="$ROOT/$BUILD" MHC_PREFIX="$ROOT/$BUILD/prefix" \
      bash scripts/test.d/20-python.sh > "$OUT/python.log" 2>&1 || rc=1
    grep -E "passed|failed|error|checks" "$OUT/python.log" | tail -6
    PYTHONPATH="$ROOT/bindings/python" python3 -m pytest -q -rs bindings/python/tests/test_torch.py \
      > "$OUT/python-torch.log" 2>&1 || rc=1
    tail -3 "$OUT/python-torch.log"
    ;;
  perf)
    echo "== mhc_bench"
    # shellcheck disable=SC2086
    "$BUILD/bench/mhc_bench" --json "$OUT/bench.json" ${BENCH_ARGS:-} > "$OUT/bench.txt" 2> "$OUT/bench.stderr" || rc=1
    cat "$OUT/bench.txt"; tail -5 "$OUT/bench.stderr"
    [ "${SKIP_COMPARE:-0}" = 1 ] && exit $rc
    echo "== compare_torch.py --quick"
    python3 bench/compare_torch.py --lib "$BUILD/libmhc.so" --quick --json "$OUT/compare.json" \
      > "$OUT/compare.txt" 2> "$OUT/compare.stderr" || rc=1
    cat "$OUT/compare.txt"; grep -v "^W[0-9]" "$OUT/compare.stderr" | tail -5
    ;;
  sanitize)
    bash scripts/gpu-sanitizers.sh "$BUILD" > "$OUT/sanitizers.log" 2>&1 || rc=1
    tail -25 "$OUT/sanitizers.log"
    ;;
esac
exit $rc
