"""The worker's watchdog and guest threads: overdue requests answered once, on time; stuck
threads replaced and retired; past the stuck budget, nothing answered (the node's last resort)."""

from __future__ import annotations

import threading
import time
from typing import Any

from firebox.runtime.threads import GuestThreads
from firebox.runtime.watchdog import Watchdog


def _watchdog(sent: list[dict[str, Any]], threads: GuestThreads, max_stuck: int = 4) -> Watchdog:
    return Watchdog(
        sent.append,
        on_stuck=lambda _: threads.add(),
        on_unstuck=lambda _: threads.retire(),
        grace_s=0.02,
        max_stuck=max_stuck,
    )


def _wait(predicate: Any, seconds: float = 2.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_overdue_request_is_answered_once_and_its_thread_replaced() -> None:
    threads = GuestThreads(2)
    sent: list[dict[str, Any]] = []
    dog = _watchdog(sent, threads)
    release = threading.Event()
    late: list[bool] = []

    def stuck() -> None:
        ticket = dog.watch(7, "fn:1", time.monotonic() + 0.1, "an invocation", lambda: {"id": 7})
        release.wait(5)
        late.append(dog.finish(ticket))

    threads.submit(stuck)
    assert _wait(lambda: sent == [{"id": 7}])
    assert dog.stuck == {"fn:1": 1} and threads.live == 3
    # The replacement keeps the free threads at two: two quick calls run meanwhile.
    done = threading.Barrier(3, timeout=2)
    threads.submit(done.wait)
    threads.submit(done.wait)
    done.wait()
    release.set()
    assert _wait(lambda: late == [False])  # its own reply is dropped
    assert dog.stuck == {}
    threads.submit(lambda: None)
    assert _wait(lambda: threads.live == 2)
    assert sent == [{"id": 7}]


def test_request_that_ends_in_time_is_not_answered_by_the_watchdog() -> None:
    threads = GuestThreads(1)
    sent: list[dict[str, Any]] = []
    dog = _watchdog(sent, threads)
    ticket = dog.watch(1, "fn:1", time.monotonic() + 0.05, "an invocation", lambda: {"id": 1})
    assert dog.finish(ticket)
    time.sleep(0.2)
    assert sent == [] and dog.answered == 0


def test_past_the_stuck_budget_nothing_is_answered() -> None:
    threads = GuestThreads(1)
    sent: list[dict[str, Any]] = []
    dog = _watchdog(sent, threads, max_stuck=1)
    now = time.monotonic()
    dog.watch(1, "fn:1", now, "an invocation", lambda: {"id": 1})
    dog.watch(2, "fn:1", now + 0.01, "an invocation", lambda: {"id": 2})
    time.sleep(0.3)
    assert sent == [{"id": 1}] and dog.total_stuck() == 1


def test_a_request_queued_past_its_deadline_is_answered_and_never_run() -> None:
    threads = GuestThreads(1)
    sent: list[dict[str, Any]] = []
    dog = _watchdog(sent, threads)
    queued = dog.watch(3, "fn:1", time.monotonic(), "an invocation", lambda: {"id": 3},
                       started=False)  # fmt: skip
    assert _wait(lambda: sent == [{"id": 3}])
    assert dog.stuck == {} and threads.live == 1  # no thread was stuck: none added
    assert not dog.start(queued)  # the thread that takes it up does not run it
    assert not dog.finish(queued)
    assert dog.stuck == {} and threads.live == 1
