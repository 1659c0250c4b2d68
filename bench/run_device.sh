#!/usr/bin/env bash
# Build libmhc + mhc_bench on the GPU machine and run the bench and/or compare_torch.py.
#
#   bash bench/run_device.sh MODE [extra args for the tool...]
#
# MODE: bench | bench-quick | compare | compare-quick | quick (bench-quick + compare-quick)
# Results (JSON, text, build logs) go to $OUT (default /tmp/mhc-bench-out).
# DLPack's header is taken from /usr/include, else from .gpu/include (if carried), else a
# one-line shim over the copy that ships with PyTorch (ATen/dlpack.h).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-/tmp/mhc-bench-out}
mkdir -p "$OUT"
MODE=${1:-bench}
shift || true

INC=""
if [ ! -f /usr/include/dlpack/dlpack.h ]; then
  if [ -f "$ROOT/.gpu/include/dlpack/dlpack.h" ]; then
    INC="-I$ROOT/.gpu/include"
  else
    TI=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "include"))')
    mkdir -p /tmp/mhc-dlshim/dlpack
    printf '#include <ATen/dlpack.h>\n' > /tmp/mhc-dlshim/dlpack/dlpack.h
    INC="-I/tmp/mhc-dlshim -I$TI"
  fi
fi

echo "== build (logs in $OUT)"
nvidia-smi -L 2>/dev/null
if ! cmake -S . -B build-bench -G Ninja -DMHC_ENABLE_CUDA=ON -DMHC_BUILD_TESTS=OFF \
    -DMHC_BUILD_EXAMPLES=OFF -DMHC_BUILD_BENCH=ON -DCMAKE_CUDA_ARCHITECTURES=90a-real \
    -DCMAKE_C_FLAGS="$INC" -DCMAKE_CXX_FLAGS="$INC" -DCMAKE_CUDA_FLAGS="$INC" \
    > "$OUT/cmake.log" 2>&1; then
  tail -30 "$OUT/cmake.log"; exit 1
fi
if ! ninja -C build-bench mhc_bench > "$OUT/ninja.log" 2>&1; then
  grep -m10 -B2 -A6 "error" "$OUT/ninja.log"; exit 1
fi

rc=0
run_bench() {
  echo "== mhc_bench $*"
  build-bench/bench/mhc_bench "$@" 2> "$OUT/bench.stderr" | tee "$OUT/bench.txt"
  local r=${PIPESTATUS[0]}
  tail -20 "$OUT/bench.stderr"
  [ "$r" = 0 ] || rc=$r
}
run_compare() {
  echo "== compare_torch.py $*"
  python3 bench/compare_torch.py --lib build-bench/libmhc.so "$@" 2> "$OUT/compare.stderr" \
    | tee "$OUT/compare.txt"
  local r=${PIPESTATUS[0]}
  grep -v "^W[0-9]" "$OUT/compare.stderr" | tail -20
  [ "$r" = 0 ] || rc=$r
}

case "$MODE" in
  bench) run_bench --json "$OUT/bench.json" "$@" ;;
  bench-quick) run_bench --quick --json "$OUT/bench.json" "$@" ;;
  compare) run_compare --json "$OUT/compare.json" "$@" ;;
  compare-quick) run_compare --quick --json "$OUT/compare.json" "$@" ;;
  quick)
    run_bench --quick --json "$OUT/bench.json" "$@"
    run_compare --quick --json "$OUT/compare.json" ;;
  *) echo "unknown mode $MODE (bench, bench-quick, compare, compare-quick, quick)"; exit 2 ;;
esac
exit $rc
