"""Build-time pre-import of the standard library into the interpreter snapshot (guest side).

componentize-py snapshots the heap after the app module is imported; only modules in
`sys.modules` at that moment exist at run time (the standard library is not on any
path then). So this module imports every standard-library module that imports cleanly.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

# Top-level names never worth snapshotting: test suites, GUI toolkits, tools that need a
# terminal or a filesystem, modules with import-time side effects, and platform modules
# that cannot work under WASI.
SKIP_TOP_LEVEL = frozenset(
    {
        "__hello__",
        "__phello__",
        "_pyrepl",
        "antigravity",
        "curses",
        "dbm",
        "ensurepip",
        "idlelib",
        "lib2to3",
        "msilib",
        "pydoc",
        "pydoc_data",
        "sqlite3",
        "test",
        "this",
        "tkinter",
        "turtle",
        "turtledemo",
        "venv",
        "winreg",
        "winsound",
    }
)
SKIP_PARTS = frozenset({"test", "tests", "idle_test", "__main__"})

#: Names of the modules that imported cleanly / failed, kept for `firebox` diagnostics.
PRELOADED: list[str] = []
FAILED: list[str] = []


def _stdlib_dir() -> str:
    # Not os.__file__: `os` is frozen and reports a path that does not exist at build
    # time; componentize-py serves the standard library from `/python`.
    import json

    return os.path.dirname(os.path.dirname(json.__file__))


def _wanted(name: str) -> bool:
    parts = name.split(".")
    return parts[0] not in SKIP_TOP_LEVEL and not SKIP_PARTS.intersection(parts)


def _try_import(name: str) -> None:
    try:
        importlib.import_module(name)
    except BaseException:
        FAILED.append(name)
    else:
        PRELOADED.append(name)


def _walk(path: list[str], prefix: str) -> None:
    # Not pkgutil.walk_packages: it imports every package to recurse, skipped ones too.
    for info in pkgutil.iter_modules(path, prefix):
        if not _wanted(info.name):
            continue
        _try_import(info.name)
        if info.ispkg and info.name in sys.modules:
            sub_path = getattr(sys.modules[info.name], "__path__", None)
            if sub_path:
                _walk(list(sub_path), info.name + ".")


def preload() -> None:
    """Import every standard-library module (and submodule) that imports cleanly."""
    for name in sys.builtin_module_names:
        if _wanted(name):
            _try_import(name)
    _walk([_stdlib_dir()], "")
    sys.stdout.flush()
    sys.stderr.flush()


preload()
