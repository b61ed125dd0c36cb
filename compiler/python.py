"""Python handler source -> firebox code bundle, and its server-side validation (compiler layer).

A bundle is a zip archive laid out like a Lambda deployment package: the handler's
modules and packages at the root, next to the pure-Python dependencies installed from
`requirements.txt`. It is deterministic (sorted names, fixed timestamps), so the same
source gives the same digest. The shared interpreter component imports from it in memory.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from firebox.compiler import settings
from firebox.compiler.errors import (
    BundleTooLarge,
    DependencyInstallError,
    InvalidBundle,
    InvalidHandler,
    NativeDependencyError,
)

#: Lambda's limits for a zip deployment package: 50 MB zipped, 250 MB unzipped (settings).
MAX_BUNDLE_BYTES = settings.FIREBOX_MAX_BUNDLE_BYTES.get()
MAX_UNZIPPED_BYTES = settings.FIREBOX_MAX_UNZIPPED_BYTES.get()

#: The CPython version inside the interpreter component (componentize-py 0.25).
GUEST_PYTHON_VERSION = "3.14"

_SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".mypy_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")
_NATIVE_SUFFIXES = (".so", ".pyd", ".dylib", ".dll")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _is_native(name: str) -> bool:
    base = name.rsplit("/", 1)[-1].lower()
    return base.endswith(_NATIVE_SUFFIXES) or ".so." in base


def _package_of(name: str) -> str:
    top = name.split("/", 1)[0]
    if top.endswith((".dist-info", ".egg-info")):
        return top.split("-", 1)[0]
    return top.removesuffix(".py")


def _check_native(files: Iterable[tuple[str, bytes]]) -> None:
    for name, data in files:
        if _is_native(name):
            raise NativeDependencyError(_package_of(name), name)
        if name.endswith(".dist-info/WHEEL"):
            for line in data.decode("utf-8", "replace").splitlines():
                key, _, value = line.partition(":")
                if key.strip().lower() == "root-is-purelib" and value.strip().lower() == "false":
                    raise NativeDependencyError(_package_of(name), name)


def _walk_dir(root: Path) -> Iterator[tuple[str, bytes]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for filename in sorted(filenames):
            if filename.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(dirpath, filename)
            yield path.relative_to(root).as_posix(), path.read_bytes()


def _read_zip(data: bytes) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise InvalidBundle(f"The code bundle is not a zip archive: {exc}") from exc
    files: dict[str, bytes] = {}
    total = 0
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = info.filename
            if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                raise InvalidBundle(f"Unsafe path in the code bundle: {name!r}")
            total += info.file_size
            if total > MAX_UNZIPPED_BYTES:
                raise BundleTooLarge(total, MAX_UNZIPPED_BYTES)
            files[name] = archive.read(info)
    return files


def _install_requirements(requirements: Path) -> dict[str, bytes]:
    # Resolve for the guest's CPython, wheels only (no setup.py runs on the build host);
    # a package that only ships platform wheels is then caught by the native-code check.
    with tempfile.TemporaryDirectory(prefix="firebox-pip-") as target:
        command = [
            sys.executable, "-m", "pip", "install",
            "--target", target,
            "--only-binary=:all:",
            "--python-version", GUEST_PYTHON_VERSION,
            "--no-compile", "--disable-pip-version-check", "--no-input", "--quiet",
            "-r", str(requirements),
        ]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise DependencyInstallError(str(requirements), proc.stderr or proc.stdout)
        return {
            name: data
            for name, data in _walk_dir(Path(target))
            if not name.startswith("bin/")  # console scripts are useless in a bundle
        }


def _module_path(handler: str) -> str:
    module, _, function = handler.rpartition(".")
    if not module or not function or not function.isidentifier():
        raise InvalidHandler(handler, "expected 'module.function'")
    return module.replace(".", "/")


def _check_handler(handler: str, files: dict[str, bytes]) -> None:
    base = _module_path(handler)
    if f"{base}.py" not in files and f"{base}/__init__.py" not in files:
        raise InvalidHandler(handler, f"no {base}.py (or {base}/__init__.py) in the source")


def _pack(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, _ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])
    return out.getvalue()


def bundle_python_function(src: Path, handler: str) -> bytes:
    """Return the code bundle (zip bytes) of the Python function in `src` (a folder or .zip).

    Installs `requirements.txt` (pure-Python wheels, with their dependencies) into the
    bundle. Raises `InvalidHandler` when `handler`'s module is not in the source,
    `NativeDependencyError` naming the first package with native code,
    `DependencyInstallError` when pip fails, `BundleTooLarge` past the size limits and
    `InvalidBundle` for a corrupt zip.
    """
    src = Path(src)
    if src.is_dir():
        files = dict(_walk_dir(src))
    elif src.is_file():
        files = _read_zip(src.read_bytes())
    else:
        raise InvalidBundle(f"No such folder or zip file: {src}")
    _check_handler(handler, files)
    requirements = src / "requirements.txt" if src.is_dir() else None
    if requirements is not None and requirements.is_file():
        for name, data in _install_requirements(requirements).items():
            files.setdefault(name, data)
    _check_native(files.items())
    bundle = _pack(files)
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise BundleTooLarge(len(bundle), MAX_BUNDLE_BYTES)
    return bundle


def validate_bundle(bundle: bytes, handler: str | None = None) -> None:
    """Check an uploaded bundle on the server: a safe zip, within limits, no native code.

    Also checks that `handler`'s module is present when it is given. Raises
    `InvalidBundle`, `BundleTooLarge`, `NativeDependencyError` or `InvalidHandler`.
    """
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise BundleTooLarge(len(bundle), MAX_BUNDLE_BYTES)
    files = _read_zip(bundle)
    _check_native(files.items())
    if handler is not None:
        _check_handler(handler, files)
