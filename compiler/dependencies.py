"""Native code in a Python bundle: drop optional accelerators, refuse the rest (compiler layer).

Users vendor dependencies the way Lambda's docs say (`pip install --target . --platform
manylinux2014_x86_64 --only-binary=:all:`), so a bundle often holds compiled extension
modules that cannot run inside WebAssembly. Many are optional accelerators of a package
that falls back to pure Python when the extension does not import (markupsafe, pyyaml,
simplejson, wrapt, msgpack, charset_normalizer, mypyc builds such as chardet 7): those
files are dropped with a note. A distribution whose code needs its native part is
refused, named by its distribution (read from `*.dist-info/RECORD`), with the reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from firebox.compiler.errors import NativeDependencyError

NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")

#: Distributions (normalized names) whose compiled modules are optional: the package
#: imports a pure-Python implementation when the extension is missing. Checked against
#: each project's import fallback, not guessed from the file name.
PURE_FALLBACK: Mapping[str, str] = {
    "aiohttp": "pure-Python HTTP parser (AIOHTTP_NO_EXTENSIONS)",
    "chardet": "the .py modules its mypyc .so files were compiled from",
    "charset-normalizer": "the .py modules its mypyc .so files were compiled from",
    "frozenlist": "pure-Python FrozenList",
    "markupsafe": "markupsafe._native",
    "msgpack": "msgpack.fallback",
    "multidict": "pure-Python multidict",
    "propcache": "pure-Python propcache",
    "pyrsistent": "pure-Python pvector",
    "pyyaml": "yaml's pure-Python loader and dumper (no libyaml)",
    "simplejson": "simplejson's pure-Python encoder and decoder",
    "sqlalchemy": "SQLAlchemy's pure-Python implementations",
    "tornado": "tornado's pure-Python websocket mask",
    "websockets": "websockets' pure-Python frame masking",
    "wrapt": "wrapt's pure-Python wrappers",
    "yarl": "pure-Python URL quoting",
}

#: Why a well-known native-only distribution cannot run, beyond the generic reason.
NATIVE_ONLY: Mapping[str, str] = {
    "numpy": "numpy is C code; it needs a WASI build of numpy (a separate runtime, not yet)",
    "pydantic-core": (
        "pydantic-core is Rust code with no pure fallback; it needs a wasm32-wasi build"
    ),
    "orjson": "orjson is Rust code with no pure fallback; use the standard json module",
    "cryptography": "cryptography's primitives are Rust/OpenSSL code with no pure fallback",
}


def _is_native(name: str) -> bool:
    base = name.rsplit("/", 1)[-1].lower()
    return base.endswith(NATIVE_SUFFIXES) or ".so." in base


def _normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _dist_name(info_dir: str) -> str:
    # "PyYAML-6.0.2.dist-info" -> "PyYAML"; the version never contains "-".
    return info_dir.rsplit("/", 1)[-1].rsplit(".", 1)[0].rsplit("-", 1)[0]


def _owners(files: Mapping[str, bytes]) -> dict[str, str]:
    """Map each file a RECORD lists to the name of the distribution that installed it."""
    owners: dict[str, str] = {}
    for name, data in files.items():
        if not name.endswith(".dist-info/RECORD"):
            continue
        info_dir = name.rsplit("/", 1)[0]
        prefix = info_dir.rsplit("/", 1)[0] + "/" if "/" in info_dir else ""
        dist = _dist_name(info_dir)
        for row in csv.reader(io.StringIO(data.decode("utf-8", "replace"))):
            if row:
                owners[prefix + row[0]] = dist
    return owners


def _extension_module(name: str) -> str:
    """Return the module path of an extension file: `a/b.cpython-312-x86_64-linux-gnu.so` -> `a/b`."""
    head, _, base = name.rpartition("/")
    stem = base.split(".", 1)[0]
    return f"{head}/{stem}" if head else stem


def _fallback_of(name: str, files: Mapping[str, bytes]) -> str | None:
    module = _extension_module(name)
    if f"{module}.py" in files:
        return f"{module.replace('/', '.')} (.py next to the compiled copy)"
    if module.rsplit("/", 1)[-1].endswith("__mypyc"):
        return "mypyc's runtime library (only the compiled copies use it)"
    return None


def _guess_owner(name: str) -> str:
    top = name.split("/", 1)[0]
    if top.endswith((".dist-info", ".egg-info")):
        return _dist_name(top)
    return _extension_module(top).split(".", 1)[0]


@dataclass
class NativeReport:
    """What `strip_accelerators` did: the files dropped and one note per distribution."""

    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _platform_dists(files: Mapping[str, bytes]) -> dict[str, str]:
    """Return {normalized distribution: WHEEL path} for wheels marked Root-Is-Purelib: false."""
    found: dict[str, str] = {}
    for name, data in files.items():
        if not name.endswith(".dist-info/WHEEL"):
            continue
        for line in data.decode("utf-8", "replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "root-is-purelib" and value.strip().lower() == "false":
                found[_normalize(_dist_name(name.rsplit("/", 1)[0]))] = name
    return found


def strip_accelerators(files: dict[str, bytes]) -> NativeReport:
    """Drop optional native accelerators from `files` (in place); return what was dropped.

    A compiled module is dropped when its distribution is known to fall back to pure
    Python (`PURE_FALLBACK`), when a `.py` of the same module sits next to it (mypyc
    builds), or when it is mypyc's own runtime library. Raises `NativeDependencyError`
    naming the distribution and the reason for the first native file that is needed.
    """
    owners = _owners(files)
    report = NativeReport()
    by_dist: dict[str, list[str]] = {}
    for name in sorted(files):
        if not _is_native(name):
            continue
        dist = owners.get(name) or _guess_owner(name)
        key = _normalize(dist)
        fallback = PURE_FALLBACK.get(key) or _fallback_of(name, files)
        if fallback is None:
            reason = NATIVE_ONLY.get(
                key, f"{name} is a compiled extension module with no pure-Python fallback"
            )
            raise NativeDependencyError(dist, name, reason)
        by_dist.setdefault(dist, []).append(name)
    for dist, names in by_dist.items():
        for name in names:
            del files[name]
        report.dropped.extend(names)
        fallback = PURE_FALLBACK.get(_normalize(dist)) or "its pure-Python modules"
        shown = ", ".join(n.rsplit("/", 1)[-1] for n in names[:3])
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        report.notes.append(
            f"{dist}: dropped {len(names)} native accelerator file(s) ({shown}{more});"
            f" it runs on {fallback}"
        )
    stripped = {_normalize(d) for d in by_dist}
    for key, wheel in _platform_dists(files).items():
        if key not in stripped and key not in PURE_FALLBACK:
            dist = _dist_name(wheel.rsplit("/", 1)[0])
            raise NativeDependencyError(
                dist, wheel, NATIVE_ONLY.get(key, "its wheel is built for one platform")
            )
    return report
