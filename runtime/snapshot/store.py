"""Snapshots as artifacts: build once per key, store, compile, load on a worker (artifact layer).

A snapshot module is an artifact like any other (content-addressed wasm in the
ArtifactStore, shared through the registry like bundles, compiled into each node's
CompiledCache on the serving engine's settings). The SnapshotIndex maps a snapshot key
(key.py) to the artifact, so a deploy whose inputs did not change captures nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import wasmtime
from firebox.compiler.interpreter_split import MAIN_IMPORT, SplitInterpreter
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.errors import InvalidArtifact
from firebox.runtime.guest.function_config import PythonFunctionConfig
from firebox.runtime.snapshot.capture import Capture
from firebox.runtime.snapshot.key import config_fields, snapshot_key
from firebox.runtime.snapshot.restore import SnapshotProgram
from wasmtime.component import Component

PAGE = 65536


class CaptureRunner(Protocol):
    """What captures: `CaptureEngine` in process, or `CaptureProcess` in a child."""

    split: SplitInterpreter

    def capture(self, bundle: bytes, handler: str, config: PythonFunctionConfig) -> Capture: ...


@dataclass(frozen=True)
class SplitDigests:
    """The split interpreter's two artifacts and the import that joins them."""

    component: str  # digest of the split component
    main_module: str  # digest of module 0
    import_name: str


@dataclass(frozen=True)
class SnapshotRef:
    """A built snapshot: its key, its module's artifact digest, its memory size, and the
    split interpreter it restores into (artifact digests and the import that joins them)."""

    key: str
    digest: str
    memory_bytes: int
    component: str = ""
    main_module: str = ""
    import_name: str = MAIN_IMPORT

    @property
    def split(self) -> SplitDigests:
        """The split interpreter this snapshot restores into."""
        return SplitDigests(self.component, self.main_module, self.import_name)

    @property
    def digests(self) -> tuple[str, ...]:
        """Every artifact a worker needs to restore from this snapshot."""
        return (self.digest, self.component, self.main_module)

    def to_bytes(self) -> bytes:
        """Return the reference as JSON bytes (how nodes share it)."""
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> SnapshotRef | None:
        """Return a reference from its JSON bytes, or None if they are not one."""
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError):
            return None


class SnapshotIndex:
    """Snapshot key -> SnapshotRef, one small JSON file per key under `<data>/snapshots/`."""

    def __init__(self, root: Path) -> None:
        self.root = root / "snapshots"
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> SnapshotRef | None:
        """Return the snapshot built for `key`, or None."""
        try:
            return SnapshotRef.from_bytes((self.root / f"{key}.json").read_bytes())
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        """Forget the snapshot of `key` (its artifacts are the caller's to delete)."""
        (self.root / f"{key}.json").unlink(missing_ok=True)

    def put(self, ref: SnapshotRef) -> None:
        """Record a built snapshot (atomic)."""
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(ref), f)
        os.replace(tmp, self.root / f"{ref.key}.json")


def store_split(artifacts: ArtifactStore, split: SplitInterpreter) -> SplitDigests:
    """Store the split interpreter's files as artifacts; return their digests."""
    component = artifacts.put(split.component.read_bytes())
    main = artifacts.put(split.main_module.read_bytes())
    return SplitDigests(component, main, split.import_name)


