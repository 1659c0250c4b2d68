#!/usr/bin/env bash
# Fuzzing of the whole C API (issue #5): fuzz/run.sh builds the libFuzzer harness against a
# CPU-only libmhc with ASan + UBSan and runs it for 1,000,000 executions or 120 seconds,
# whichever comes first, from the seed corpus fuzz/corpus. Fails on any crash, sanitizer
# report, leak, timeout or contract violation, leaving the reproducer in build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash fuzz/run.sh
