"""The threads a worker runs guests on: a fixed number that are free, however many are stuck
(worker layer).

Like a `ThreadPoolExecutor` of `threads`, except that a thread the watchdog set aside
(stuck in a host call past its deadline) is replaced at once by `add()`, and the extra
thread goes away (`retire()`) once the stuck one ends, so the worker keeps `threads`
free threads and returns to that many.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any


class GuestThreads:
    """A pool of daemon threads running submitted calls in order of arrival."""

    def __init__(self, threads: int, name: str = "guest") -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._name = name
        self._lock = threading.Lock()
        self._target = 0
        self._live = 0
        self._serial = 0
        for _ in range(max(1, threads)):
            self.add()

    @property
    def live(self) -> int:
        """Return how many threads exist now (free, busy and stuck)."""
        return self._live

    @property
    def queued(self) -> int:
        """Return how many submitted calls wait for a free thread now (approximate)."""
        return self._queue.qsize()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the next free thread (exceptions are the caller's to catch)."""
        self._queue.put((fn, args))

    def add(self) -> None:
        """Add one thread (replacing one set aside)."""
        with self._lock:
            self._target += 1
            self._live += 1
            self._serial += 1
            serial = self._serial
        threading.Thread(target=self._run, name=f"{self._name}-{serial}", daemon=True).start()

    def retire(self) -> None:
        """Remove one thread: the next that finishes a call while there are too many exits."""
        with self._lock:
            self._target = max(1, self._target - 1)

    def shutdown(self) -> None:
        """Stop every thread once the queue is drained (busy ones finish their call)."""
        with self._lock:
            live = self._live
        for _ in range(live):
            self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            fn, args = item
            fn(*args)
            with self._lock:
                if self._live > self._target:
                    self._live -= 1
                    return
        with self._lock:
            self._live -= 1
