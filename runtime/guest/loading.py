"""Turn a function spec into a compiled, ready-to-instantiate program (guest layer)."""

from __future__ import annotations

import wasmtime
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.errors import InvalidArtifact
from firebox.runtime.guest.component import (
    LOAD_FUEL,
    LOAD_TIMEOUT_S,
    PythonFunctionConfig,
    PythonGuestProgram,
    PythonProgram,
)
from firebox.runtime.guest.core import CoreProgram
from firebox.runtime.guest.protocol import GuestProgram
from firebox.runtime.specs import FunctionSpec


def load_program(
    spec: FunctionSpec,
    engine: wasmtime.Engine,
    artifacts: ArtifactStore,
    cache: CompiledCache,
) -> GuestProgram:
    """Return the program for a function spec, compiling through the cache.

    Raises InvalidArtifact if the artifact is missing or does not fit the spec's kind.
    """
    limits = spec.limits
    env = dict(spec.environment)
    kind = spec.kind
    digest = spec.digest
    if not artifacts.exists(digest):
        raise InvalidArtifact(f"artifact {digest} is missing from the store")
    if kind == "module":
        module = cache.load_module(engine, digest, artifacts.path(digest))
        return CoreProgram(engine, module, limits, env)
    if kind == "python":
        component = cache.load_component(engine, digest, artifacts.path(digest))
        config = PythonFunctionConfig(
            function_name=spec.name,
            function_version=spec.version,
            memory_mb=limits.memory_mb,
            environment=env,
            max_log_bytes=limits.max_log_bytes,
            load_timeout_s=max(LOAD_TIMEOUT_S, limits.timeout_s),
            load_fuel=max(LOAD_FUEL, limits.fuel),
        )
        if spec.bundle_digest is None:
            raise InvalidArtifact(f"Python function {spec.name} has no code bundle")
        bundle = artifacts.get(spec.bundle_digest)
        program = PythonProgram(engine, component, bundle, spec.handler, config)
        return PythonGuestProgram(program, limits)
    raise InvalidArtifact(f"unknown function kind {kind!r}")
