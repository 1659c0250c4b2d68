#!/usr/bin/env bash
# Runs every GPU test of a build (ctest label `gpu`) under NVIDIA compute-sanitizer with each
# of its tools -- memcheck (with device leak check), racecheck, initcheck, synccheck -- each
# with --error-exitcode 1, and prints a summary table: tool, tests run, skipped, failed,
# errors reported. Exits non-zero if any tool reported an error or any test failed.
#
#   scripts/gpu-sanitizers.sh [BUILD_DIR]     (default: build)
#
# Needs a CUDA build (cmake -DMHC_ENABLE_CUDA=ON) and a GPU; compute-sanitizer from PATH or
# /usr/local/cuda/bin. Tests exiting with 77 (no device) count as skipped. The tests run in
# their quick mode (MHC_HARDENING_QUICK=1: fewer loop iterations, same checks), since every
# kernel is 10-100x slower under the tools.
#
# Environment: MHC_SANITIZER_TOOLS (default "memcheck racecheck initcheck synccheck"),
# MHC_SANITIZER_TIMEOUT (seconds per test and tool, default 600), MHC_SANITIZER_FILTER
# (ctest -R regex, default all gpu tests), MHC_HARDENING_QUICK (default 1),
# MHC_GPU_TESTS_QUICK (default 1: gpu.accuracy on fewer T, one per launch configuration;
# gpu.properties with T = 320 for its batch-invariance reference and its largest
# determinism and graph cases),
# MHC_SANITIZER_KNOWN_BUGS=1 (also run tests labelled known-bug, reproducers that fail on
# purpose; skipped by default), MHC_SANITIZER_STALL_RETRIES (default 2, see below).
#
# Stalls: racecheck of gpu.hardening.streams (8 host threads launching on their own streams)
# stalls now and then inside the tool: on an H200 (CUDA 13.0, driver 580) 9 of 26 runs alone
# were still running when killed (after 40-200 s) while the others took 8-9 s; 0 of 10 run
# beside each other stalled.
# Host stacks of a stalled run show every thread waiting on read/write locks inside libcuda,
# taken from the sanitizer's launch callbacks, one of them in cuLaunchKernelEx of a kernel
# launched with programmatic stream serialization (libmhc takes no lock of its own on that
# path). Without a tool the test never stalled (60 runs). scripts/repro/racecheck_pdl_threads.cu,
# with no libmhc in it, did not finish under racecheck with 8 threads either (4 of 4 runs killed
# after 30-50 s; 6 s with one thread). So a run that times out with no error reported
# and no test failure in its log is run again, up to MHC_SANITIZER_STALL_RETRIES times; the
# table counts every stall, and a test that stalls every time fails. Errors and test
# failures are never retried.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$(cd "${1:-$ROOT/build}" && pwd) || { echo "no build dir ${1:-build}" >&2; exit 2; }
TOOLS=${MHC_SANITIZER_TOOLS:-memcheck racecheck initcheck synccheck}
TIMEOUT=${MHC_SANITIZER_TIMEOUT:-600}
RETRIES=${MHC_SANITIZER_STALL_RETRIES:-2}
export MHC_HARDENING_QUICK=${MHC_HARDENING_QUICK:-1}
export MHC_GPU_TESTS_QUICK=${MHC_GPU_TESTS_QUICK:-1}

CS=$(command -v compute-sanitizer || true)
[ -z "$CS" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ] && CS=/usr/local/cuda/bin/compute-sanitizer
if [ -z "$CS" ]; then
  echo "compute-sanitizer not found (PATH or /usr/local/cuda/bin)" >&2
  exit 2
fi
echo "compute-sanitizer: $CS ($("$CS" --version | grep -iE 'version' | head -1))"

# The gpu tests: name, working directory and command line, from ctest's JSON.
LIST=$(mktemp)
trap 'rm -f "$LIST"' EXIT
EXCLUDE=(-LE known-bug)
[ "${MHC_SANITIZER_KNOWN_BUGS:-0}" != 0 ] && EXCLUDE=()
ctest --test-dir "$BUILD" -L gpu "${EXCLUDE[@]}" ${MHC_SANITIZER_FILTER:+-R "$MHC_SANITIZER_FILTER"} \
  --show-only=json-v1 | python3 -c '
