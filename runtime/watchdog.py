"""Requests that overstay their deadline in a worker, answered on time without killing the
worker (worker layer).

A guest blocked in a host call that epochs cannot interrupt (a component's WASI sleep,
wasmtime-py lifting a huge result, an import that sleeps) keeps its thread. Before,
the node killed the whole worker process then, failing every other function's calls
there with WorkerLost. Now every invocation and load is watched: when one is still
running `grace_s` after its deadline, the watchdog sends its reply (a `TimedOut`) in
its place, counts the thread as stuck, names the function in the log, and asks for a
replacement thread so the worker keeps its capacity. The stuck thread's own reply is
dropped when it ends (its instance is then discarded: its epoch deadline passed).

Stuck threads hold memory, so their number is bounded (`max_stuck`): past it the
watchdog stops answering and the node's last resort applies (it kills the worker after
its grace, then restarts it).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("firebox.watchdog")


class Ticket:
    """One watched request: its frame id, what it runs, its deadline and who answered."""

    __slots__ = ("answered", "deadline", "frame_id", "key", "overdue", "started", "stuck", "what")

    def __init__(
        self,
        frame_id: Any,
        key: str,
        deadline: float,
        what: str,
        overdue: Callable[[], dict[str, Any] | None],
    ) -> None:
        self.frame_id = frame_id
        self.key = key
        self.deadline = deadline
        self.what = what
        self.overdue = overdue
        #: Who replied: None (nobody yet), "thread" or "watchdog".
        self.answered: str | None = None
        #: Whether a thread runs it (a request still queued holds no thread).
        self.started = True
        #: Whether the watchdog counted its thread as stuck.
        self.stuck = False


class Watchdog:
    """One daemon thread that answers overdue requests of a worker (see the module doc)."""

    def __init__(
        self,
        send: Callable[[dict[str, Any]], None],
        *,
        on_stuck: Callable[[Ticket], None],
        on_unstuck: Callable[[Ticket], None],
        grace_s: float = 0.05,
        max_stuck: int = 64,
    ) -> None:
        self._send = send
        self._on_stuck = on_stuck
        self._on_unstuck = on_unstuck
        self.grace_s = grace_s
        self.max_stuck = max_stuck
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Ticket]] = []
        self._order = itertools.count()
        #: Stuck threads per function key (threads whose request the watchdog answered).
        self.stuck: dict[str, int] = {}
        #: Requests answered by the watchdog since the worker started.
        self.answered = 0
        self._thread = threading.Thread(target=self._run, name="firebox-watchdog", daemon=True)
        self._thread.start()

    def watch(
        self, frame_id: Any, key: str, deadline: float, what: str,
        overdue: Callable[[], dict[str, Any] | None], *, started: bool = True,
    ) -> Ticket:  # fmt: skip
        """Start watching a request; `overdue()` builds the reply sent if it overstays.

        `started=False` for a request still queued for a thread: see `start`.
        """
        ticket = Ticket(frame_id, key, deadline, what, overdue)
        ticket.started = started
        with self._lock:
            heapq.heappush(self._heap, (deadline + self.grace_s, next(self._order), ticket))
            if self._heap[0][2] is ticket:
                self._lock.notify()
        return ticket

    def start(self, ticket: Ticket) -> bool:
        """A thread takes up a queued request; False if the watchdog already answered it
        (it waited past its deadline: do not run it)."""
        with self._lock:
            ticket.started = True
            return ticket.answered is None

    def finish(self, ticket: Ticket) -> bool:
        """End a request; True if the caller should send its reply (nobody did yet)."""
        with self._lock:
            if ticket.answered is None:
                ticket.answered = "thread"
                return True
            stuck = ticket.stuck
            if stuck:
                left = self.stuck.get(ticket.key, 0) - 1
                if left > 0:
                    self.stuck[ticket.key] = left
                else:
                    self.stuck.pop(ticket.key, None)
        if stuck:
            log.info("%s of %s ended %.1f s past its deadline", ticket.what, ticket.key,
                     time.monotonic() - ticket.deadline)  # fmt: skip
            self._on_unstuck(ticket)
        return False

    def total_stuck(self) -> int:
        """Return how many threads are stuck now."""
        with self._lock:
            return sum(self.stuck.values())

    def _run(self) -> None:
        while True:
            due: list[Ticket] = []
            with self._lock:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].answered or self._heap[0][0] <= now):
                    _, _, ticket = heapq.heappop(self._heap)
                    if ticket.answered is not None:
                        continue
                    if ticket.started and sum(self.stuck.values()) >= self.max_stuck:
                        # Last resort: let the node kill and restart this worker.
                        log.error("%d threads stuck; not answering %s of %s (the node will"
                                  " restart this worker)", self.max_stuck, ticket.what,
                                  ticket.key)  # fmt: skip
                        continue
                    ticket.answered = "watchdog"
                    if ticket.started:  # its thread is stuck; a queued one holds none
                        ticket.stuck = True
                        self.stuck[ticket.key] = self.stuck.get(ticket.key, 0) + 1
                    self.answered += 1
                    due.append(ticket)
                if not due:
                    wait = self._heap[0][0] - now if self._heap else None
                    self._lock.wait(wait)
                    continue
            for ticket in due:
                if ticket.stuck:
                    answered = "" if ticket.frame_id is None else " answered TimedOut,"
                    log.warning("%s of %s is stuck in a host call past its deadline:%s"
                                " its thread set aside", ticket.what, ticket.key,
                                answered)  # fmt: skip
                else:
                    log.warning("%s of %s waited for a thread past its deadline: answered"
                                " TimedOut", ticket.what, ticket.key)  # fmt: skip
                try:
                    reply = ticket.overdue()
                    if reply is not None:  # work after a reply (a reset) has none to send
                        self._send(reply)
                except Exception:  # the node is gone: the main loop notices and exits
                    log.debug("could not send the overdue reply", exc_info=True)
                if ticket.stuck:
                    self._on_stuck(ticket)
