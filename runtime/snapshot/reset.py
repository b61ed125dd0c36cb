"""Instances reset in place to their version's snapshot between invocations (engine layer).

A fresh instance per invocation from a snapshot costs ~1.4 ms of CPU to make (a Store,
the component's 14 core modules instantiated, the `restore` export) and as much again
to tear down and to fault its pages back in. Every invocation must still start from the
clean post-init state, but that state is nothing but module 0's linear memory (the
layout check of `interpreter_split` proves the rest is constant between calls: no other
global than the stack pointer changes, no table does). So an instance that answered
normally is put back instead of thrown away:

- its memory is host-allocated (`memory.HostMemoryCreator`, the capture engine's
  configuration) and mapped copy-on-write from the version's **memory image**, a file
  holding the snapshot's memory: the pages a call wrote are exactly the ones that are
  no longer the file's (`/proc/self/pagemap`), and only those are copied back
  (`memory.reset_memory`); they stay resident, so the next call does not fault again;
- its /tmp is emptied, and `restore` runs again (random reseeded, SnapStart
  after-restore hooks), exactly as for a new instance.

An instance that trapped, timed out, grew its memory (the size is visible to the guest
and cannot shrink), or was reset `MAX_RECYCLES` times (its Store's host-side handle
table only grows) is closed and replaced by a new one, as before. Measured in
docs/snapshots.md ("Reset in place").
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import wasmtime
from firebox.compiler import wasm_sections
from firebox.compiler.interpreter_split import SplitInterpreter
from firebox.runtime import config
from firebox.runtime.artifacts import ArtifactStore
from firebox.runtime.config import MiB
from firebox.runtime.guest.component import (
    RESTORE_FUEL,
    RESTORE_TIMEOUT_S,
    PythonInstance,
    start_instance,
)
from firebox.runtime.guest.function_config import PythonFunctionConfig
from firebox.runtime.snapshot.memory import (
    HostMemory,
    MemoryImage,
    pagemap_available,
    reset_memory,
)
from firebox.runtime.snapshot.restore import SnapshotProgram

if TYPE_CHECKING:
    from firebox.runtime.snapshot.capture import CaptureEngine

log = logging.getLogger("firebox.snapshot")

#: Invocations one instance serves before it is replaced by a new one.
MAX_RECYCLES = 1000

_engines: dict[str, CaptureEngine] = {}
_engines_lock = threading.Lock()


def enabled() -> bool:
    """Whether instances are reset in place (`FIREBOX_SNAPSHOT_RESET`, Linux only)."""
    return config.FIREBOX_SNAPSHOT_RESET.get() and pagemap_available()


def serves(memory_mb: int) -> bool:
    """Whether instances of a function with `memory_mb` of memory are reset in place."""
    from firebox.runtime.snapshot.capture import CAPTURE_MAX_MEMORY

    return enabled() and memory_mb * MiB <= CAPTURE_MAX_MEMORY


def reset_engine(
    component: Path, main_module: Path, import_name: str, digest: str
) -> CaptureEngine:
    """Return this process's capture-configured engine for a split interpreter (made once).

    The split component's compile for it is the one the node's capture child made (the
    same cache, next to the interpreter build), so a worker only deserializes it.
    """
    from firebox.compiler.cache_files import file_lock
    from firebox.compiler.interpreter import default_cache_dir
    from firebox.runtime.snapshot.capture import CaptureEngine

    with _engines_lock:
        engine = _engines.get(digest)
        if engine is None:
            cache = default_cache_dir()
            split = SplitInterpreter(component, main_module, digest, import_name)
            with file_lock(cache / ".capture-compile.lock"):
                engine = CaptureEngine(split, cache)
            _engines[digest] = engine
        return engine


class ResetSnapshotProgram(SnapshotProgram):
    """Instances of a version mapped from its memory image, reset in place after each call."""

    def __init__(
        self,
        engine: CaptureEngine,
        image: MemoryImage,
        module: wasmtime.Module,
        config: PythonFunctionConfig,
        import_name: str,
        bundle: bytes,
    ) -> None:
        self._capture = engine
        self.image = image
        super().__init__(
            engine.engine, engine.component, module, image.size, config, import_name, bundle
        )

    def instantiate(self) -> PythonInstance:
        """Return a new instance in the post-init state whose memory is the image's pages."""
        self.check_memory()
        with self._capture.creator.mapping(self.image) as created:
            instance = start_instance(
                self._linker, self.component, self.config, "restore", (),
                bundle=self.bundle, fuel=RESTORE_FUEL, timeout_s=RESTORE_TIMEOUT_S,
            )  # fmt: skip
        memories = [m for m in created if m.image is self.image]
        if len(memories) != 1:
            instance.close()
            raise RuntimeError(f"a restored instance made {len(created)} memories from its image")
        instance.resetter = Resetter(memories[0], self.image)
        return instance


