"""Turn a function spec into a compiled, ready-to-instantiate program (guest layer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import wasmtime
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.errors import InvalidArtifact
from firebox.runtime.guest import CoreProgram, GuestProgram
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
    if kind == "module":
        digest = spec["digest"]
        module = cache.load_module(engine, digest, artifacts.path(digest))
        return CoreProgram(engine, module, limits, env)
    if kind == "python":
        from firebox.runtime.python_guest import load_python_program

        return load_python_program(spec, engine, artifacts, cache, limits, env)
    raise InvalidArtifact(f"unknown function kind {kind!r}")


def artifact_path(artifacts: ArtifactStore, digest: str) -> Path:
    """Return the path of a stored artifact, raising InvalidArtifact if it is missing."""
    path = artifacts.path(digest)
    if not path.exists():
        raise InvalidArtifact(f"artifact {digest} is missing from the store")
    return path
