#!/usr/bin/env bash
# Sanitizers (issue #5), run by scripts/test-all.sh after the normal build and its ctest.
#
# 1. A separate Debug build with clang, ASan + UBSan (halt on the first error), CPU backend
#    only, of libmhc and every C test; runs the `unit` and `hardening` ctest labels under it,
#    with LeakSanitizer on (every test process must exit without a leak report).
# 2. LeakSanitizer over the context create/destroy loop (tests/hardening/test_lifecycle.c:
#    thousands of rounds, every error path), after a positive control that proves LSan is
#    active in this environment.
# 3. valgrind --leak-check=full --error-exitcode=1 on the same loop (and the error-path test)
#    in the normal, unsanitized build.
#
# Environment: MHC_BUILD_DIR (the normal build, default build/), MHC_SAN_BUILD_DIR (default
# build-asan/), MHC_LSAN_ROUNDS (5000), MHC_VALGRIND_ROUNDS (1000).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${MHC_BUILD_DIR:-$ROOT/build}
SAN=${MHC_SAN_BUILD_DIR:-$ROOT/build-asan}
JOBS=$(nproc)
LSAN_ROUNDS=${MHC_LSAN_ROUNDS:-5000}
VG_ROUNDS=${MHC_VALGRIND_ROUNDS:-1000}
RT=$(clang -print-resource-dir)/lib/linux
t_start=$SECONDS

# ---- 1. ASan + UBSan build and tests ----------------------------------------------------
# libmhc links with --no-undefined, so the ASan runtime is the shared one (-shared-libasan),
# found through the rpath. Debug (no NDEBUG), but -O1 as the sanitizers recommend: at -O0 the
# float64 reference tests alone take minutes under ASan.
echo "-- sanitizer build ($SAN): clang, Debug -O1, -fsanitize=address,undefined, CPU only"
CC=clang CXX=clang++ cmake -S "$ROOT" -B "$SAN" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DCMAKE_CXX_FLAGS_DEBUG="-g -O1" \
  -DMHC_ENABLE_CUDA=OFF -DMHC_SANITIZE=address,undefined -DMHC_BUILD_BENCH=OFF \
  -DCMAKE_SHARED_LINKER_FLAGS=-shared-libasan \
  -DCMAKE_EXE_LINKER_FLAGS="-shared-libasan -Wl,-rpath,$RT" >/dev/null
cmake --build "$SAN" -j "$JOBS"

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=report_objects=1

failed=()
echo "-- ctest -L 'unit|hardening' under ASan + UBSan + LSan"
# The sanitized libmhc must win over the one scripts/test-all.sh put on LD_LIBRARY_PATH (which
# takes precedence over the test binaries' RUNPATH, and may be a CUDA build).
export LD_LIBRARY_PATH="$SAN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ctest --test-dir "$SAN" -L 'unit|hardening' --output-on-failure -j "$JOBS" >"$SAN/ctest-sanitizers.log" 2>&1 \
  || failed+=("ctest under ASan+UBSan+LSan (see the failures above)")
grep -vE '^ *Start ' "$SAN/ctest-sanitizers.log"
summary=$(grep -E '^[0-9]+% tests passed' "$SAN/ctest-sanitizers.log" || true)

# ---- 2. LeakSanitizer over the create/destroy loop ----------------------------------------
echo "-- LeakSanitizer positive control (a deliberate leak must be reported)"
ctl=$(mktemp -d)
printf '#include <stdlib.h>\nvoid *volatile sink;\nint main(void){ sink = malloc(77); sink = 0; return 0; }\n' >"$ctl/leak.c"
clang -g -fsanitize=address "$ctl/leak.c" -o "$ctl/leak"
if "$ctl/leak" 2>"$ctl/out"; then
  cat "$ctl/out"
  echo "LeakSanitizer is not working here (the control leak was not reported)" >&2
  exit 1
fi
grep -q "detected memory leaks" "$ctl/out" || { cat "$ctl/out"; echo "LeakSanitizer failed" >&2; exit 1; }
rm -rf "$ctl"
echo "   control leak reported: LSan is active"

echo "-- LeakSanitizer: $LSAN_ROUNDS create/destroy rounds with every error path"
if "$SAN/tests/hardening/mhc_hardening_lifecycle" "$LSAN_ROUNDS" >"$SAN/lsan-loop.log" 2>&1; then
  grep -E "rounds|PASSED" "$SAN/lsan-loop.log"
  echo "   LeakSanitizer: no leaks"
else
  cat "$SAN/lsan-loop.log"
  failed+=("LeakSanitizer create/destroy loop")
fi

# ---- 3. valgrind on the normal build ------------------------------------------------------
if [ ! -x "$BUILD/tests/hardening/mhc_hardening_lifecycle" ]; then
  BUILD=$ROOT/build-valgrind
  echo "-- no normal build with the hardening tests: building $BUILD"
  cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMHC_ENABLE_CUDA=OFF >/dev/null
  cmake --build "$BUILD" -j "$JOBS" >/dev/null
fi
VG=(valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 --track-origins=yes)
export LD_LIBRARY_PATH="$BUILD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for t in "mhc_hardening_lifecycle $VG_ROUNDS" "mhc_hardening_errors"; do
  set -- $t
  echo "-- valgrind: $BUILD/tests/hardening/$*"
  if "${VG[@]}" --log-file="$BUILD/valgrind-$1.log" "$BUILD/tests/hardening/$@" >"$BUILD/valgrind-$1.out" 2>&1; then
    grep -E "rounds|PASSED" "$BUILD/valgrind-$1.out" || true
    echo "   valgrind: 0 errors, no leaks"
  else
    cat "$BUILD/valgrind-$1.out" "$BUILD/valgrind-$1.log"
    failed+=("valgrind $1")
  fi
done

echo "-- sanitizers: ${summary:-ctest summary missing} under ASan+UBSan+LSan; $((SECONDS - t_start)) s"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "-- sanitizers OK: LSan loop of $LSAN_ROUNDS rounds clean, valgrind clean"
