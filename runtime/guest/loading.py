"""Turn a function spec into a compiled, ready-to-instantiate program (guest layer)."""

from __future__ import annotations

from typing import Any

import wasmtime
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.errors import InvalidArtifact
from firebox.runtime.guest.component import PythonFunctionConfig, PythonGuestProgram, PythonProgram
from firebox.runtime.guest.core import CoreProgram
from firebox.runtime.guest.protocol import GuestProgram
from firebox.runtime.limits import Limits


def load_program(
    spec: dict[str, Any],
    engine: wasmtime.Engine,
    artifacts: ArtifactStore,
    cache: CompiledCache,
) -> GuestProgram:
    """Return the program for a function spec (wire form), compiling through the cache.

    Raises InvalidArtifact if the artifact is missing or does not fit the spec's kind.
    """
    limits = Limits.from_dict(spec.get("limits", {}))
    env = dict(spec.get("environment", {}))
    kind = spec.get("kind", "module")
    digest = spec["digest"]
    if not artifacts.exists(digest):
        raise InvalidArtifact(f"artifact {digest} is missing from the store")
    if kind == "module":
        module = cache.load_module(engine, digest, artifacts.path(digest))
        return CoreProgram(engine, module, limits, env)
    if kind == "python":
        component = cache.load_component(engine, digest, artifacts.path(digest))
        config = PythonFunctionConfig(
            function_name=spec["name"],
            function_version=spec.get("version", "$LATEST"),
            invoked_function_arn=spec.get("arn", ""),
            memory_mb=limits.memory_mb,
            environment=env,
            max_log_bytes=limits.max_log_bytes,
        )
        bundle = artifacts.get(spec["bundle_digest"])
        program = PythonProgram(engine, component, bundle, spec["handler"], config)
        return PythonGuestProgram(program, limits)
    raise InvalidArtifact(f"unknown function kind {kind!r}")
