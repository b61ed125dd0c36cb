"""Ready-instance pools: instances made ahead of demand, off the request path (pool layer).

Each worker process keeps one `InstancePool` per function version it serves. A pool
holds `min_ready` instances at all times (the function's provisioned concurrency), grows
its target with the load it sees (up to its cap), and shrinks back after
`idle_shrink_s` without a lease. A refill thread per worker instantiates replacements
after every lease, so a request only pays for instantiation when the pool ran dry
(a cold start, which the pool counts).

The refill thread never waits on a guest longer than the pool's `init_timeout_s`: each
instantiation runs on a helper thread (a lane) and one stuck past its deadline (an
import that sleeps) is left to end on its own while the other pools keep being filled;
a pool whose instantiation fails or sticks is retried with an exponential backoff
(0.5 s doubling to `MAX_BACKOFF_S`), not every period.

Ready instances of every pool of a worker share one `ReadyBudget` (instances, and the
sum of their functions' memory caps); one pool may hold at most half of it, so a
function provisioned in the thousands cannot take the slots and memory of the others.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from firebox.runtime.guest.protocol import GuestInstance, GuestProgram

log = logging.getLogger("firebox.pool")

#: The longest a failing pool waits between two refill attempts.
MAX_BACKOFF_S = 30.0
#: Extra time the refill thread grants an instantiation past the pool's init timeout.
FILL_GRACE_S = 0.5


@dataclass(frozen=True)
class ReadyBudget:
    """What the ready instances of a worker's pools may hold: all of them, and one pool."""

    instances: int = 1 << 30
    memory_mb: int = 1 << 30

    def pool_share(self, memory_mb: int) -> int:
        """Return the most ready instances one pool of `memory_mb` instances may keep."""
        by_memory = (self.memory_mb // 2) // max(1, memory_mb)
        return max(1, min(self.instances // 2, by_memory))


@dataclass
class PoolStats:
    """Counters one pool reports to the node."""

    ready: int = 0
    leased: int = 0
    target: int = 0
    cold_starts: int = 0
    warm_starts: int = 0
    instantiated: int = 0
    discarded: int = 0
    # Instances made (cold leases and refills) and the seconds they took (GET /metrics).
    inits: int = 0
    init_s: float = 0.0
    # Used instances put back in their post-init state instead of made anew.
    recycled: int = 0


class InstancePool:
    """Ready instances of one function version inside one worker process."""

    def __init__(
        self,
        program: GuestProgram,
        *,
        min_ready: int,
        max_ready: int,
        reuse: bool = False,
        idle_shrink_s: float = 60.0,
        init_timeout_s: float = 10.0,
        memory_mb: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.program = program
        #: The memory cap of one instance (what the worker's ReadyBudget counts).
        self.memory_mb = memory_mb
        #: How long one instantiation may take before the refill thread stops waiting.
        self.init_timeout_s = init_timeout_s
        #: The pool's time source (`time.monotonic`; tests pass a fake to skip idling).
        self.clock = clock
        self.min_ready = max(0, min_ready)
        self.max_ready = max(self.min_ready, max_ready)
        self.reuse = reuse
        self.idle_shrink_s = idle_shrink_s
        self._ready: collections.deque[GuestInstance] = collections.deque()
        #: Used instances of a fresh pool waiting to be recycled (reset in place): by the
        #: worker's thread that ran the call, once the caller has its answer
        #: (`Worker.after_invoke`), else by the next lease or the filler.
        self._used: collections.deque[GuestInstance] = collections.deque()
        self._lock = threading.Lock()
        self._target = self.min_ready
        self._last_lease = clock()
        self._closed = False
        #: Whether used instances come back to this pool reset in place (see `release`).
        self._recycles = False
        #: Used instances being reset by `recycle_one` now (neither used nor ready).
        self._resetting = 0
        self.stats = PoolStats(target=self._target)
        #: Where discarded instances go to be closed; the PoolFiller closes them off the
        #: request path (closing a Store costs about as much as making one).
        self.reaper: Callable[[GuestInstance], None] = _close

    def lease(self) -> tuple[GuestInstance, bool]:
        """Return a ready instance and whether it was warm; instantiates one if none is ready.

        Raises whatever instantiation raises (an InvocationError subclass) on a cold start.
        """
        with self._lock:
            self._last_lease = self.clock()
            self.stats.leased += 1
            # Demand-driven growth: as many ready as are leased right now, within the cap,
            # and with fresh isolation one more: each call consumes its instance, and a
            # client's next request (1-3 ms after the reply) must not find the pool empty
            # while the filler restores the replacement. A spare costs ~0.9 MiB of USS
            # when instances come from a snapshot (docs/snapshots.md).
            spare = 0 if self.reuse else 1
            self._target = min(self.max_ready, max(self._target, self.stats.leased + spare))
            if self._ready:
                self.stats.warm_starts += 1
                # Most recently used first: in reuse mode that is the warmest instance
                # (new instances are added on the left by the filler).
                return self._ready.pop(), True
            used = self._used.pop() if self._used else None
        if used is not None and self._recycle(used):
            with self._lock:
                self.stats.warm_starts += 1
            return used, True
        with self._lock:
            self.stats.cold_starts += 1
        try:
            started = time.monotonic()
            instance = self.program.instantiate()
            self._count_init(time.monotonic() - started)
            return instance, False
        except BaseException:
            with self._lock:
                self.stats.leased -= 1
            raise

    def release(self, instance: GuestInstance) -> None:
        """Give an instance back: kept if the pool reuses healthy instances; with fresh
        isolation kept for recycling (reset to its post-init state before its next call)
        when it can be; else closed."""
        with self._lock:
            self.stats.leased -= 1
            healthy = instance.reusable and not self._closed
            keep = self.reuse and healthy and len(self._ready) < self.max_ready
            # A recycled instance comes back: the target counts every instance the pool
            # has (ready, waiting to be reset, leased), not only ready ones.
            recycle = (
                not self.reuse
                and healthy
                and getattr(instance, "recyclable", False)
                and self._held() < max(self._target, 1)
            )
            if keep:
                self._ready.append(instance)
            elif recycle:
                self._used.append(instance)
                self._recycles = True
        if not keep and not recycle:
            self.stats.discarded += 1
            self.reaper(instance)

    def _recycle(self, instance: GuestInstance) -> bool:
        """Reset a used instance for its next call; close it (and return False) if it cannot."""
        try:
            ok = bool(instance.recycle())  # type: ignore[attr-defined]
        except Exception:
            ok = False
        if ok:
            with self._lock:
                self.stats.recycled += 1
            return True
        with self._lock:
            self.stats.discarded += 1
        self.reaper(instance)
        return False

    def _held(self) -> int:
        """Every instance of the pool (ready, waiting to be reset, being reset, leased);
        call with the lock held."""
        return len(self._ready) + len(self._used) + self._resetting + self.stats.leased

    def has_used(self) -> bool:
        """Whether used instances wait to be reset in place."""
        return bool(self._used)

    def recycle_one(self) -> bool:
        """Recycle one used instance into the ready ones; return True if one was added."""
        with self._lock:
            if not self._used:
                return False
            used = self._used.popleft()
            self._resetting += 1
        try:
            if not self._recycle(used):
                return False
            with self._lock:
                if not self._closed and len(self._ready) < max(self._target, 1):
                    self._ready.append(used)  # next in line: its pages are resident
                    return True
        finally:
            with self._lock:
                self._resetting -= 1
        self.reaper(used)
        return False

    def deficit(self) -> int:
        """Return how many instances the pool should make now to reach its target."""
        with self._lock:
            if self._closed:
                return 0
            if self.clock() - self._last_lease > self.idle_shrink_s:
                self._target = self.min_ready
            # Leased instances come back reset (fresh isolation, reset in place): making
            # more for them would only have them discarded on release (at 8 connections
            # a sixth of the calls made an instance, and one was closed).
            have = self._held() if self._recycles else len(self._ready)
            return max(0, self._target - have)

    def fill_one(self) -> bool:
        """Instantiate one instance into the pool if it is short; return True if one was added."""
        if self.deficit() <= 0:
            return False
        if self.recycle_one():
            return True
        started = time.monotonic()
        instance = self.program.instantiate()
        self._count_init(time.monotonic() - started)
        with self._lock:
            if self._closed or len(self._ready) >= self._target:
                surplus = instance
            else:
                self._ready.appendleft(instance)
                self.stats.instantiated += 1
                return True
        surplus.close()
        return False

    def _count_init(self, seconds: float) -> None:
        with self._lock:
            self.stats.inits += 1
            self.stats.init_s += seconds

    def shrink(self) -> int:
        """Close ready instances above the target; return how many were closed."""
        self.deficit()  # updates the target after idleness
        closed: list[GuestInstance] = []
        with self._lock:
            while len(self._ready) > self._target:
                closed.append(self._ready.popleft())
            while self._used and len(self._ready) + len(self._used) > self._target:
                closed.append(self._used.popleft())
        for instance in closed:
            instance.close()
        return len(closed)

    def ready_count(self) -> int:
        """Return how many instances are ready now."""
        with self._lock:
            return len(self._ready)

    def snapshot(self) -> PoolStats:
        """Return a copy of the pool's counters with the current ready count."""
        with self._lock:
            return PoolStats(
                ready=len(self._ready),
                leased=self.stats.leased,
                target=self._target,
                cold_starts=self.stats.cold_starts,
                warm_starts=self.stats.warm_starts,
                instantiated=self.stats.instantiated,
                discarded=self.stats.discarded,
                inits=self.stats.inits,
                init_s=self.stats.init_s,
                recycled=self.stats.recycled,
            )

    def close(self) -> None:
        """Close every ready instance; leased ones are closed when released."""
        with self._lock:
            self._closed = True
            ready = [*self._ready, *self._used]
            self._ready.clear()
            self._used.clear()
        for instance in ready:
            instance.close()


def _close(instance: GuestInstance) -> None:
    instance.close()


class PoolFiller:
    """The background thread that keeps every pool of a worker at its target."""

    def __init__(self, period_s: float = 0.5, budget: ReadyBudget | None = None) -> None:
        self.budget = budget or ReadyBudget()
        self._pools: dict[str, InstancePool] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._period = period_s
        self._stop = False
        self.errors: dict[str, str] = {}
        self._trash: list[GuestInstance] = []
        # Failing pools: key -> (next attempt at, current backoff); pools with a fill stuck.
        self._backoff: dict[str, tuple[float, float]] = {}
        self._stuck: set[str] = set()
        self._lane = _Lane()
        self._thread = threading.Thread(target=self._run, name="firebox-pool-filler", daemon=True)
        self._thread.start()
        # Used instances are closed on a thread of their own, as soon as they are
        # discarded: their allocator slots must come back even while the filler waits
        # on a slow instantiation (a lane waits up to a pool's init timeout).
        self._trash_wake = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="firebox-reaper", daemon=True)
        self._reaper.start()

    def add(self, key: str, pool: InstancePool) -> None:
        """Start keeping `pool` filled (and closing what it discards), and fill it now."""
        # Used instances are recycled by the worker once the caller has its answer
        # (recycling sooner would contend for the GIL with the call); what is left over,
        # at the filler's next wake-up.
        pool.reaper = self.reap
        with self._lock:
            self._pools[key] = pool
        self.poke()

    def reap(self, instance: GuestInstance) -> None:
        """Close `instance` on the filler thread at its next wake-up (see `poke`)."""
        with self._lock:
            self._trash.append(instance)
        self._trash_wake.set()

    def _reap_loop(self) -> None:
        while not self._stop:
            self._trash_wake.wait(self._period)
            self._trash_wake.clear()
            self._empty_trash()

    def _empty_trash(self) -> None:
        with self._lock:
            trash, self._trash = self._trash, []
        for instance in trash:
            try:
                instance.close()
            except Exception:  # a Store that fails to close must not stop the filler
                self.errors["reaper"] = f"could not close an instance: {instance!r}"

    def remove(self, key: str) -> InstancePool | None:
        """Stop filling the pool of `key` and return it."""
        with self._lock:
            self.errors.pop(key, None)
            self._backoff.pop(key, None)
            return self._pools.pop(key, None)

    def _fill(self, key: str, pool: InstancePool) -> bool:
        """Fill one instance of `pool` on the lane, waiting at most its init timeout."""
        with self._lock:
            if key in self._stuck:
                return False
            retry = self._backoff.get(key)
        if retry is not None and time.monotonic() < retry[0]:
            return False
        if pool.deficit() <= 0 or not self._affordable(pool):
            return False
        done = self._lane.run(pool.fill_one, lambda: self._unstick(key))
        if not done.wait(pool.init_timeout_s + FILL_GRACE_S):
            log.warning("refilling %s is stuck past %.1f s; filling the others meanwhile",
                        key, pool.init_timeout_s)  # fmt: skip
            with self._lock:
                self._stuck.add(key)
                self.errors[key] = f"initialization stuck past {pool.init_timeout_s:.1f} s"
            self._lane.abandon()  # it exits once its job ends
            self._lane = _Lane()
            return False
        if done.error is not None:
            self._fail(key, str(done.error))
            return False
        with self._lock:
            self.errors.pop(key, None)
            self._backoff.pop(key, None)
        return bool(done.value)

    def _affordable(self, pool: InstancePool) -> bool:
        """Whether one more ready instance of `pool` fits the worker's ReadyBudget."""
        with self._lock:
            pools = list(self._pools.values())
        counts = [(p.ready_count(), p.memory_mb) for p in pools]
        instances = sum(n for n, _ in counts)
        memory = sum(n * mb for n, mb in counts)
        budget = self.budget
        return (
            instances < budget.instances
            and memory + pool.memory_mb <= budget.memory_mb
            and pool.ready_count() < budget.pool_share(pool.memory_mb)
        )

    def _fail(self, key: str, message: str) -> None:
        with self._lock:
            if key not in self._pools:
                return
            self.errors[key] = message
            _, previous = self._backoff.get(key, (0.0, 0.0))
            delay = min(MAX_BACKOFF_S, max(self._period, previous * 2))
            self._backoff[key] = (time.monotonic() + delay, delay)

    def _unstick(self, key: str) -> None:
        with self._lock:
            stuck = key in self._stuck
            self._stuck.discard(key)
        if stuck:
            self._fail(key, self.errors.get(key, "initialization was stuck"))
            self.poke()

    def poke(self) -> None:
        """Wake the filler (after a lease took an instance)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the filler thread."""
        self._stop = True
        self._wake.set()
        self._trash_wake.set()

    def _run(self) -> None:
        pools: list[tuple[str, InstancePool]] = []
        while not self._stop:
            self._wake.wait(self._period)
            self._wake.clear()
            # Close what calls used before refilling: their allocator slots are what the
            # replacements need when the worker is short of them (the spare ready
            # instance of a fresh pool covers the next request meanwhile).
            self._empty_trash()
            worked = True
            while worked and not self._stop:
                worked = False
                with self._lock:
                    pools = list(self._pools.items())
                self._empty_trash()
                for key, pool in pools:
                    if self._fill(key, pool):  # a pool that cannot instantiate stays empty
                        worked = True
            for _, pool in pools:
                pool.shrink()


class _Done:
    """The outcome of one job on a lane: set once it ran, with its value or error."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds; return whether the job ended."""
        return self.event.wait(timeout)


class _Lane:
    """One helper thread running the filler's instantiations, so the filler can stop
    waiting for one (a lane whose job is stuck is replaced and exits after it)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Callable[[], None], _Done]] = (
            queue.SimpleQueue()
        )
        self._abandoned = False
        threading.Thread(target=self._run, name="firebox-pool-lane", daemon=True).start()

    def run(self, job: Callable[[], Any], after: Callable[[], None]) -> _Done:
        """Queue `job`; `after()` runs once it ended (even if nobody waited for it)."""
        done = _Done()
        self._jobs.put((job, after, done))
        return done

    def abandon(self) -> None:
        """Let the lane's thread exit after the job it is running."""
        self._abandoned = True

    def _run(self) -> None:
        while not self._abandoned:
            job, after, done = self._jobs.get()
            try:
                done.value = job()
            except Exception as exc:
                done.error = exc
            done.event.set()
            after()
