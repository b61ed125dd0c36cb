"""The log host API and the host's monotonic clock, and the bounded capture of what a guest
prints or logs during one invocation (host layer).

Components import `log` and `monotonic-ms` from the WIT interface `host`; core modules
import `firebox.log(ptr, len)`; both kinds' stdout and stderr land in the same buffer.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from firebox.runtime.host.api import CoreFunction, GuestMemory, HostAPI, HostState

TRUNCATED_MARKER = "\n[firebox] log truncated: the invocation wrote more than {limit} bytes\n"


class LogBuffer:
    """Collects a guest's output up to `limit` bytes, then drops the rest with one marker.

    A guest that prints forever costs the node at most `limit` bytes, never its memory.
    `write` never raises: host functions must not raise (wasmtime-py passes host
    exceptions through a process-global, which races between threads).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[str] = []
        self._size = 0
        self.truncated = False
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        """Append `text`, or the part of it that still fits."""
        with self._lock:
            if self.truncated:
                return
            room = self.limit - self._size
            data = text.encode("utf-8", "replace")
            if len(data) <= room:
                self._parts.append(text)
                self._size += len(data)
                return
            self._parts.append(data[:room].decode("utf-8", "ignore"))
            self._parts.append(TRUNCATED_MARKER.format(limit=self.limit))
            self._size = self.limit
            self.truncated = True

    def write_bytes(self, data: bytes) -> None:
        """Append raw guest output (decoded as UTF-8 with replacement)."""
        self.write(data.decode("utf-8", "replace"))

    def text(self) -> str:
        """Return everything captured so far."""
        with self._lock:
            return "".join(self._parts)


def write_log(state: HostState, text: str) -> None:
    """Append `text` to the current call's log, within what the host still accepts."""
    if state.log_budget is not None:
        if state.log_budget <= 0:
            return
        text = text[: state.log_budget]
        state.log_budget -= len(text)
    state.log.write(text)


def _core_log(state: HostState, memory: GuestMemory, ptr: int, length: int) -> None:
    data = memory.read(ptr, length)
    if data is not None:
        write_log(
            state, (data if data.endswith(b"\n") else data + b"\n").decode("utf-8", "replace")
        )


def _component_log(state: HostState, level: Any, message: str) -> None:
    # The guest formats the level into the line itself (Lambda's log format).
    write_log(state, message)


def monotonic_ms() -> int:
    """Return the host's monotonic clock in milliseconds (the clock of call deadlines)."""
    return int(time.monotonic() * 1000)


def _component_monotonic_ms(state: HostState) -> int:
    return monotonic_ms()


API = HostAPI(
    interface="host@1.0.0",
    component={"log": _component_log, "monotonic-ms": _component_monotonic_ms},
    core={"log": CoreFunction(params=("i32", "i32"), results=(), call=_core_log)},
)
