"""Admission: whether an invocation may run now (payload size, per-function concurrency cap,
the node's real execution slots), answered with PayloadTooLarge or Throttled and recorded
as a rejection (service layer).

Every invocation passes here exactly once, after its version was resolved and before
anything is dispatched; an accepted Event is checked for size here when it is accepted
and for concurrency when it is delivered.

The node runs at most `slots` invocations at once (live workers x threads each): a call
beyond them would only queue inside a worker past its own deadline, so it is throttled
here instead. The count follows the workers: while one restarts (or drains), the
others' threads are all there is, so they are not oversubscribed. One function's cap is at most `share` = slots - `reserve` (a quarter
kept back, at least one slot), whatever its `concurrency` says. Once no more than
`reserve` slots are free (the node is contended), a slot goes only to a function
running fewer calls than its fair part (slots / functions running now): a flood, or
several together, cannot take back the slots their calls free, and a light function
keeps finding room to run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from firebox.runtime.catalog import Catalog
from firebox.runtime.cluster_concurrency import ClusterConcurrency
from firebox.runtime.errors import FireboxError, PayloadTooLarge, Throttled
from firebox.runtime.specs import LATEST, Deployed
from firebox.runtime.telemetry import Recorder


def check_payload(fn: Deployed, size: int) -> None:
    """Refuse a request payload over the version's limit; raises PayloadTooLarge."""
    limit = fn.limits.max_request_bytes
    if size > limit:
        raise PayloadTooLarge("Request payload", size, limit)


def reserve_of(slots: int) -> int:
    """Return the slots of `slots` kept back from any one function (a quarter, at least one)."""
    return max(1, slots // 4) if slots > 1 else 0


class Admission:
    """Counts the invocations running on this node per function and admits new ones."""

    def __init__(
        self, catalog: Catalog, recorder: Recorder, slots: int | Callable[[], int] = 1 << 30
    ) -> None:
        """`slots`: the invocations the node can run at once, or a function returning that
        number now (the node's: live workers x threads each)."""
        self.catalog = catalog
        self.recorder = recorder
        self.inflight: dict[str, int] = {}
        # Set by the node when its caps are cluster-wide (runtime/cluster_concurrency.py).
        self.cluster: ClusterConcurrency | None = None
        #: Invocations running on this node now, every function together.
        self.running = 0
        if callable(slots):
            self._slots = slots
        else:
            fixed = slots
            self._slots = lambda: fixed

    @property
    def slots(self) -> int:
        """Return the invocations the node can run at once now (its live guest threads)."""
        return max(1, self._slots())

    @property
    def reserve(self) -> int:
        """Return the free slots at or below which the node is contended (fair parts apply)."""
        return reserve_of(self.slots)

    @property
    def share(self) -> int:
        """Return the most one function may hold now: the rest stays for the others."""
        return self.slots - self.reserve

    def cap(self, name: str, slots: int | None = None) -> int:
        """Return a function's concurrency cap: its $LATEST configuration's (for every
        version), within the node's share for one function (of `slots`, or of now's)."""
        slots = self.slots if slots is None else slots
        return min(self.catalog.version(name, LATEST).spec.concurrency, slots - reserve_of(slots))

    def _slot_free(self, running: int, slots: int) -> bool:
        """Whether a function running `running` calls now may take one more of `slots`."""
        free = slots - self.running
        if free > reserve_of(slots):
            return True
        if free <= 0:
            return False
        active = sum(1 for n in self.inflight.values() if n > 0) + (0 if running else 1)
        return running < max(1, slots // active)

    @contextlib.contextmanager
    def admit(self, fn: Deployed, payload: bytes, request_id: str) -> Iterator[None]:
        """Hold one of the function's concurrency slots for the body of the `with`.

        Raises PayloadTooLarge or Throttled before the body runs; either still leaves a
        log line and a usage record, as Lambda's throttles do.
        """
        running = self.inflight.get(fn.name, 0)
        slots = self.slots  # once per call: it follows the workers' restarts
        cap = self.cap(fn.name, slots)
        rejection: FireboxError | None = None
        try:
            check_payload(fn, len(payload))
        except PayloadTooLarge as exc:
            rejection = exc
        if rejection is None and running >= cap:
            rejection = Throttled(fn.name, cap)
        if rejection is None and not self._slot_free(running, slots):
            rejection = Throttled(fn.name, cap)
            rejection.message = (
                f"Rate exceeded: the node's {slots} execution slots are taken, or this"
                " function already runs its fair part of them; retry later"
            )
            rejection.args = (rejection.message,)
        if rejection is None and self.cluster is not None:
            # The function's own cap counts for every node together (not this node's share).
            configured = self.catalog.version(fn.name, LATEST).spec.concurrency
            rejection = self.cluster.acquire(fn.name, configured)
        if rejection is not None:
            self.recorder.record_rejected(
                fn.name, fn.version, request_id, rejection.code, rejection.message,
                memory_mb=fn.limits.memory_mb, request_bytes=len(payload),
            )  # fmt: skip
            raise rejection
        # Counted before the first await of the caller, so concurrent calls see each other.
        self.inflight[fn.name] = running + 1
        self.running += 1
        try:
            yield
        finally:
            self.inflight[fn.name] -= 1
            self.running -= 1
            if self.cluster is not None:
                self.cluster.release(fn.name)


__all__ = ["Admission", "check_payload", "reserve_of"]
