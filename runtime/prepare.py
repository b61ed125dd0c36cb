"""Getting artifacts ready on a node: validation at deploy, compiling into the cache, the shared
Python interpreter, and fetching artifacts another node stored (artifact layer)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from firebox.runtime.artifacts import ArtifactStore, CompiledCache, artifact_kind, compile_module
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import InvalidArtifact, ServiceUnavailable
from firebox.runtime.storage.blobs import BlobStore

if TYPE_CHECKING:
    import wasmtime

log = logging.getLogger("firebox.prepare")


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (between processes of one machine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Preparer:
    """Validates, stores and compiles artifacts for one node; shares them through `blobs`
    (None: this node is alone, its artifact folder is the only copy)."""

    def __init__(
        self,
        settings: EngineSettings,
        data_dir: Path,
        artifacts: ArtifactStore,
        blobs: BlobStore | None,
    ) -> None:
        # Few slots: the node compiles and validates, it never runs a guest.
        self.settings = dataclasses.replace(settings, pool_slots=4)
        self.data_dir = data_dir
        self.artifacts = artifacts
        self.blobs = blobs
        self._engine: wasmtime.Engine | None = None
        self._component_engine: wasmtime.Engine | None = None
        self._cache: CompiledCache | None = None
        self._interpreter: asyncio.Future[str] | None = None

    @property
    def cache(self) -> CompiledCache:
        """The node's handle on the compiled cache (shared with its workers on disk)."""
        self._compile_engine()
        assert self._cache is not None
        return self._cache

    def _compile_engine(self) -> wasmtime.Engine:
        # Single-threaded: user modules are small and must not wait for the interpreter.
        from firebox.runtime.guest.engine import build_engine  # wasmtime, off the front end

        if self._engine is None:
            self._engine = build_engine(self.settings, parallel=False)
            self._cache = CompiledCache(self.data_dir, self.settings)
        return self._engine

    def _components(self) -> wasmtime.Engine:
        # The same settings (so the same cache key), compiled on every core: components are big.
        from firebox.runtime.guest.engine import build_engine  # wasmtime, off the front end

        self._compile_engine()
        if self._component_engine is None:
            self._component_engine = build_engine(self.settings)
        return self._component_engine

    def module(self, code: bytes) -> str:
        """Validate an ABI v1 module, store it, compile it into the cache; return its digest.

        Raises InvalidArtifact naming the problem (nothing is stored then).
        """
        if artifact_kind(code) != "module":
            raise InvalidArtifact(
                'components are deployed with `runtime = "python"`; a plain WebAssembly'
                " function must be a core module (ABI v1)"
            )
        from firebox.runtime.guest.core import check_abi  # wasmtime, off the front end

        engine = self._compile_engine()
        check_abi(compile_module(engine, code))
        digest = self.artifacts.put(code)
        if not self.cache.path(digest, "module").exists():
            self.cache.load_module(engine, digest, self.artifacts.path(digest))
        self.share(digest)
        return digest

    def bundle(self, code: bytes, handler: str) -> str:
        """Validate a Python bundle (no native code, handler present), store it; return its digest."""
        from firebox.compiler.errors import CompileError
        from firebox.compiler.python import validate_bundle

        try:
            checked = validate_bundle(code, handler)
        except CompileError as exc:
            raise InvalidArtifact(str(exc)) from None
        code = checked.data
        for note in checked.notes:
            log.info("deploy: %s", note)
        digest = self.artifacts.put(code)
        self.share(digest)
        return digest

    def share(self, digest: str) -> None:
        """Make an artifact available to the other nodes (when there are any)."""
        if self.blobs is not None:
            self.blobs.put(digest, self.artifacts.get(digest))

    def ensure_local(self, digest: str | None) -> None:
        """Fetch an artifact another node stored, if this node does not have it yet."""
        if digest is None or self.artifacts.exists(digest):
            return
        data = self.blobs.get(digest) if self.blobs is not None else None
        if data is None:
            raise InvalidArtifact(f"artifact {digest} is in no store this node can reach")
        self.artifacts.put(data)

    # --- the shared Python interpreter ------------------------------------------------

    def _prepare_interpreter(self) -> str:
        from firebox.compiler.interpreter import build_interpreter

        path = build_interpreter()
        digest = sha256_file(path)
        if not self.artifacts.exists(digest):
            self.artifacts.put(path.read_bytes())
        self.share(digest)
        engine = self._components()
        with file_lock(self.cache.root / ".compile.lock"):
            self.cache.ensure_component(engine, digest, self.artifacts.path(digest))
        return digest

    def start_interpreter(self) -> None:
        """Start building/compiling the interpreter in the background (first deploy is then fast)."""
        if self._interpreter is None:
            self._interpreter = asyncio.ensure_future(asyncio.to_thread(self._prepare_interpreter))
            self._interpreter.add_done_callback(_log_failure)

    async def interpreter(self) -> str:
        """Return the digest of the compiled interpreter component, preparing it if needed.

        Raises ServiceUnavailable when it cannot be built (componentize-py missing, ...).
        """
        self.start_interpreter()
        assert self._interpreter is not None
        try:
            return await asyncio.shield(self._interpreter)
        except Exception as exc:
            self._interpreter = None
            raise ServiceUnavailable(f"the Python interpreter is not available: {exc}") from exc

    def compile_component(self, digest: str) -> None:
        """Compile a component artifact into the cache if it is not there (for another node's interpreter)."""
        engine = self._components()
        with file_lock(self.cache.root / ".compile.lock"):
            self.cache.ensure_component(engine, digest, self.artifacts.path(digest))

    @property
    def compiles(self) -> int:
        """How many artifacts this node compiled (cache misses) since it started."""
        return self._cache.stats.misses if self._cache is not None else 0


def _log_failure(future: asyncio.Future[str]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("the Python interpreter could not be prepared: %s", future.exception())
