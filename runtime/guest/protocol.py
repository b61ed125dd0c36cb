"""The interface pools and the worker use for every guest kind: programs, instances, calls
(guest layer).

A `GuestProgram` is a compiled function version a worker makes instances of; a
`GuestInstance` runs calls. Core modules (`core.py`) and Python components
(`component.py`) implement both. This module does not import wasmtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from firebox.runtime.host.log import LogBuffer


@dataclass
class CallContext:
    """What one invocation tells its guest: who is calling, until when, and where logs go."""

    request_id: str
    deadline: float  # time.monotonic() at which the call times out
    log: LogBuffer
    function_name: str = ""
    function_version: str = "$LATEST"
    invoked_arn: str = ""
    client_context: str | None = None  # Lambda's ClientContext JSON, when the caller sent one


@dataclass
class CallStats:
    """What one call used: fuel units and the linear memory high-water mark."""

    fuel: int = 0
    memory_bytes: int = 0


class GuestInstance(Protocol):
    """A ready instance of a function: call it once (or again, if `reusable`), then close it."""

    @property
    def reusable(self) -> bool:
        """False once the instance trapped (it must not be called again)."""
        ...

    def call(self, export: str, payload: bytes, ctx: CallContext) -> tuple[bytes, CallStats]:
        """Run `export` on `payload`; return the output; raise an InvocationError subclass."""
        ...

    def close(self) -> None:
        """Release the instance's Store."""
        ...


class GuestProgram(Protocol):
    """A compiled function a worker can make ready instances of (shareable between threads)."""

    def instantiate(self) -> GuestInstance:
        """Return a new instance, set up and ready for its first call."""
        ...