import json, shlex, sys
d = json.load(sys.stdin)
for t in d.get("tests", []):
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    cwd = props.get("WORKING_DIRECTORY", ".")
    env = " ".join(shlex.quote(e) for e in props.get("ENVIRONMENT", []))  # e.g. a config override
    print(t["name"] + "\t" + cwd + "\t" + (("env " + env + " ") if env else "") +
          " ".join(shlex.quote(a) for a in t["command"]))
' >"$LIST" || { echo "cannot list the gpu tests of $BUILD" >&2; exit 2; }
ntests=$(wc -l <"$LIST")
if [ "$ntests" -eq 0 ]; then
  echo "no gpu tests in $BUILD (a CPU-only build?)" >&2
  exit 2
fi
LOGDIR=$BUILD/gpu-sanitizers
mkdir -p "$LOGDIR"
echo "$ntests gpu tests; logs in $LOGDIR"

# What a log can report: a sanitizer finding, a CUDA API error, a leak, a failed test. A run
# killed by the timeout with none of these is a stall; a failed run prints them.
FINDINGS='^========= (Error|Warning|Invalid|Race|Uninitialized|Barrier|Program hit|Leaked|ERROR)|FAILED|Failure'

declare -A RUN SKIP FAIL ERRS STALLS
status=0
for tool in $TOOLS; do
  RUN[$tool]=0; SKIP[$tool]=0; FAIL[$tool]=0; ERRS[$tool]=0; STALLS[$tool]=0
  case $tool in
    memcheck) opts=(--leak-check full) ;;
    racecheck) opts=(--racecheck-report all) ;;
    *) opts=() ;;
  esac
  while IFS=$'\t' read -r name cwd cmd; do
    log=$LOGDIR/$tool.$name.log
    start=$SECONDS
    envs=
    if [[ $cmd == "env "* ]]; then envs=${cmd%% /*}; cmd=/${cmd#* /}; fi  # the test's ENVIRONMENT
    stalls=0
    while :; do
      (cd "$cwd" && eval "$envs timeout $TIMEOUT \"$CS\" --tool $tool --error-exitcode 1 ${opts[*]:-} $cmd") >"$log" 2>&1
      rc=$?
      errs=$(sed -n 's/^========= ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$log" | tail -1)
      errs=${errs:-0}
      if [ $rc -eq 124 ] && [ "$errs" -eq 0 ] && [ $stalls -lt "$RETRIES" ] &&
         ! grep -qE "$FINDINGS" "$log"; then
        stalls=$((stalls + 1))
        mv "$log" "$log.stall$stalls"
        echo "$tool $name: stalled (no report after ${TIMEOUT}s), running it again" >&2
        continue
      fi
      break
    done
    RUN[$tool]=$((RUN[$tool] + 1))
    ERRS[$tool]=$((ERRS[$tool] + errs))
    STALLS[$tool]=$((STALLS[$tool] + stalls))
    if [ $rc -eq 77 ]; then
      SKIP[$tool]=$((SKIP[$tool] + 1)); verdict=skipped
    elif [ $rc -ne 0 ] || [ "$errs" -ne 0 ]; then
      FAIL[$tool]=$((FAIL[$tool] + 1)); verdict="FAILED (exit $rc, $errs errors)"; status=1
    else
      verdict=ok
    fi
    [ $stalls -gt 0 ] && verdict="$verdict after $stalls stall(s)"
    printf '%-10s %-28s %-30s %5ds\n' "$tool" "$name" "$verdict" $((SECONDS - start))
    if [[ $verdict != ok* ]] && [ "$verdict" != skipped ]; then
      grep -E "$FINDINGS|^=========     at " "$log" | head -20
    fi
  done <"$LIST"
done

echo
printf '%-10s | %9s | %7s | %6s | %6s | %6s\n' tool "tests run" skipped failed errors stalls
printf -- '-----------+-----------+---------+--------+--------+-------\n'
for tool in $TOOLS; do
  printf '%-10s | %9d | %7d | %6d | %6d | %6d\n' "$tool" "${RUN[$tool]}" "${SKIP[$tool]}" \
    "${FAIL[$tool]}" "${ERRS[$tool]}" "${STALLS[$tool]}"
done
exit $status
