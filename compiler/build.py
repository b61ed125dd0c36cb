"""Turn a function folder or file into (manifest, code) ready to upload (compiler layer).

A function is a folder with a `firebox.toml` (see docs/manifest.md) or a lone `.wat` /
`.wasm` file. `runtime = "python"` folders are bundled by the Python backend; core
modules are read as they are (`.wasm`) or assembled from text (`.wat`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime
from firebox.compiler.errors import CompileError

MANIFEST = "firebox.toml"


@dataclass(frozen=True)
class BuiltFunction:
    """A manifest and the code to upload with it (a wasm module or a Python bundle)."""

    manifest: dict[str, Any]
    code: bytes
    source: Path
    #: What the build changed that the user should know (e.g. native accelerators dropped).
    notes: tuple[str, ...] = ()


def read_manifest(folder: Path) -> dict[str, Any]:
    """Return the parsed firebox.toml of a folder; raises CompileError if missing or invalid."""
    path = folder / MANIFEST
    if not path.exists():
        raise CompileError(f"{folder} has no {MANIFEST}; see docs/manifest.md")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise CompileError(f"{path} is not valid TOML: {exc}") from None


def wasm_from_file(path: Path) -> bytes:
    """Return wasm bytes from a `.wasm` file, or assembled from a `.wat` file."""
    if not path.exists():
        raise CompileError(f"module file {path} does not exist")
    if path.suffix == ".wat":
        try:
            return bytes(wasmtime.wat2wasm(path.read_text()))
        except wasmtime.WasmtimeError as exc:
            raise CompileError(f"{path} is not valid WAT: {str(exc).strip()}") from None
    return path.read_bytes()


def build_function(path: Path) -> BuiltFunction:
    """Build the function at `path` (folder or .wat/.wasm file); raises CompileError."""
    path = Path(path)
    if path.is_file():
        if path.suffix not in (".wat", ".wasm"):
            raise CompileError(f"{path}: expected a folder with {MANIFEST}, or a .wat/.wasm file")
        return BuiltFunction({"name": path.stem}, wasm_from_file(path), path)
    manifest = read_manifest(path)
    runtime = str(manifest.get("runtime", "module"))
    if runtime.startswith("python"):
        from firebox.compiler.python import build_python_bundle

        manifest.setdefault("name", path.name)
        handler = str(manifest.setdefault("handler", "app.handler"))
        bundle = build_python_bundle(path, handler)
        return BuiltFunction(manifest, bundle.data, path, tuple(bundle.notes))
    module = manifest.pop("module", None)
    if module is None:
        candidates = sorted(path.glob("*.wat")) + sorted(path.glob("*.wasm"))
        if len(candidates) != 1:
            raise CompileError(f"{path}/{MANIFEST} must name its `module` (a .wat or .wasm file)")
        module_path = candidates[0]
    else:
        module_path = path / str(module)
    manifest.setdefault("name", path.name)
    return BuiltFunction(manifest, wasm_from_file(module_path), path)
