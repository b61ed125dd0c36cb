"""Unit tests of PoolSync: loads in the background, one at a time per key; a newer wanted
state supersedes; an unload undoes a load that was running; a deploy's trial is adopted."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

from firebox.runtime.limits import Limits
from firebox.runtime.pool_sync import PoolSync
from firebox.runtime.specs import FunctionSpec

SPEC = FunctionSpec(
    name="f", version="1", kind="module", digest="d" * 64, handler="", export="handle",
    limits=Limits(),
)  # fmt: skip


class Workers:
    """What the node's supervisor does for PoolSync, recorded: each load waits for `go`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.go = asyncio.Event()
        self.running = 0
        self.fail = False

    async def load(self, key: str, spec: FunctionSpec) -> None:
        self.calls.append(("load", key))
        self.running += 1
        try:
            await asyncio.wait_for(self.go.wait(), 5)
        finally:
            self.running -= 1
        if self.fail:
            raise RuntimeError("init failed")

    async def unload(self, key: str) -> None:
        self.calls.append(("unload", key))


def run(test: Callable[[PoolSync, Workers], Awaitable[None]]) -> None:
    async def main() -> None:
        workers = Workers()
        sync = PoolSync({}, workers.load, workers.unload)
        try:
            await asyncio.wait_for(test(sync, workers), 10)
        finally:
            await sync.stop()

    asyncio.run(main())


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0)


def test_apply_returns_before_the_load_ends_and_loaded_is_set_after() -> None:
    async def body(sync: PoolSync, workers: Workers) -> None:
        sync.apply({"a": SPEC})  # not awaited: returns at once
        await _until(lambda: workers.running == 1)
        assert "a" not in sync.loaded and sync.pending() == {"a": SPEC}
        workers.go.set()
        await sync.settled()
        assert sync.loaded == {"a": SPEC} and workers.calls == [("load", "a")]
        assert sync.pending() == {}

    run(body)


def test_an_unload_while_loading_undoes_the_load_when_it_ends() -> None:
    async def body(sync: PoolSync, workers: Workers) -> None:
        sync.apply({"a": SPEC})
        await _until(lambda: workers.running == 1)
        sync.apply({})
        workers.go.set()
        await sync.settled()
        assert sync.loaded == {}
        assert workers.calls == [("load", "a"), ("unload", "a")]

    run(body)


def test_wanted_again_while_loading_loads_once_and_keeps_it() -> None:
    async def body(sync: PoolSync, workers: Workers) -> None:
        sync.apply({"a": SPEC})
        await _until(lambda: workers.running == 1)
        sync.apply({})
        sync.apply({"a": SPEC})  # the newer state supersedes the unload
        workers.go.set()
        await sync.settled()
        assert sync.loaded == {"a": SPEC}
        assert workers.calls == [("load", "a")]

    run(body)


def test_one_load_at_a_time_per_key() -> None:
    async def body(sync: PoolSync, workers: Workers) -> None:
        newer = dataclasses.replace(SPEC, provisioned=3)
        sync.apply({"a": SPEC})
        await _until(lambda: workers.running == 1)
        sync.apply({})
        sync.apply({"a": newer})
        await asyncio.sleep(0.05)
        assert workers.running == 1  # the newer load waits for the running one
        workers.go.set()
        await sync.settled()
        assert sync.loaded == {"a": newer}
        assert workers.calls == [("load", "a"), ("load", "a")]

    run(body)


def test_a_failed_load_leaves_nothing_and_is_tried_again_by_the_next_apply() -> None:
    async def body(sync: PoolSync, workers: Workers) -> None:
        workers.fail = True
        workers.go.set()
        sync.apply({"a": SPEC})
        await sync.settled()
        assert sync.loaded == {}
        assert workers.calls == [("load", "a"), ("unload", "a")]
        workers.fail = False
        sync.apply({"a": SPEC})
        await sync.settled()
        assert sync.loaded == {"a": SPEC}

    run(body)


def test_a_trial_is_adopted_without_a_second_load() -> None:
    async def body(sync: PoolSync, workers: Workers) -> None:
        sync.trials["a"] = SPEC
        sync.apply({"a": SPEC})
        assert sync.loaded == {"a": SPEC} and sync.trials == {}
        await sync.settled()
        assert workers.calls == []

    run(body)
