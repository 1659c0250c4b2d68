#!/usr/bin/env bash
# Builds the libFuzzer harness of the mhc C API (fuzz/fuzz_api.c) against a CPU-only libmhc
# compiled from the sources with clang, ASan, UBSan and libFuzzer coverage, then fuzzes it for
# 1,000,000 executions or 120 seconds, whichever comes first, starting from fuzz/corpus.
# Fails on any crash, sanitizer report, leak, timeout or contract violation.
#
#   fuzz/run.sh                 build + fuzz (defaults below)
#   fuzz/run.sh CRASH_FILE...   build + replay the given inputs (reproduce a finding)
#
# Environment: MHC_FUZZ_BUILD (build dir, default build-fuzz), MHC_FUZZ_RUNS (1000000),
# MHC_FUZZ_SECONDS (120).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=${MHC_FUZZ_BUILD:-$ROOT/build-fuzz}
RUNS=${MHC_FUZZ_RUNS:-1000000}
SECONDS_CAP=${MHC_FUZZ_SECONDS:-120}
CC=${MHC_FUZZ_CC:-clang}
RT=$("$CC" -print-resource-dir)/lib/linux

# libmhc with coverage instrumentation and sanitizers. The ASan runtime is shared
# (-shared-libasan) because libmhc links with --no-undefined; the harness links libstdc++
# (which libFuzzer needs) after the ASan runtime so that the runtime is loaded first.
mkdir -p "$BUILD"
CC="$CC" CXX="${MHC_FUZZ_CXX:-clang++}" cmake -S "$ROOT" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMHC_ENABLE_CUDA=OFF \
  -DMHC_BUILD_TESTS=OFF -DMHC_BUILD_EXAMPLES=OFF -DMHC_BUILD_BENCH=OFF \
  -DMHC_SANITIZE=address,undefined,fuzzer-no-link \
  -DCMAKE_CXX_FLAGS="-fsanitize-coverage-ignorelist=$ROOT/fuzz/coverage-ignore.txt" \
  -DCMAKE_SHARED_LINKER_FLAGS=-shared-libasan >"$BUILD/configure.log" 2>&1 \
  || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" --target mhc >"$BUILD/build.log" 2>&1 || { cat "$BUILD/build.log"; exit 1; }

"$CC" -std=c11 -D_DEFAULT_SOURCE -g -O2 -Wall -Wextra -Werror \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
  -shared-libasan -nostdlib++ -I"$ROOT/include" -I"$BUILD/include" \
  fuzz/fuzz_api.c -o "$BUILD/mhc_fuzz" \
  -L"$BUILD" -lmhc -Wl,-rpath,"$BUILD" -Wl,-rpath,"$RT" -lm -lstdc++

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

if [ $# -gt 0 ]; then
  exec "$BUILD/mhc_fuzz" "$@"
fi

# New inputs go to a scratch corpus in the build dir; fuzz/corpus (the seeds) is read only.
mkdir -p "$BUILD/corpus" "$BUILD/artifacts"
LOG=$BUILD/fuzz.log
set +e
"$BUILD/mhc_fuzz" -runs="$RUNS" -max_total_time="$SECONDS_CAP" -timeout=10 \
  -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
  -dict=fuzz/mhc.dict -artifact_prefix="$BUILD/artifacts/" \
  "$BUILD/corpus" fuzz/corpus >"$LOG" 2>&1
rc=$?
set -e
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$LOG" | tail -1)
secs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOG" | tail -1)
cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$LOG" | tail -1 || true)
if [ $rc -ne 0 ]; then
  tail -n 80 "$LOG"
  echo "fuzz: FAILED (exit $rc) after ${execs:-?} executions; reproducer(s) in $BUILD/artifacts/:"
  ls -1 "$BUILD/artifacts/" || true
  exit 1
fi
echo "fuzz: OK, ${execs:-?} executions (${secs:-?}/s), ${cov:-no coverage line}, no crash, leak or timeout"
