"""Content-addressed wasm artifacts and the on-disk compiled-artifact cache (artifact layer)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from firebox.runtime import config
from firebox.runtime.engine import WASMTIME_VERSION, EngineSettings
from firebox.runtime.errors import InvalidArtifact

if TYPE_CHECKING:
    import wasmtime
    import wasmtime.component

ArtifactKind = Literal["module", "component"]

WASM_MAGIC = b"\0asm"
# Byte 4..8 of a wasm binary: 1,0,0,0 for a core module; 0x0d,0,1,0 for a component.
CORE_VERSION = b"\x01\x00\x00\x00"
COMPONENT_VERSION = b"\x0d\x00\x01\x00"


def sha256(data: bytes) -> str:
    """Return the hex sha256 of `data` (an artifact's address)."""
    return hashlib.sha256(data).hexdigest()


def artifact_kind(data: bytes) -> ArtifactKind:
    """Return whether `data` is a core module or a component.

    Raises InvalidArtifact naming the problem when `data` is not a wasm binary at all.
    """
    if len(data) < 8:
        raise InvalidArtifact(f"not a WebAssembly binary: only {len(data)} bytes")
    if data[:4] != WASM_MAGIC:
        if data.lstrip()[:1] == b"(":
            raise InvalidArtifact(
                "not a WebAssembly binary: this looks like WAT text; compile it with"
                " wat2wasm or deploy the .wat file with `firebox deploy`"
            )
        raise InvalidArtifact(
            f"not a WebAssembly binary: bad magic number {data[:4]!r} (expected b'\\x00asm')"
        )
    if data[4:8] == CORE_VERSION:
        return "module"
    if data[4:8] == COMPONENT_VERSION:
        return "component"
    raise InvalidArtifact(f"unsupported WebAssembly version/layer bytes {data[4:8].hex()}")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ArtifactStore:
    """Artifacts (wasm modules, components, Python bundles) stored by sha256 under
    `<data>/artifacts/`; writes are atomic."""

    def __init__(self, root: Path) -> None:
        self.root = root / "artifacts"
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Return where the artifact with this digest lives (it may not exist)."""
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        """Store `data` (already validated) and return its digest; storing twice is a no-op."""
        digest = sha256(data)
        path = self.path(digest)
        if not path.exists():
            _write_atomic(path, data)
        return digest

    def get(self, digest: str) -> bytes:
        """Return the artifact's bytes; raises InvalidArtifact if it is not stored."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise InvalidArtifact(f"artifact {digest} is not in the store") from None

    def exists(self, digest: str) -> bool:
        """Return True if the artifact is stored."""
        return self.path(digest).exists()

    def delete(self, digest: str) -> None:
        """Remove the artifact if present."""
        self.path(digest).unlink(missing_ok=True)

    def is_component(self, digest: str) -> bool:
        """Return True if the stored artifact is a component (the shared interpreter)."""
        try:
            with self.path(digest).open("rb") as f:
                return f.read(8)[4:8] == COMPONENT_VERSION
        except FileNotFoundError:
            return False


@dataclass
class CacheStats:
    """Counts of compiled-cache lookups in this process (compiles are the misses)."""

    hits: int = 0
    misses: int = 0
    #: Seconds spent compiling (the misses), for GET /metrics.
    compile_s: float = 0.0


class CompiledCache:
    """Serialized compiled artifacts keyed by (wasm sha256, wasmtime version, engine fingerprint).

    A restarted node deserializes (0.02-3 ms, mmap) instead of compiling (0.5 ms for a
    small module, ~5 s for an 18 MB component).
    """

    def __init__(self, root: Path, settings: EngineSettings) -> None:
        # FIREBOX_COMPILED_CACHE shares one cache between nodes of a machine (keys make
        # that safe); by default it lives in the data dir.
        base = Path(config.FIREBOX_COMPILED_CACHE.get() or root / "compiled")
        self.root = base / f"wasmtime-{WASMTIME_VERSION}-{settings.fingerprint()}"
        self.root.mkdir(parents=True, exist_ok=True)
        self.stats = CacheStats()
        self._lock = threading.Lock()
        # Components are big (the Python interpreter: ~60 MB compiled) and shared by every
        # function that runs on them: load each once per process.
        self._components: dict[str, wasmtime.component.Component] = {}

    def path(self, digest: str, kind: ArtifactKind) -> Path:
        """Return the cache file of an artifact (it may not exist)."""
        return self.root / f"{digest}.{'cwasm' if kind == 'module' else 'ccwasm'}"

    def load_module(self, engine: wasmtime.Engine, digest: str, wasm: Path) -> wasmtime.Module:
        """Return the compiled core module, from the cache when present."""
        import wasmtime  # only where modules are compiled: the front end never loads it

        path = self.path(digest, "module")
        if path.exists():
            try:
                module = wasmtime.Module.deserialize_file(engine, str(path))
                self._count(hit=True)
                return module
            except wasmtime.WasmtimeError:
                path.unlink(missing_ok=True)  # stale or corrupt: recompile below
        started = time.monotonic()
        module = compile_module(engine, wasm.read_bytes())
        _write_atomic(path, bytes(module.serialize()))
        self._count(hit=False, seconds=time.monotonic() - started)
        return module

    def load_component(
        self, engine: wasmtime.Engine, digest: str, wasm: Path
    ) -> wasmtime.component.Component:
        """Return the compiled component, from this process's memo or the disk cache."""
        with self._lock:
            memo = self._components.get(digest)
        if memo is not None:
            return memo
        component = self._load_component(engine, digest, wasm)
        with self._lock:
            return self._components.setdefault(digest, component)

    def ensure_component(self, engine: wasmtime.Engine, digest: str, wasm: Path) -> bool:
        """Compile a component into the disk cache unless it is there; return True if compiled.

        Unlike load_component, nothing is kept in memory (the node compiles for its workers).
        """
        if self.path(digest, "component").exists():
            return False
        self._load_component(engine, digest, wasm)
        return True

    def _load_component(
        self, engine: wasmtime.Engine, digest: str, wasm: Path
    ) -> wasmtime.component.Component:
        import wasmtime.component  # only where components are compiled, as above

        path = self.path(digest, "component")
        if path.exists():
            try:
                component = wasmtime.component.Component.deserialize_file(engine, str(path))
                self._count(hit=True)
                return component
            except wasmtime.WasmtimeError:
                path.unlink(missing_ok=True)
        started = time.monotonic()
        try:
            component = wasmtime.component.Component(engine, wasm.read_bytes())
        except wasmtime.WasmtimeError as exc:
            raise InvalidArtifact(f"invalid component: {_first_line(exc)}") from None
        _write_atomic(path, bytes(component.serialize()))
        self._count(hit=False, seconds=time.monotonic() - started)
        return component

    def _count(self, *, hit: bool, seconds: float = 0.0) -> None:
        with self._lock:
            if hit:
                self.stats.hits += 1
            else:
                self.stats.misses += 1
                self.stats.compile_s += seconds


def compile_module(engine: wasmtime.Engine, data: bytes) -> wasmtime.Module:
    """Compile a core module; raises InvalidArtifact with wasmtime's reason on failure."""
    import wasmtime  # only where modules are compiled, as above

    try:
        return wasmtime.Module(engine, data)
    except wasmtime.WasmtimeError as exc:
        raise InvalidArtifact(f"invalid WebAssembly module: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
