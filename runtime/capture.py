"""Bounded capture of what a guest prints or logs during one invocation (limits layer)."""

from __future__ import annotations

import threading

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
