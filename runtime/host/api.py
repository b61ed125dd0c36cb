"""What a host API is: its functions for core modules and for components, and the per-call
state they read (host layer).

A host API does not know which guest kind calls it nor which front end is running: the
guest layer (`firebox.runtime.guest.core`, `.component`) defines its functions on each
kind's Linker, hands them the calling Store's `HostState`, and keeps wasmtime out of here.
Host functions must never raise: wasmtime-py passes host exceptions through a
process-global that another thread can steal. The guest layer swallows whatever escapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

#: The WIT package components import host interfaces from (compiler/wit/firebox.wit).
WIT_PACKAGE = "firebox:function"


class LogSink(Protocol):
    """Where an invocation's log output (print, logging, stderr) goes."""

    def write(self, text: str) -> None:
        """Append `text` (one or more lines, newline-terminated) to the log stream."""


class NullSink:
    """A LogSink that drops everything (between calls, nothing may be logged)."""

    def write(self, text: str) -> None:
        """Drop `text`."""
        return None


class HostState:
    """What host functions know of the call running in one Store (one per Store).

    `log_budget` is how many characters of log the host still accepts during the call,
    or None when the sink bounds itself (a `LogBuffer`). `deadline` is the
    `time.monotonic()` instant the running call (or initialization) must end by, or
    None: a host function that can block waits no longer than that.
    """

    __slots__ = ("calls", "deadline", "expired", "function", "grants", "log", "log_budget")

    def __init__(
        self, log: LogSink | None = None, log_budget: int | None = None, grants: Any = None
    ) -> None:
        self.log: LogSink = log if log is not None else NullSink()
        self.log_budget = log_budget
        #: What the function version was granted (a `firebox.runtime.grants.Grants`).
        self.grants = grants
        #: The (function, version) running in the Store, whose execution role it has.
        self.function: tuple[str, str] | None = None
        #: The running call's deadline (`time.monotonic()`); host calls end by it.
        self.deadline: float | None = None
        #: True once a host call was cut off by `deadline`: the call then ends in TimedOut
        #: even if the guest caught the host's error and returned.
        self.expired = False
        #: Capability calls and refusals by name ("kv.get", "denied.http", ...), for metering.
        self.calls: dict[str, int] = {}


class GuestMemory(Protocol):
    """The calling core module's linear memory, as a core host function sees it."""

    def read(self, ptr: int, length: int) -> bytes | None:
        """Return `length` bytes at `ptr`, or None if they lie outside the memory."""
        ...


@dataclass(frozen=True)
class CoreFunction:
    """A host function imported by ABI v1 core modules as `firebox.<name>`.

    `params`/`results` are wasm value types ("i32", "i64"); `call` gets the Store's
    HostState, the guest's memory and the wasm arguments, and returns the result (or None).
    """

    params: tuple[str, ...]
    results: tuple[str, ...]
    call: Callable[..., Any]


@dataclass(frozen=True)
class HostAPI:
    """One host API: its WIT interface for components and its `firebox.*` core functions.

    Component functions get the Store's HostState and the WIT arguments (lifted by
    wasmtime-py); they are defined in the instance `firebox:function/<interface>`.
    """

    interface: str
    component: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    core: Mapping[str, CoreFunction] = field(default_factory=dict)

    @property
    def wit_instance(self) -> str:
        """Return the name components import this API's interface by."""
        return f"{WIT_PACKAGE}/{self.interface}"
