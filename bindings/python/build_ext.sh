#!/usr/bin/env bash
# Builds the low-level extension module mhc._mhc of the Python package in place, with or
# without SWIG.
#
#   bindings/python/build_ext.sh [all|gen|build]
#
#   gen    run SWIG on bindings/swig/mhc.i against the installed header: writes
#          generated/_mhc_wrap.c, generated/_mhc.py and generated/STAMP (hashes of the inputs).
#   build  compile generated/_mhc_wrap.c with the C compiler into mhc/_mhc_ext<EXT_SUFFIX> and
#          copy generated/_mhc.py to mhc/_mhc.py. Needs no SWIG: this is how to build on a
#          machine without it (copy generated/ there first). Refuses a wrapper generated
#          from another header or interface (MHC_ALLOW_STALE_WRAPPER=1 overrides).
#   all    (default) gen when swig is on the PATH, otherwise reuse generated/; then build.
#
# The library is found with `pkg-config mhc` (set PKG_CONFIG_PATH to <prefix>/lib/pkgconfig),
# or with MHC_PREFIX (<prefix>/include, <prefix>/lib). Honours PYTHON (default python3), CC
# (default cc), CFLAGS, LDFLAGS, SWIG (default swig). The extension gets an rpath to the
# library's directory. When the compiler finds no dlpack/dlpack.h (no libdlpack-dev), the
# build uses the DLPack header that ships with an installed torch (torch/include/ATen).
# Afterwards: PYTHONPATH=bindings/python python3 -c 'import mhc'.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODE=${1:-all}
PYTHON=${PYTHON:-python3}
CC=${CC:-cc}
SWIG=${SWIG:-swig}
IFACE=${MHC_SWIG_INTERFACE:-$ROOT/bindings/swig/mhc.i}
GEN=$HERE/generated

die() { echo "build_ext.sh: $*" >&2; exit 1; }

if pkg-config --exists mhc 2>/dev/null; then
  INCDIR=$(pkg-config --variable=includedir mhc)
  LIBDIR=$(pkg-config --variable=libdir mhc)
elif [ -n "${MHC_PREFIX:-}" ]; then
  INCDIR=$MHC_PREFIX/include
  LIBDIR=$MHC_PREFIX/lib
else
  die "libmhc not found: set PKG_CONFIG_PATH=<prefix>/lib/pkgconfig or MHC_PREFIX=<prefix>"
fi
INCDIR=$(cd "$INCDIR" 2>/dev/null && pwd) || die "include directory of libmhc not found"
LIBDIR=$(cd "$LIBDIR" 2>/dev/null && pwd) || die "library directory of libmhc not found"
[ -f "$INCDIR/mhc/mhc.h" ] || die "no $INCDIR/mhc/mhc.h"
[ -f "$INCDIR/mhc/version.h" ] || die "no $INCDIR/mhc/version.h"

# What the wrapper is generated from: the interface and the installed public headers.
stamp() {
  (cd / && sha256sum "$IFACE" "$INCDIR/mhc/mhc.h" "$INCDIR/mhc/version.h") | awk '{print $1}' | tr '\n' ' '
  echo
}

gen() {
  command -v "$SWIG" >/dev/null || die "swig not found (needed to generate the wrapper)"
  mkdir -p "$GEN"
  "$SWIG" -python -builtin -interface _mhc_ext -Wall -Werror -I"$INCDIR" -outdir "$GEN" -o "$GEN/_mhc_wrap.c" "$IFACE"
  stamp >"$GEN/STAMP"
  echo "build_ext.sh: generated $GEN/_mhc_wrap.c with $("$SWIG" -version | awk '/Version/{print $3}')"
}

build() {
  [ -f "$GEN/_mhc_wrap.c" ] && [ -f "$GEN/_mhc.py" ] ||
    die "no generated wrapper in $GEN: run '$0 gen' on a machine with swig and copy $GEN here"
  if [ "$(stamp)" != "$(cat "$GEN/STAMP" 2>/dev/null)" ]; then
    if [ "${MHC_ALLOW_STALE_WRAPPER:-0}" = 1 ]; then
      echo "build_ext.sh: warning: $GEN was generated from another mhc.h/mhc.i" >&2
    else
      die "$GEN was generated from another mhc.h or mhc.i than $INCDIR/mhc/mhc.h and $IFACE: regenerate it (or MHC_ALLOW_STALE_WRAPPER=1)"
    fi
  fi
  local pyinc suffix
  pyinc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  suffix=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
  [ -f "$pyinc/Python.h" ] || die "no Python.h in $pyinc (install the Python development headers)"
  # dlpack/dlpack.h: the system's (Debian libdlpack-dev), else the copy that ships with torch
  local dlpack_flags=""
  # shellcheck disable=SC2086
  if ! printf '#include <dlpack/dlpack.h>\n' | "$CC" ${CFLAGS:-} -I"$INCDIR" -E -x c - >/dev/null 2>&1; then
    local tinc
    tinc=$("$PYTHON" -c 'import importlib.util as u, os; s = u.find_spec("torch"); print(os.path.join(s.submodule_search_locations[0], "include") if s else "")' 2>/dev/null || true)
    [ -n "$tinc" ] && [ -f "$tinc/ATen/dlpack.h" ] ||
      die "dlpack/dlpack.h not found: install libdlpack-dev or add -I<dir> to CFLAGS"
    mkdir -p "$HERE/build/dlpack-shim/dlpack"
    printf '#include <ATen/dlpack.h>\n' >"$HERE/build/dlpack-shim/dlpack/dlpack.h"
    dlpack_flags="-I$HERE/build/dlpack-shim -I$tinc"
    echo "build_ext.sh: no dlpack/dlpack.h on the include path; using torch's $tinc/ATen/dlpack.h"
  fi
  local out="$HERE/mhc/_mhc_ext$suffix"
  # shellcheck disable=SC2086
  "$CC" -shared -fPIC -O2 -fno-strict-aliasing -Wno-unused-parameter \
    -I"$pyinc" -I"$INCDIR" $dlpack_flags ${CFLAGS:-} "$GEN/_mhc_wrap.c" -o "$out.tmp" \
    -L"$LIBDIR" -lmhc -Wl,-rpath,"$LIBDIR" ${LDFLAGS:-}
  mv -f "$out.tmp" "$out"
  cp -f "$GEN/_mhc.py" "$HERE/mhc/_mhc.py"
  echo "build_ext.sh: built $out against $LIBDIR"
}

case "$MODE" in
  gen) gen ;;
  build) build ;;
  all)
    if command -v "$SWIG" >/dev/null; then gen; else echo "build_ext.sh: swig not found, using $GEN" >&2; fi
    build ;;
  *) die "usage: $0 [all|gen|build]" ;;
esac
