"""The shared, pre-initialized Python interpreter component: build once, cache (compiler layer).

componentize-py builds `guest/firebox_guest_app.py` against `wit/firebox.wit` into one
component with the standard library and boto3 pre-imported (about 42 MB, 16-80 s). Every Python
function runs on that component; only its code bundle differs. The cache key covers
everything that changes the output: firebox and componentize-py versions, guest sources
and the WIT.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from firebox.compiler import settings
from firebox.compiler.cache_files import file_lock
from firebox.compiler.errors import InterpreterBuildError
from firebox.compiler.runtime_layer import build_runtime_layer, layer_key

GUEST_DIR = Path(__file__).with_name("guest")
WIT_DIR = Path(__file__).with_name("wit")
WORLD = "function"
APP_MODULE = "firebox_guest_app"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def default_cache_dir() -> Path:
    """Return `FIREBOX_INTERPRETER_CACHE`, else `~/.cache/firebox/interpreter`."""
    return settings.interpreter_cache_dir()


def interpreter_key() -> str:
    """Return the cache key of the interpreter this installation builds (hex digest)."""
    digest = hashlib.sha256()
    digest.update(f"firebox={_version('firebox')}\n".encode())
    digest.update(f"componentize-py={_version('componentize-py')}\n".encode())
    digest.update(f"runtime-layer={layer_key()}\n".encode())
    for path in sorted([*GUEST_DIR.glob("*.py"), *WIT_DIR.glob("*.wit")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _componentize(output: Path, workdir: Path, layer: Path) -> None:
    empty_venv = workdir / "venv"
    empty_venv.mkdir()
    env = dict(os.environ)
    # componentize-py adds the active venv's site-packages to the guest's path; point it
    # at an empty one so nothing from the build host leaks into the interpreter.
    env["VIRTUAL_ENV"] = str(empty_venv)
    command = [
        sys.executable, "-c",
        "import sys; from componentize_py import script;"
        " sys.argv[0] = 'componentize-py'; sys.exit(script())",
        "--quiet", "-d", str(WIT_DIR), "-w", WORLD,
        "componentize", "-p", str(GUEST_DIR), "-p", str(layer), APP_MODULE, "-o", str(output),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, cwd=workdir, env=env)
    if proc.returncode != 0 or not output.is_file():
        lines = [line for line in proc.stderr.splitlines() if not line.startswith("  ")]
        raise InterpreterBuildError(
            "componentize-py failed to build the Python interpreter component:\n"
            + "\n".join(lines[-40:])
        )


@contextlib.contextmanager
def _progress(message: str) -> Iterator[None]:
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def build_interpreter(cache_dir: Path | None = None) -> Path:
    """Return the path of the interpreter component, building it on first use.

    Concurrent callers (threads or processes) build it once: a file lock serializes them
    and the file appears by atomic rename, so a reader never sees a partial component.
    Raises `InterpreterBuildError` when componentize-py fails.
    """
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"firebox-python-{interpreter_key()[:24]}.wasm"
    if target.is_file():
        return target
    with file_lock(directory / ".build.lock"):
        if target.is_file():  # another process built it while we waited
            return target
        with tempfile.TemporaryDirectory(prefix="build-", dir=directory) as tmp:
            output = Path(tmp) / "interpreter.wasm"
            with _progress("Building the firebox Python interpreter (once per version)..."):
                _componentize(output, Path(tmp), build_runtime_layer(directory))
            os.replace(output, target)
    return target