class SnapshotBuilder:
    """Builds, stores and compiles the snapshots of one node (deploy side)."""

    def __init__(
        self,
        capture_engine: CaptureRunner,
        serving_engine: wasmtime.Engine,
        engine_fingerprint: str,
        artifacts: ArtifactStore,
        cache: CompiledCache,
        index: SnapshotIndex,
    ) -> None:
        self.capture_engine = capture_engine
        self.serving_engine = serving_engine
        self.engine_fingerprint = engine_fingerprint
        self.artifacts = artifacts
        self.cache = cache
        self.index = index
        self._lock = threading.Lock()
        self.split = store_split(artifacts, capture_engine.split)
        #: The last capture this builder ran (phase times and the init log), for callers.
        self.last_capture: Capture | None = None

    def key(self, bundle_digest: str, handler: str, config: PythonFunctionConfig) -> str:
        """Return the snapshot key of a function version on this node's engine settings
        (the interpreter is the one the capture engine runs)."""
        return snapshot_key(
            interpreter_digest=self.capture_engine.split.interpreter_digest,
            bundle_digest=bundle_digest,
            handler=handler,
            config=config_fields(config),
            engine_fingerprint=self.engine_fingerprint,
        )

    def ensure(self, bundle_digest: str, handler: str, config: PythonFunctionConfig) -> SnapshotRef:
        """Return the version's snapshot, capturing it unless one with its key exists.

        The snapshot module is stored as an artifact and compiled into the cache, so a
        worker only deserializes it. Raises what `CaptureEngine.capture` raises (the
        function's init errors as HandlerError) and InvalidArtifact for a missing bundle.
        """
        key = self.key(bundle_digest, handler, config)
        with self._lock:  # one capture at a time: each holds up to a GiB of memory
            ref = self.index.get(key)
            capture: Capture | None = None
            if ref is None or not self.artifacts.exists(ref.digest):
                bundle = self.artifacts.get(bundle_digest)
                capture = self.capture_engine.capture(bundle, handler, config)
                self.last_capture = capture
                started = time.perf_counter()
                digest = self.artifacts.put(capture.module)
                split = self.split
                ref = SnapshotRef(
                    key, digest, capture.memory_bytes,
                    split.component, split.main_module, split.import_name,
                )  # fmt: skip
                self.index.put(ref)
                capture.seconds["store"] = time.perf_counter() - started
            started = time.perf_counter()
            from firebox.runtime.snapshot import reset

            if (
                not reset.serves(config.memory_mb)
                and not self.cache.path(ref.digest, "module").exists()
            ):
                path = self.artifacts.path(ref.digest)
                self.cache.load_module(self.serving_engine, ref.digest, path)
            if capture is not None:
                capture.seconds["compile_serialize"] = time.perf_counter() - started
        return ref


def load_snapshot_program(
    engine: wasmtime.Engine,
    artifacts: ArtifactStore,
    cache: CompiledCache,
    split: SplitDigests,
    snapshot_digest: str,
    config: PythonFunctionConfig,
    bundle_digest: str,
    memory_bytes: int | None = None,
) -> SnapshotProgram:
    """Return the program that makes instances of a version from its snapshot (worker side).

    Both the split component and the snapshot module come from the compiled cache
    (deserialized, ~2-4 ms, when the node compiled them at deploy). `memory_bytes` is
    the snapshot's memory size from its SnapshotRef (None: read from the module, ~20 ms
    for its ~900 exports). Raises InvalidArtifact when an artifact is missing or is not
    a snapshot module. The instances see the bundle (`bundle_digest`) read-only at
    /var/task, as `load` did.
    """
    for digest in (split.component, snapshot_digest, bundle_digest):
        if not artifacts.exists(digest):
            raise InvalidArtifact(f"artifact {digest} is missing from the store")
    component: Component = cache.load_component(
        engine, split.component, artifacts.path(split.component)
    )
    module = cache.load_module(engine, snapshot_digest, artifacts.path(snapshot_digest))
    if memory_bytes is None:
        memory_bytes = _memory_bytes(module)
    bundle = artifacts.get(bundle_digest)  # its instances see it at /var/task
    return SnapshotProgram(
        engine, component, module, memory_bytes, config, split.import_name, bundle
    )


def _memory_bytes(module: wasmtime.Module) -> int:
    for export in module.exports:
        kind = export.type
        if isinstance(kind, wasmtime.MemoryType):
            return int(kind.limits.min) * PAGE
    raise InvalidArtifact("the snapshot module exports no memory")
