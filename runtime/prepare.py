"""Getting artifacts ready on a node: validation at deploy, compiling into the cache, the shared
Python interpreter and its split form, Python versions' post-init snapshots, and fetching
artifacts another node stored (artifact layer)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firebox.compiler.cache_files import file_lock, sha256_file
from firebox.runtime.artifacts import ArtifactStore, CompiledCache, artifact_kind, compile_module
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import InvalidArtifact, ServiceUnavailable
from firebox.runtime.storage.blobs import BlobStore

if TYPE_CHECKING:
    import wasmtime
    from firebox.runtime.snapshot.capture import Capture
    from firebox.runtime.snapshot.store import SnapshotBuilder, SnapshotRef
    from firebox.runtime.specs import FunctionSpec

log = logging.getLogger("firebox.prepare")


@dataclass
class SnapshotStats:
    """How this node got the snapshots it used since it started."""

    captured: int = 0  # initialized the function and captured its state here
    fetched: int = 0  # another node captured it; fetched through the blob store
    local: int = 0  # found in this node's data dir (captured before a restart)
    unavailable: int = 0  # the interpreter cannot be split: instances run `load`


class Preparer:
    """Validates, stores and compiles artifacts for one node; shares them through `blobs`
    (None: this node is alone, its artifact folder is the only copy)."""

    def __init__(
        self,
        settings: EngineSettings,
        data_dir: Path,
        artifacts: ArtifactStore,
        blobs: BlobStore | None,
        *,
        snapshots: bool = True,
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
        # Interpreter digest -> its snapshot builder (None: its layout cannot be split).
        self._builders: dict[str, SnapshotBuilder | None] = {}
        self._builders_lock = threading.Lock()
        #: The serving engine's fingerprint snapshots are keyed by; None: no snapshots.
        self.snapshots = self.settings.fingerprint() if snapshots else None
        self.snapshot_stats = SnapshotStats()
        #: Set by `snapshot` when it captured: the capture (init log, phase times).
        self.last_capture: Capture | None = None

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
            # The cache first: another thread that sees the engine must see the cache too
            # (`cache` asserts it; seen as a 500 on a node's first calls in the chaos test).
            self._cache = CompiledCache(self.data_dir, self.settings)
            self._engine = build_engine(self.settings, parallel=False)
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
        if self.snapshots is None or self.builder(digest) is None:
            self.compile_component(digest)  # instances run `load` on the whole interpreter
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

    # --- post-init snapshots of Python versions ----------------------------------------

    def builder(self, interpreter: str) -> SnapshotBuilder | None:
        """Return the snapshot builder of an interpreter artifact, making it on first use:
        split the interpreter and compile the split for the capture engine (both cached
        beside the interpreter build), compile it for the serving engine,
        store and share its two artifacts. None when its layout cannot be split (logged
        loudly once: that interpreter's instances then run `load`)."""
        with self._builders_lock:
            if interpreter in self._builders:
                return self._builders[interpreter]
            from firebox.compiler.errors import CompileError
            from firebox.compiler.interpreter import default_cache_dir
            from firebox.compiler.interpreter_split import split_interpreter
            from firebox.runtime.snapshot.capture_process import CaptureProcess
            from firebox.runtime.snapshot.store import SnapshotBuilder, SnapshotIndex

            builder: SnapshotBuilder | None = None
            try:
                # Next to the interpreter build: the split and its capture-engine compile
                # depend on the interpreter and wasmtime only, not on this node.
                machine = default_cache_dir()
                split = split_interpreter(self.artifacts.path(interpreter), machine)
                capture = CaptureProcess(split, machine)  # inits that block get killed
                capture.start()  # compiles the split for the capture engine, first time
                builder = SnapshotBuilder(
                    capture, self._components(), self.settings.fingerprint(),
                    self.artifacts, self.cache, SnapshotIndex(self.data_dir),
                )  # fmt: skip
                for digest in (builder.split.component, builder.split.main_module):
                    self.share(digest)
                self.compile_component(builder.split.component)
            except CompileError as exc:  # SplitLayoutError, or wasm-tools missing
                log.error(
                    "post-init snapshots are OFF for interpreter %s: %s; Python instances"
                    " run their function's init instead (slow)", interpreter[:12], exc,
                )  # fmt: skip
            self._builders[interpreter] = builder
            return builder

    def snapshot(self, spec: FunctionSpec) -> SnapshotRef | None:
        """Make a Python version's snapshot local and compiled; return it (None: the spec
        names none, or its interpreter cannot be split).

        Looks in this node's index, then in the blob store (another node captured it),
        and captures it otherwise (the function's init runs here, once) and shares it.
        Raises HandlerError for the function's init errors and MemoryLimitExceeded/
        OutOfFuel/TimedOut when its init exceeds a budget (as `load` reports them).
        """
        from firebox.runtime.guest.function_config import python_config
        from firebox.runtime.snapshot.store import SnapshotIndex, SnapshotRef

        key = spec.snapshot
        if key is None or spec.bundle_digest is None:
            return None
        index = SnapshotIndex(self.data_dir)
        ref = index.get(key)
        if ref is not None and all(self.artifacts.exists(d) for d in ref.digests):
            self.snapshot_stats.local += 1
            self._compile_snapshot(ref, spec)
            return ref
        shared = self.blobs.get(key) if self.blobs is not None else None
        ref = SnapshotRef.from_bytes(shared) if shared is not None else None
        if ref is not None:
            try:
                for digest in ref.digests:
                    self.ensure_local(digest)
            except InvalidArtifact:
                ref = None  # its artifacts are gone: capture anew
            else:
                index.put(ref)
                self.snapshot_stats.fetched += 1
                self._compile_snapshot(ref, spec)
                return ref
        self.ensure_local(spec.digest)
        self.ensure_local(spec.bundle_digest)
        builder = self.builder(spec.digest)
        if builder is None:
            self.snapshot_stats.unavailable += 1
            return None
        ref = builder.ensure(spec.bundle_digest, spec.handler, python_config(spec))
        if ref.key != key:
            raise InvalidArtifact(f"snapshot key mismatch for {spec.name}: {ref.key} != {key}")
        self.last_capture = builder.last_capture
        self.snapshot_stats.captured += 1
        self.share(ref.digest)
        if self.blobs is not None:
            self.blobs.put(key, ref.to_bytes())
        return ref

    def _compile_snapshot(self, ref: SnapshotRef, spec: FunctionSpec) -> None:
        from firebox.runtime.snapshot import reset

        # Instances reset in place run on the capture engine's configuration: the module
        # and split compiled for the serving engine (1-2 s for 37-50 MB, 10-20 s for the
        # split) are only a fallback's, which compiles them when it needs them.
        if reset.serves(spec.limits.memory_mb):
            return
        engine = self._components()
        if not self.cache.path(ref.digest, "module").exists():
            self.cache.load_module(engine, ref.digest, self.artifacts.path(ref.digest))
        self.compile_component(ref.component)

    def forget_snapshot(self, key: str) -> str | None:
        """Drop a snapshot's index entries (here and shared); return its module's digest."""
        from firebox.runtime.snapshot.store import SnapshotIndex

        index = SnapshotIndex(self.data_dir)
        ref = index.get(key)
        index.delete(key)
        if self.blobs is not None:
            self.blobs.delete(key)
        return ref.digest if ref is not None else None

    @property
    def compiles(self) -> int:
        """How many artifacts this node compiled (cache misses) since it started."""
        return self._cache.stats.misses if self._cache is not None else 0

    @property
    def compile_seconds(self) -> float:
        """How long those compiles took, in seconds (GET /metrics)."""
        return self._cache.stats.compile_s if self._cache is not None else 0.0


def _log_failure(future: asyncio.Future[str]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("the Python interpreter could not be prepared: %s", future.exception())
