"""The node's ready pools kept in step with the pools the registry wants, loaded in the
background (service layer).

A registry change (an alias moved, provisioned concurrency set, another node's deploy)
changes which pools a node keeps ready. The node computes that wanted set under its
lock, then `PoolSync.apply` starts the loads and unloads and returns at once: a guest
whose initialization is slow (up to its init deadline, which the worker enforces) no
longer holds the node's lock, so deploys and control-plane calls meanwhile answer at
once. Per pool key one task runs at a time: a newer wanted state for a key supersedes
the one it waits to apply, and an unload that arrives while a load runs undoes that
load when it ends (a load cannot be taken back from a worker half-way).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from firebox.runtime.specs import FunctionSpec

log = logging.getLogger("firebox.pool_sync")

#: Pool loads running at once across keys: a burst of registry changes (or a node
#: start) must not take every guest thread of the workers with initializations.
LOADS_AT_ONCE = 4

#: What a key's task applies next: the spec to load, or None to unload.
Wanted = FunctionSpec | None


class PoolSync:
    """Applies the wanted set of pools to the workers, one background task per key."""

    def __init__(
        self,
        loaded: dict[str, FunctionSpec],
        load: Callable[[str, FunctionSpec], Awaitable[None]],
        unload: Callable[[str], Awaitable[None]],
    ) -> None:
        #: Pools kept ready now (key -> spec); shared with the node, updated here.
        self.loaded = loaded
        #: Pools a deploy's trial load filled, not committed yet: adopted by `apply`
        #: without loading them a second time.
        self.trials: dict[str, FunctionSpec] = {}
        self._load = load
        self._unload = unload
        self._next: dict[str, Wanted] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._loads = asyncio.Semaphore(LOADS_AT_ONCE)

    def apply(self, wanted: dict[str, FunctionSpec]) -> None:
        """Start loading the wanted pools not loaded yet and unloading the others; never
        waits on a worker (call it with the node's lock held)."""
        for key in [*self.loaded, *self._next]:
            if key not in wanted:
                # Gone from the node's pools now (no GC keeps its artifacts for it); the
                # worker drops it in the background.
                self.loaded.pop(key, None)
                self._want(key, None)
        for key, spec in wanted.items():
            if key in self._next:
                self._want(key, spec)
            elif key not in self.loaded:
                if self.trials.pop(key, None) is not None:
                    self.loaded[key] = spec  # the deploy's trial filled it already
                else:
                    self._want(key, spec)

    def pending(self) -> dict[str, FunctionSpec]:
        """Return the specs whose pools are being loaded (or wait to be) now."""
        return {k: s for k, s in self._next.items() if s is not None}

    async def settled(self) -> None:
        """Wait until no load or unload is pending (callers bound the wait)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    async def stop(self) -> None:
        """Cancel every pending load and unload."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _want(self, key: str, spec: Wanted) -> None:
        self._next[key] = spec
        if key not in self._tasks:
            self._tasks[key] = asyncio.create_task(self._run(key), name=f"pool-sync {key}")

    async def _run(self, key: str) -> None:
        try:
            while True:
                target = self._next[key]
                if target is None:
                    await self._drop(key)
                elif key not in self.loaded:
                    async with self._loads:
                        await self._fill(key, target)
                if self._next[key] is target:
                    return  # nothing newer arrived meanwhile
        finally:
            self._next.pop(key, None)
            self._tasks.pop(key, None)

    async def _fill(self, key: str, spec: FunctionSpec) -> None:
        try:
            await self._load(key, spec)  # bounded: the worker answers at the init deadline
        except Exception as exc:  # one broken function must not stop the others
            log.warning("could not load %s: %s", key, exc)
            self.loaded.pop(key, None)
            await self._drop(key)  # nothing of a failed load stays to be refilled
            return
        if self._next.get(key) is spec:
            self.loaded[key] = spec
        else:
            self.loaded.pop(key, None)  # superseded while it loaded: the loop goes on

    async def _drop(self, key: str) -> None:
        if key in self.loaded:
            return  # wanted again and loaded meanwhile (by a deploy's trial)
        try:
            await self._unload(key)
        except Exception as exc:
            log.warning("could not unload %s: %s", key, exc)


__all__ = ["LOADS_AT_ONCE", "PoolSync"]
