"""Builds the `mhc` package: runs SWIG on bindings/swig/mhc.i against the installed libmhc
header (found with pkg-config, or MHC_PREFIX) and compiles the extension mhc._mhc_ext, linked
to libmhc with an rpath. Without swig, a wrapper generated earlier in generated/ (see
build_ext.sh) is used.

    PKG_CONFIG_PATH=<prefix>/lib/pkgconfig pip install ./bindings/python
"""
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
GEN = HERE / "generated"
IFACE = Path(os.environ.get("MHC_SWIG_INTERFACE", HERE.parent / "swig" / "mhc.i"))
# Keep in step with build_ext.sh: -builtin makes mhc._mhc_ext hold the types; the generated
# mhc/_mhc.py re-exports it as mhc._mhc.
SWIG_FLAGS = ["-python", "-builtin", "-interface", "_mhc_ext", "-Wall", "-Werror"]


def _libmhc():
    """(include dir, library dir) of the installed libmhc."""
    try:
        inc = subprocess.run(["pkg-config", "--variable=includedir", "mhc"], check=True,
                             capture_output=True, text=True).stdout.strip()
        lib = subprocess.run(["pkg-config", "--variable=libdir", "mhc"], check=True,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        prefix = os.environ.get("MHC_PREFIX")
        if not prefix:
            raise SystemExit("libmhc not found: set PKG_CONFIG_PATH=<prefix>/lib/pkgconfig "
                             "or MHC_PREFIX=<prefix>")
        inc, lib = os.path.join(prefix, "include"), os.path.join(prefix, "lib")
    inc, lib = os.path.realpath(inc), os.path.realpath(lib)
    if not os.path.isfile(os.path.join(inc, "mhc", "mhc.h")):
        raise SystemExit(f"no mhc/mhc.h under {inc}")
    return inc, lib


def _stamp(inc):
    files = [IFACE, Path(inc) / "mhc" / "mhc.h", Path(inc) / "mhc" / "version.h"]
    return " ".join(hashlib.sha256(f.read_bytes()).hexdigest() for f in files) + " \n"


def _generate():
    """Runs swig into generated/ when available; otherwise checks the existing wrapper."""
    inc, _ = _libmhc()
    swig = os.environ.get("SWIG", "swig")
    if shutil.which(swig) and IFACE.is_file():
        GEN.mkdir(exist_ok=True)
        subprocess.run([swig, *SWIG_FLAGS, f"-I{inc}", "-outdir", str(GEN), "-o",
                        str(GEN / "_mhc_wrap.c"), str(IFACE)], check=True)
        (GEN / "STAMP").write_text(_stamp(inc))
    elif not (GEN / "_mhc_wrap.c").is_file():
        raise SystemExit("swig not found and no generated wrapper in bindings/python/generated "
                         "(run bindings/python/build_ext.sh gen where swig exists)")
    elif IFACE.is_file() and (GEN / "STAMP").read_text() != _stamp(inc) and \
            os.environ.get("MHC_ALLOW_STALE_WRAPPER") != "1":
        raise SystemExit("generated/ was made from another mhc.h or mhc.i: regenerate it")


class BuildPy(build_py):
    def run(self):
        _generate()
        super().run()
        target = Path(self.build_lib) / "mhc" / "_mhc.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(GEN / "_mhc.py", target)


def _dlpack_include_dirs(compiler, inc):
    """[] when the compiler finds dlpack/dlpack.h; else a shim over torch's ATen/dlpack.h."""
    import importlib.util
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <dlpack/dlpack.h>\n")
        try:
            compiler.preprocess(src, os.path.join(tmp, "probe.i"), include_dirs=[inc])
            return []
        except Exception:
            pass
    spec = importlib.util.find_spec("torch")
    tinc = os.path.join(spec.submodule_search_locations[0], "include") if spec else ""
    if not os.path.isfile(os.path.join(tinc, "ATen", "dlpack.h")):
        raise SystemExit("dlpack/dlpack.h not found: install libdlpack-dev or set CFLAGS=-I<dir>")
    shim = HERE / "build" / "dlpack-shim"
    (shim / "dlpack").mkdir(parents=True, exist_ok=True)
    (shim / "dlpack" / "dlpack.h").write_text("#include <ATen/dlpack.h>\n")
    print(f"no dlpack/dlpack.h on the include path; using {tinc}/ATen/dlpack.h")
    return [str(shim), tinc]


class BuildExt(build_ext):
    def run(self):
        if not (GEN / "_mhc_wrap.c").is_file():
            _generate()
        inc, lib = _libmhc()
        for ext in self.extensions:
            ext.include_dirs.append(inc)
            ext.library_dirs.append(lib)
            ext.runtime_library_dirs.append(lib)
        super().run()

    def build_extensions(self):
        inc, _ = _libmhc()
        extra = _dlpack_include_dirs(self.compiler, inc)
        for ext in self.extensions:
            ext.include_dirs.extend(extra)
        super().build_extensions()
        if self.inplace:
            shutil.copyfile(GEN / "_mhc.py", HERE / "mhc" / "_mhc.py")


def _version():
    try:
        inc, _ = _libmhc()
        for line in (Path(inc) / "mhc" / "version.h").read_text().splitlines():
            if line.startswith("#define MHC_VERSION_STRING"):
                return line.split('"')[1]
    except SystemExit:
        pass
    return "0.0.0"


setup(
    version=_version(),
    ext_modules=[Extension("mhc._mhc_ext", sources=["generated/_mhc_wrap.c"], libraries=["mhc"],
                           extra_compile_args=["-fno-strict-aliasing", "-Wno-unused-parameter"])],
    cmdclass={"build_py": BuildPy, "build_ext": BuildExt},
)
