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
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from firebox.compiler import settings
from firebox.compiler.dependencies import strip_accelerators
from firebox.compiler.errors import (
    BundleTooLarge,
    DependencyInstallError,
    InvalidBundle,
    InvalidHandler,
)

#: Lambda's limits for a zip deployment package: 50 MB zipped, 250 MB unzipped (settings).
MAX_BUNDLE_BYTES = settings.FIREBOX_MAX_BUNDLE_BYTES.get()
MAX_UNZIPPED_BYTES = settings.FIREBOX_MAX_UNZIPPED_BYTES.get()

#: The CPython version inside the interpreter component (componentize-py 0.25).
GUEST_PYTHON_VERSION = "3.14"

_SKIP_DIRS = frozenset({"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".mypy_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


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
            try:
                content = archive.read(info)  # never more than the declared size
            except (zipfile.BadZipFile, EOFError, NotImplementedError, zlib.error) as exc:
                # A declared size or CRC that lies, a truncated or unsupported entry.
                raise InvalidBundle(f"Corrupt entry {name!r} in the code bundle: {exc}") from exc
            if len(content) != info.file_size:
                raise InvalidBundle(
                    f"Corrupt entry {name!r} in the code bundle: it declares {info.file_size}"
                    f" bytes and holds {len(content)}"
                )
            files[name] = content
    return files


#: Wheel platforms tried in order: pure wheels only, then Lambda's x86_64 platform (whose
#: optional accelerators the native-code check drops, and whose other natives it refuses).
_PLATFORM_PASSES = (("any",), ("manylinux2014_x86_64", "any"))


def _pip_install(requirements: Path, target: str, platforms: tuple[str, ...]) -> str | None:
    command = [
        sys.executable, "-m", "pip", "install",
        "--target", target,
        "--only-binary=:all:",
        "--python-version", GUEST_PYTHON_VERSION,
        "--implementation", "cp",
        *[arg for platform in platforms for arg in ("--platform", platform)],
        "--no-compile", "--disable-pip-version-check", "--no-input", "--quiet",
        "-r", str(requirements),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    return None if proc.returncode == 0 else (proc.stderr or proc.stdout)


def _install_requirements(requirements: Path) -> dict[str, bytes]:
    # Wheels only (no setup.py runs on the build host), for the guest's CPython.
    error = ""
    for platforms in _PLATFORM_PASSES:
        with tempfile.TemporaryDirectory(prefix="firebox-pip-") as target:
            failure = _pip_install(requirements, target, platforms)
            if failure is None:
                return {
                    name: data
                    for name, data in _walk_dir(Path(target))
                    if not name.startswith("bin/")  # console scripts are useless here
                }
            error = failure
    raise DependencyInstallError(str(requirements), error)


def _module_path(handler: str) -> str:
    # Lambda splits on the last dot and imports the rest with importlib, so any name
    # importlib accepts works ("auto-confirm.lambda_handler", "src/app.handler").
    module, _, function = handler.rpartition(".")
    if not module or not function or not function.isidentifier():
        raise InvalidHandler(handler, "expected 'module.function'")
    parts = module.replace("/", ".").split(".")
    if any(not part or part != part.strip() for part in parts):
        raise InvalidHandler(handler, f"{module!r} is not a module name importlib can import")
    return "/".join(parts)


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


@dataclass(frozen=True)
class PythonBundle:
    """A checked code bundle (zip bytes) and the notes to show the user about it."""

    data: bytes
    notes: list[str] = field(default_factory=list)


def build_python_bundle(src: Path, handler: str) -> PythonBundle:
    """Return the code bundle of the Python function in `src` (a folder or .zip), with notes.

    Installs `requirements.txt` (wheels for the guest, with their dependencies) into the
    bundle and drops optional native accelerators (each named in a note). Raises
    `InvalidHandler` when `handler`'s module is not in the source,
    `NativeDependencyError` naming the first distribution that needs native code,
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
    report = strip_accelerators(files)
    bundle = _pack(files)
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise BundleTooLarge(len(bundle), MAX_BUNDLE_BYTES)
    return PythonBundle(bundle, report.notes)


def bundle_python_function(src: Path, handler: str) -> bytes:
    """Return only the bytes of `build_python_bundle(src, handler)`; raises as it does."""
    return build_python_bundle(src, handler).data


def validate_bundle(bundle: bytes, handler: str | None = None) -> PythonBundle:
    """Check an uploaded bundle on the server and return the one to store, with notes.

    The bundle must be a safe zip within the limits, with `handler`'s module when it is
    given. Optional native accelerators are dropped (the bundle is then re-packed; the
    same input always gives the same bytes). Raises `InvalidBundle`, `BundleTooLarge`,
    `NativeDependencyError` or `InvalidHandler`.
    """
    if len(bundle) > MAX_BUNDLE_BYTES:
        raise BundleTooLarge(len(bundle), MAX_BUNDLE_BYTES)
    files = _read_zip(bundle)
    report = strip_accelerators(files)
    if handler is not None:
        _check_handler(handler, files)
    if not report.dropped:
        return PythonBundle(bundle)
    return PythonBundle(_pack(files), report.notes)
