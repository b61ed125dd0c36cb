"""Turn a function spec into a compiled, ready-to-instantiate program (guest layer)."""

from __future__ import annotations

from typing import Any

import wasmtime
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.errors import GuestTrap, InvalidArtifact, ResponseTooLarge
from firebox.runtime.guest import CallContext, CallStats, CoreProgram, GuestProgram
from firebox.runtime.limits import Limits
from firebox.runtime.python_guest import (
    LOAD_FUEL,
    LOAD_TIMEOUT_S,
    PythonFunctionConfig,
    PythonInstance,
    PythonProgram,
)


class PythonGuest:
    """A PythonInstance behind the GuestInstance interface pools use."""

    def __init__(self, instance: PythonInstance, limits: Limits) -> None:
        self.instance = instance
        self.limits = limits

    @property
    def reusable(self) -> bool:
        """False once the instance trapped."""
        return self.instance.reusable

    def call(self, export: str, payload: bytes, ctx: CallContext) -> tuple[bytes, CallStats]:
        """Run the handler (a Python function has one entry point, whatever `export` says)."""
        limit = self.limits.max_response_bytes
        try:
            output = self.instance.call(
                payload, ctx.request_id, ctx.deadline, self.limits.fuel, ctx.log,
                invoked_arn=ctx.invoked_arn, client_context=ctx.client_context,
            )  # fmt: skip
        except GuestTrap as exc:
            # wasmtime refuses to copy a huge result out of the component (its hostcall
            # budget is a few MiB above our default limit): that is an oversized response.
            if "too much data is being copied" in exc.message:
                raise ResponseTooLarge(None, limit) from None
            raise
        if len(output) > limit:
            raise ResponseTooLarge(len(output), limit)
        return output, CallStats(fuel=self.instance.last_fuel_used)

    def close(self) -> None:
        """Release the instance's Store."""
        self.instance.close()


class PythonGuestProgram:
    """A PythonProgram that makes PythonGuest instances."""

    def __init__(self, program: PythonProgram, limits: Limits) -> None:
        self.program = program
        self.limits = limits

    def instantiate(self) -> PythonGuest:
        """Return a new instance with the function's code loaded."""
        return PythonGuest(self.program.instantiate(), self.limits)


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
            load_timeout_s=max(LOAD_TIMEOUT_S, limits.timeout_s),
            load_fuel=max(LOAD_FUEL, limits.fuel),
        )
        bundle = artifacts.get(spec["bundle_digest"])
        program = PythonProgram(engine, component, bundle, spec["handler"], config)
        return PythonGuestProgram(program, limits)
    raise InvalidArtifact(f"unknown function kind {kind!r}")