class Resetter:
    """Puts one instance's memory back to its image, at most MAX_RECYCLES times."""

    def __init__(self, memory: HostMemory, image: MemoryImage) -> None:
        self.memory = memory
        self.image = image
        self.uses = 0
        #: Pages the last reset copied back (what the last call wrote).
        self.last_pages = 0

    def __call__(self) -> bool:
        """Reset the memory; False when it cannot be (grown, used up, no page map)."""
        if self.uses >= MAX_RECYCLES:
            return False
        self.uses += 1
        pages = reset_memory(self.memory, self.image)
        if pages is None:
            return False
        self.last_pages = pages
        return True


def load_reset_program(
    artifacts: ArtifactStore,
    cache_root: Path,
    component_digest: str,
    main_digest: str,
    import_name: str,
    snapshot_digest: str,
    config: PythonFunctionConfig,
    bundle: bytes,
) -> ResetSnapshotProgram | None:
    """Return the reset-in-place program of a snapshot, or None when it cannot be used
    (memory above the capture engine's maximum, no page map). Builds, once per node, the
    version's memory image file and its snapshot module without data, compiled for the
    capture engine (both kept in `cache_root`)."""
    from firebox.compiler.cache_files import file_lock

    if not serves(config.memory_mb):
        return None
    engine = reset_engine(
        artifacts.path(component_digest), artifacts.path(main_digest), import_name,
        component_digest,
    )  # fmt: skip
    folder = cache_root / "reset"
    folder.mkdir(parents=True, exist_ok=True)
    image_path = folder / f"{snapshot_digest}.img"
    compiled_path = folder / f"{snapshot_digest}.cwasm"
    started = time.perf_counter()
    with file_lock(folder / f".{snapshot_digest}.lock"):
        if not image_path.is_file() or not compiled_path.is_file():
            _build(artifacts.path(snapshot_digest), engine.engine, image_path, compiled_path)
    module = None
    try:
        module = wasmtime.Module.deserialize_file(engine.engine, str(compiled_path))
    except wasmtime.WasmtimeError:
        compiled_path.unlink(missing_ok=True)
        with file_lock(folder / f".{snapshot_digest}.lock"):
            _build(artifacts.path(snapshot_digest), engine.engine, image_path, compiled_path)
        module = wasmtime.Module.deserialize_file(engine.engine, str(compiled_path))
    image = MemoryImage(str(image_path))
    log.debug("reset program %s ready in %.1f ms", snapshot_digest[:12],
              (time.perf_counter() - started) * 1000)  # fmt: skip
    return ResetSnapshotProgram(engine, image, module, config, import_name, bundle)


def _build(snapshot: Path, engine: wasmtime.Engine, image_path: Path, compiled_path: Path) -> None:
    """Write the snapshot module's memory as an image file, and compile the module with
    its memory but without its data (the image supplies it) for `engine`."""
    data = snapshot.read_bytes()
    memories = wasm_sections.memories(data)
    if len(memories) != 1:
        raise ValueError(f"a snapshot module defines {len(memories)} memories, not 1")
    size = memories[0].minimum * wasm_sections.PAGE
    tmp = image_path.with_name(f".tmp-{image_path.name}-{threading.get_ident()}")
    with tmp.open("wb") as out:
        out.truncate(size)  # sparse: the zero pages take no disk
        for segment in wasm_sections.data_segments(data):
            if segment.offset + len(segment.data) > size:
                raise ValueError("a snapshot data segment lies outside its memory")
            out.seek(segment.offset)
            out.write(segment.data)
    tmp.replace(image_path)
    bare = wasm_sections.with_memory_and_data(data, memories[0].minimum, [])
    compiled = wasmtime.Module(engine, bare).serialize()
    tmp = compiled_path.with_name(f".tmp-{compiled_path.name}-{threading.get_ident()}")
    tmp.write_bytes(bytes(compiled))
    tmp.replace(compiled_path)
