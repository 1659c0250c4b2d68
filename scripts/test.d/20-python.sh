#!/usr/bin/env bash
# Python binding: builds the SWIG extension in place (bindings/python/build_ext.sh; it runs swig
# when present, else uses bindings/python/generated/), checks that `pip install` of the
# package works (in a throw-away venv, offline), runs the pytest suite and both Python
# layer-loop examples, whose checksums must equal the C example's.
# Expects libmhc installed where pkg-config finds it (scripts/test-all.sh exports
# PKG_CONFIG_PATH and LD_LIBRARY_PATH for $MHC_PREFIX) and the C example at
# ${MHC_BUILD_DIR:-<repo>/build}/examples/c/layer_loop. MHC_PY_SKIP_PIP=1 skips the pip
# check (for machines without network and without setuptools+wheel); PYTHON picks the
# interpreter (default python3).
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore
cd "$(dirname "$0")/../.."
ROOT=$PWD
BUILD=${MHC_BUILD_DIR:-$ROOT/build}
PY=${PYTHON:-python3}
export PYTHONDONTWRITEBYTECODE=1

echo "-- build the extension in place"
bash bindings/python/build_ext.sh
export PYTHONPATH="$ROOT/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c 'import mhc; print("mhc", mhc.__version__, "from", mhc.__file__)'

echo "-- pip install of the package (into a throw-away directory)"
TARGET=$(mktemp -d)
trap 'rm -rf "$TARGET"' EXIT
if [ "${MHC_PY_SKIP_PIP:-0}" = 1 ]; then
  echo "(MHC_PY_SKIP_PIP=1: pip install not checked)"
else
  PIP=("$PY" -m pip install -q --no-deps --disable-pip-version-check --target "$TARGET")
  if "$PY" -c 'import setuptools, wheel' 2>/dev/null; then
    PIP+=(--no-build-isolation --no-index)  # offline
  fi  # else pip fetches setuptools and wheel for an isolated build
  "${PIP[@]}" "$ROOT/bindings/python"
  (cd "$TARGET" && PYTHONPATH="$TARGET" "$PY" -c \
    'import os, sys, mhc, mhc._mhc; assert mhc.__file__.startswith(sys.argv[1]), mhc.__file__; print("pip-installed mhc", mhc.__version__, "ok")' "$TARGET")
  rm -rf "$ROOT/bindings/python/build" "$ROOT/bindings/python/mhc.egg-info"
fi

echo "-- pytest"
"$PY" -m pytest -q -p no:cacheprovider bindings/python/tests

echo "-- layer-loop examples against $BUILD/examples/c/layer_loop"
C_LOOP=$BUILD/examples/c/layer_loop
[ -x "$C_LOOP" ] || { echo "missing $C_LOOP (build with MHC_BUILD_EXAMPLES=ON)" >&2; exit 1; }
checksum() { "$@" | sed -n 's/^checksum: //p'; }
fail=0
while IFS= read -r args; do
  # shellcheck disable=SC2086
  want=$(checksum "$C_LOOP" $args)
  # shellcheck disable=SC2086
  got_pkg=$(checksum "$PY" examples/python/layer_loop.py $args)
  # shellcheck disable=SC2086
  got_ctypes=$(checksum "$PY" examples/python/ctypes_layer_loop.py $args)
  if [ -n "$want" ] && [ "$want" = "$got_pkg" ] && [ "$want" = "$got_ctypes" ]; then
    echo "ok   [${args:-defaults}] checksum $want"
  else
    echo "FAIL [${args:-defaults}] C=$want layer_loop.py=$got_pkg ctypes_layer_loop.py=$got_ctypes"
    fail=1
  fi
done <<'ARGS'

--layers 0
--tokens 0
--tokens 0 --layers 0
--tokens 3 --hidden 100 --layers 3
--tokens 1 --hidden 1 --layers 1
--tokens 5 --hidden 64 --layers 1 --seed 7
--tokens 2 --hidden 4096 --layers 1 --seed 0x2a
ARGS
[ "$fail" = 0 ] || { echo "layer-loop checksums differ" >&2; exit 1; }
echo "python: all checks passed"
