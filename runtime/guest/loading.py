"""Turn a function spec into a compiled, ready-to-instantiate program (guest layer)."""

from __future__ import annotations

import logging

import wasmtime
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.errors import FireboxError, InvalidArtifact
from firebox.runtime.guest.component import PythonGuestProgram, PythonInstances, PythonProgram
from firebox.runtime.guest.core import CoreProgram
from firebox.runtime.guest.function_config import PythonFunctionConfig, python_config
from firebox.runtime.guest.protocol import GuestProgram
from firebox.runtime.snapshot.store import SnapshotIndex, SnapshotRef, load_snapshot_program
from firebox.runtime.specs import FunctionSpec

log = logging.getLogger("firebox.loading")


def load_program(
    spec: FunctionSpec,
    engine: wasmtime.Engine,
    artifacts: ArtifactStore,
    cache: CompiledCache,
) -> GuestProgram:
    """Return the program for a function spec, compiling through the cache.

    A Python spec that names a snapshot the node has made (its index entry is in the
    data dir) restores every instance from it; without one, each instance runs `load`.
    Raises InvalidArtifact if the artifact is missing or does not fit the spec's kind.
    """
    limits = spec.limits
    digest = spec.digest
    if not artifacts.exists(digest):
        raise InvalidArtifact(f"artifact {digest} is missing from the store")
    if spec.kind == "module":
        module = cache.load_module(engine, digest, artifacts.path(digest))
        return CoreProgram(engine, module, limits, dict(spec.environment))
    if spec.kind == "python":
        if spec.bundle_digest is None:
            raise InvalidArtifact(f"Python function {spec.name} has no code bundle")
        return PythonGuestProgram(_python_program(spec, engine, artifacts, cache), limits)
    raise InvalidArtifact(f"unknown function kind {spec.kind!r}")


def _python_program(
    spec: FunctionSpec, engine: wasmtime.Engine, artifacts: ArtifactStore, cache: CompiledCache
) -> PythonInstances:
    config = python_config(spec)
    assert spec.bundle_digest is not None  # load_program refused a Python spec without one
    if spec.snapshot is not None:
        ref = SnapshotIndex(artifacts.root.parent).get(spec.snapshot)
        if ref is not None:
            reset = _reset_program(artifacts, cache, ref, config, spec.bundle_digest)
            if reset is not None:
                return reset
            return load_snapshot_program(
                engine, artifacts, cache, ref.split, ref.digest, config, spec.bundle_digest,
                ref.memory_bytes,
            )  # fmt: skip
        log.warning(
            "%s:%s has no snapshot on this node: instances run its init", spec.name, spec.version
        )
    component = cache.load_component(engine, spec.digest, artifacts.path(spec.digest))
    return PythonProgram(engine, component, artifacts.get(spec.bundle_digest), spec.handler, config)


def _reset_program(
    artifacts: ArtifactStore,
    cache: CompiledCache,
    ref: SnapshotRef,
    config: PythonFunctionConfig,
    bundle_digest: str,
) -> PythonInstances | None:
    """The version's instances reset in place between calls (snapshot/reset.py), or None
    when that route is off or cannot serve it (its instances are then new per call)."""
    from firebox.runtime.snapshot import reset

    if not reset.enabled():
        return None
    for digest in (ref.component, ref.main_module, ref.digest, bundle_digest):
        if not artifacts.exists(digest):
            raise InvalidArtifact(f"artifact {digest} is missing from the store")
    try:
        return reset.load_reset_program(
            artifacts, cache.root, ref.component, ref.main_module, ref.import_name, ref.digest,
            config, artifacts.get(bundle_digest),
        )  # fmt: skip
    except (OSError, ValueError, RuntimeError, wasmtime.WasmtimeError, FireboxError) as exc:
        log.warning("instances of snapshot %s are not reset in place: %s", ref.digest[:12], exc)
        return None
