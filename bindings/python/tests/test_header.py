"""The binding is generated from the public header: every mhc_* function and MHC_* constant of
mhc/mhc.h and mhc/version.h must be reachable from mhc._mhc, the struct fields from the proxy
types, and mhc.Params must mirror mhc_hc_params and MHC_HC_PARAMS_INIT. A header change that
the binding does not follow fails here."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import mhc
from mhc import _mhc

ROOT = Path(__file__).resolve().parents[3]


def _installed_include_dir():
    if shutil.which("pkg-config"):
        r = subprocess.run(["pkg-config", "--variable=includedir", "mhc"], capture_output=True,
                           text=True)
        if r.returncode == 0 and r.stdout.strip():
            return Path(r.stdout.strip())
    if os.environ.get("MHC_PREFIX"):
        return Path(os.environ["MHC_PREFIX"]) / "include"
    return None


def _headers():
    """(mhc.h texts, version.h texts): the repository's header and the installed one."""
    main, version = [], []
    inc = _installed_include_dir()
    if inc is not None and (inc / "mhc" / "mhc.h").is_file():
        main.append((inc / "mhc" / "mhc.h").read_text())
        if (inc / "mhc" / "version.h").is_file():
            version.append((inc / "mhc" / "version.h").read_text())
    if (ROOT / "include" / "mhc" / "mhc.h").is_file():
        main.append((ROOT / "include" / "mhc" / "mhc.h").read_text())
        if (ROOT / "include" / "mhc" / "version.h.in").is_file():
            version.append((ROOT / "include" / "mhc" / "version.h.in").read_text())
    if not main:
        pytest.skip("no mhc.h found (no pkg-config mhc, MHC_PREFIX or source tree)")
    return main, version


def _strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def header_functions(text):
    text = _strip_comments(text)
    return set(re.findall(r"\bMHC_API\s[^;{]*?\b(mhc_[A-Za-z0-9_]+)\s*\(", text, flags=re.S))


def header_macros(text):
    """Object-like MHC_* macros with a value, except the export macro."""
    out = {}
    for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(MHC_[A-Z0-9_]+)(?![A-Z0-9_(])[ \t]*(.*)$",
                         text, flags=re.M):
        name, value = m.group(1), m.group(2).strip()
        value = re.sub(r"/\*.*", "", value).strip()
        if name == "MHC_API" or not value:
            continue
        out.setdefault(name, value)
    return out


def header_struct_fields(text, name):
    text = _strip_comments(text)
    m = re.search(r"typedef\s+struct\s+" + name + r"\s*\{(.*?)\}\s*" + name + r"\s*;", text,
                  flags=re.S)
    assert m, f"struct {name} not found in the header"
    return re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*;", m.group(1))


def _int_value(value):
    """The value of a simple integer expression (literals, <<, |, parentheses), else None."""
    v = re.sub(r"\b(\d+)[uUlL]+\b", r"\1", value)
    if not re.fullmatch(r"[\d\s()<|+*x]+", v):
        return None
    try:
        return int(eval(v, {"__builtins__": {}}, {}))  # noqa: S307 - digits and operators only
    except Exception:
        return None


def test_every_function_is_wrapped():
    main, _ = _headers()
    names = set().union(*(header_functions(t) for t in main))
    assert {"mhc_context_create", "mhc_hc_pre", "mhc_hc_post", "mhc_hc_post_pre", "mhc_hc_head",
            "mhc_workspace_size", "mhc_last_error_message"} <= names, names
    missing = sorted(n for n in names if not callable(getattr(_mhc, n, None)))
    assert not missing, f"mhc._mhc lacks header functions {missing}: regenerate the wrapper"


def test_every_constant_is_wrapped():
    main, version = _headers()
    macros = {}
    for t in main + version:
        macros.update(header_macros(t))
    assert "MHC_ERROR_INTERNAL" in macros and "MHC_VERSION_MAJOR" in macros
    missing = sorted(n for n in macros if not hasattr(_mhc, n))
    assert not missing, f"mhc._mhc lacks header constants {missing}: regenerate the wrapper"
    for name, value in macros.items():
        iv = _int_value(value)
        if iv is not None:
            assert getattr(_mhc, name) == iv, (name, value)


def test_initialisers_match_the_header_and_params():
    main, _ = _headers()
    text = main[-1]
    m = re.search(r"#define\s+MHC_HC_PARAMS_INIT\s*\\?\s*\{(.*?)\}", text, flags=re.S)
    assert m
    items = [s.strip().replace("\\", "").strip() for s in m.group(1).split(",")]
    values = [float(s.rstrip("fFuU")) for s in items[2:]]
    p = _mhc.MHC_HC_PARAMS_INIT()
    fields = [f for f in header_struct_fields(text, "mhc_hc_params") if f not in ("size", "version")]
    assert len(fields) == len(values)
    for f, v in zip(fields, values):
        assert getattr(p, f) == pytest.approx(float(np.float32(v)), rel=0, abs=0), f
    # mhc.Params mirrors the struct: same defaults, every field present (flags may also come
    # from the batch_invariant switch)
    py = mhc.Params()
    for f, v in zip(fields, py.as_tuple()):
        assert float(np.float32(v)) == getattr(p, f), f
    assert set(fields) <= {f.name for f in __import__("dataclasses").fields(mhc.Params)}
    c = _mhc.MHC_CONTEXT_CONFIG_INIT()
    assert c.version == _mhc.MHC_CONTEXT_CONFIG_VERSION and c.backend == _mhc.MHC_BACKEND_CUDA


@pytest.mark.parametrize("struct", ["mhc_context_config", "mhc_hc_params", "mhc_hc_weights"])
def test_struct_fields_are_wrapped(struct):
    main, _ = _headers()
    obj = getattr(_mhc, struct)()
    for f in header_struct_fields(main[-1], struct):
        assert hasattr(obj, f), f"{struct}.{f}"


def test_versions_agree():
    assert mhc.library_version() == _mhc.MHC_VERSION
    assert mhc.__version__ == _mhc.MHC_VERSION_STRING
    assert mhc.library_version() // 10000 == _mhc.MHC_VERSION_MAJOR


def test_status_strings():
    for name in dir(_mhc):
        if name.startswith("MHC_ERROR_") or name == "MHC_SUCCESS":
            assert _mhc.mhc_status_string(getattr(_mhc, name)) == name
    assert _mhc.mhc_status_string(12345) == "MHC_ERROR_UNKNOWN"
