"""A firebox node: its parts wired together, their lifecycle, and the facade the front ends
call (service layer).

The parts: `functions` (deploy, versions, aliases: runtime/functions.py), `admission`
(runtime/admission.py), `routes` (HTTP triggers: runtime/routing.py), the catalog of
deployed versions, the invoker and its supervisor, telemetry and the event sources.
The node never touches wasmtime or SQL itself; blocking calls go through `run_blocking`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from firebox.runtime import config as config_module
from firebox.runtime.admission import Admission, check_payload
from firebox.runtime.artifacts import ArtifactStore
from firebox.runtime.catalog import Catalog
from firebox.runtime.cluster_concurrency import open_cluster_concurrency
from firebox.runtime.config import STARTUP_LOAD_S, MiB, NodeConfig, arn
from firebox.runtime.credentials import load_or_create, make_private
from firebox.runtime.engine import EngineSettings
from firebox.runtime.events.async_invoke import AsyncInvoker
from firebox.runtime.events.changes import ChangeDispatcher
from firebox.runtime.events.mappings import MappingManager
from firebox.runtime.events.scheduler import Scheduler
from firebox.runtime.functions import Functions
from firebox.runtime.invoke import Invoker
from firebox.runtime.pool_sync import PoolSync
from firebox.runtime.prepare import Preparer
from firebox.runtime.roles import role_key
from firebox.runtime.routing import Route, RouteTable
from firebox.runtime.specs import LATEST, FunctionSpec, InvocationResult, Resolved
from firebox.runtime.storage.data import DataStores, open_data_stores
from firebox.runtime.storage.registry import FunctionRecord
from firebox.runtime.storage.registry_notify import open_registry_listener
from firebox.runtime.storage.stores import open_stores
from firebox.runtime.supervisor import Supervisor
from firebox.runtime.telemetry import Recorder

log = logging.getLogger("firebox.node")
T = TypeVar("T")

# Threads for the node's blocking calls (registry SQL, telemetry queries, artifact files,
# compiles): a few, so a slow PostgreSQL cannot take every thread of the default executor.
BLOCKING_THREADS = 8


#: The per-pool counters a node sums over its workers (`GET /v1/functions/{f}/provisioned`).
POOL_COUNTS = ("ready", "leased", "cold_starts", "warm_starts", "recycled")


class Node:
    """Deploys, versions, routes and invokes functions on this node."""

    def __init__(self, config: NodeConfig, database_url: str | None = None) -> None:
        self.config = config
        make_private(config.data_dir)
        self.credentials, self.generated_credentials = load_or_create(config.data_dir)
        sealing = (
            config_module.FIREBOX_KEY_ENCRYPTION_KEY.get() or self.credentials.secret_access_key
        )
        self._executor = ThreadPoolExecutor(BLOCKING_THREADS, thread_name_prefix="node-io")
        self.settings = EngineSettings(
            pool_slots=config.pool_slots, max_memory_mb=config.max_memory_mb
        )
        self.artifacts = ArtifactStore(config.data_dir)
        self.stores = open_stores(config, database_url, sealing_secret=sealing)
        # Execution-role credentials of functions are signed with a key from the same secret.
        self.role_key = role_key(sealing)
        self.registry = self.stores.registry
        # Python versions restore from post-init snapshots keyed by the engine's fingerprint.
        snapshots = self.settings.fingerprint() if config.snapshots else None
        self.catalog = Catalog(self.registry, snapshots=snapshots)
        self.prepare = Preparer(
            self.settings, config.data_dir, self.artifacts, self.stores.blobs,
            snapshots=config.snapshots,
        )  # fmt: skip
        # Workers open the data capabilities' stores (tables, buckets) at the same database.
        served = dataclasses.replace(config, database_url=database_url or config.database_url)
        self.supervisor = Supervisor(served, self.settings, self.role_key)
        self.invoker = Invoker(self.supervisor)
        self.telemetry = self.stores.telemetry
        self.recorder = Recorder(
            self.telemetry,
            config.log_retention_s,
            per_function_bytes=config.log_storage_per_function_mb * MiB,
            total_bytes=config.log_storage_mb * MiB,
        )
        # The slots of the workers taking calls now (not all configured ones).
        self.admission = Admission(self.catalog, self.recorder, self.supervisor.slots)
        self.admission.cluster = open_cluster_concurrency(config.queue_url)
        self.listener = open_registry_listener(
            self.registry.engine, self.catalog.notify, self.stores.keys.forget
        )
        self.routes = RouteTable()
        # Pools kept ready (key -> spec), and artifacts known to be local and compiled,
        # so an invocation of a version without a pool checks its files once, not per call.
        self.loaded: dict[str, FunctionSpec] = {}
        self._local: set[str] = set()
        # Loads and unloads a registry change asks for run in the background, never
        # under the node's lock (a guest's init may take up to its init deadline).
        self.pools = PoolSync(self.loaded, self._load_pool, self.supervisor.unload)
        self.queues = self.stores.queues
        self.streams = self.stores.streams
        self.async_invoker = AsyncInvoker(self, self.queues, config.async_concurrency)
        self.scheduler = Scheduler(self, self.stores.schedules)
        self.mappings = MappingManager(self, self.queues, self.streams, self.stores.mappings)
        self.changes = ChangeDispatcher(self)
        self._data: DataStores | None = None
        self._data_lock = threading.Lock()
        self.functions = Functions(self)
        self.lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.poll_s = config.registry_poll_s

    def data(self) -> DataStores:
        """Return the data stores (tables, buckets, secrets, change capture) on the same
        database the workers' host calls use, opened on first use (blocking)."""
        with self._data_lock:
            if self._data is None:
                self._data = open_data_stores(self.registry.url, self.config.data_dir)
            return self._data

    async def run_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call (SQL, files, compiles) on the node's threads; return its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start workers and telemetry, read the registry, fill pools in the background."""
        await self.supervisor.start()
        await self.recorder.start()
        if self.admission.cluster is not None:
            self.admission.cluster.start()
        await self.run_blocking(self.catalog.reload)
        self.routes.rebuild(self.catalog.latest.values())
        await self.async_invoker.start()
        await self.mappings.start()
        await self.scheduler.start()
        await self.changes.start()
        if self.config.prepare_python:
            self.prepare.start_interpreter()  # so the first Python deploy is fast
        sync = asyncio.create_task(self._initial_sync())
        # Serve once the pools are loaded (bounded), so that the first invocations after a
        # start find ready instances instead of loading their function on the way.
        await asyncio.wait({sync}, timeout=STARTUP_LOAD_S)
        self._tasks = [sync, asyncio.create_task(self._poll())]
        if self.listener is not None:
            self.listener.start()

    async def stop(self) -> None:
        """Stop polling, flush telemetry, stop workers, close the registry."""
        if self.listener is not None:
            await asyncio.to_thread(self.listener.stop)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.pools.stop()
        await self.changes.stop()
        await self.scheduler.stop()
        await self.mappings.stop()
        await self.async_invoker.stop()
        if self.admission.cluster is not None:
            await asyncio.to_thread(self.admission.cluster.stop)
        await self.recorder.stop()
        await self.supervisor.stop()
        # Let blocking calls still on the node's threads finish before their stores close.
        await asyncio.to_thread(self._executor.shutdown, True, cancel_futures=True)
        self.queues.close()
        self.streams.close()
        if self._data is not None:
            self._data.close()
        self.registry.close()

    async def _initial_sync(self) -> None:
        async with self.lock:
            await self._sync_pools()
        await self.pools.settled()  # outside the lock; `start` bounds this wait

    async def _poll(self) -> None:
        """Notice writes by other nodes sharing the registry (and keep pools in step)."""
        while True:
            await self.catalog.wait_changed(self.poll_s)  # or woken by a notification
            try:
                changed = await self.run_blocking(self.catalog.refresh)
            except Exception as exc:  # the database is briefly unreachable: keep serving
                log.warning("registry poll failed: %s", exc)
                continue
            if changed:
                async with self.lock:
                    self.routes.rebuild(self.catalog.latest.values())
                    await self._sync_pools()

    async def changed(self) -> None:
        """After a write of ours: reload the catalog, routes and pools (lock held by caller)."""
        await self.run_blocking(self.catalog.reload)
        self.routes.rebuild(self.catalog.latest.values())
        await self._sync_pools()

    async def _sync_pools(self) -> None:
        """Compute the wanted pools (lock held) and start their loads and unloads in the
        background (runtime/pool_sync.py): no guest initializes under the lock."""
        wanted = await self.run_blocking(self.catalog.wanted)
        self.pools.apply(wanted)

    async def load(self, key: str, spec: FunctionSpec) -> None:
        """Make a version's artifacts local and fill its ready pool on its home worker."""
        await self._load_pool(key, spec)
        self.loaded[key] = spec

    async def _load_pool(self, key: str, spec: FunctionSpec) -> None:
        await self.make_local(spec)
        await self.supervisor.load(key, spec)

    def held_specs(self) -> list[FunctionSpec]:
        """Return the specs of the pools kept ready or being loaded now (GC keeps theirs)."""
        return [*self.loaded.values(), *self.pools.pending().values(), *self.pools.trials.values()]

    async def unload(self, key: str) -> None:
        """Drop a version's pools on every worker."""
        await self.supervisor.unload(key)
        self.loaded.pop(key, None)

    async def make_local(self, spec: FunctionSpec) -> None:
        """Fetch a version's artifacts from the shared store, and compile them (a Python
        version: its snapshot, captured here if no node has it yet, and the split
        interpreter) unless this node already did: one thread hop the first time, none after."""
        needed = (*spec.digests, *([spec.snapshot] if spec.snapshot else []))
        if all(d in self._local for d in needed):
            return
        await self.run_blocking(self._make_local, spec)
        self._local.update(needed)

    def _make_local(self, spec: FunctionSpec) -> None:
        for digest in spec.digests:
            self.prepare.ensure_local(digest)
        if spec.kind == "python" and self.prepare.snapshot(spec) is None:
            self.prepare.compile_component(spec.digest)  # no snapshot: instances run `load`

    def forget_local(self, digest: str) -> None:
        """Forget that an artifact is local (it is about to be deleted)."""
        self._local.discard(digest)

    # --- facade: reads, deploys ----------------------------------------------------

    def get(self, name: str) -> FunctionRecord:
        """Return $LATEST of a function (a blocking read: async code awaits
        `functions.get`); raises FunctionNotFound."""
        return self.registry.get(name)

    async def deploy(
        self, manifest: dict[str, Any], code: bytes, tags: dict[str, str] | None = None
    ) -> FunctionRecord:
        """Create or replace a function's $LATEST (see Functions.deploy)."""
        return await self.functions.deploy(manifest, code, tags)

    def resolve(
        self, name: str, qualifier: str | None = None, version: str | None = None
    ) -> Resolved:
        """Resolve `name[:qualifier]` to the version that will run (a weighted alias picks
        here, once per invocation); `version`, when given, is a pick made earlier."""
        return self.catalog.resolve(name, qualifier, version)

    def match_route(self, path: str) -> list[Route]:
        """Return the trigger routes whose pattern matches `path` (any method)."""
        return self.routes.match(path)

    # --- facade: invoke ------------------------------------------------------------

    async def invoke(
        self,
        name: str,
        payload: bytes,
        *,
        qualifier: str | None = None,
        export: str | None = None,
        request_id: str | None = None,
        resolved: Resolved | None = None,
        client_context: str | None = None,
    ) -> InvocationResult:
        """Invoke `name[:qualifier]`; the result carries output or the function's error.

        A front door that already resolved the name passes `resolved` (so a weighted
        alias picks once, and the version it checked is the version that runs).

        Raises FunctionNotFound, PayloadTooLarge and Throttled before anything runs
        (each still leaves a log line and a usage record).
        """
        resolved = resolved or self.resolve(name, qualifier)
        fn = resolved.deployed
        request_id = request_id or str(uuid.uuid4())
        with self.admission.admit(fn, payload, request_id):
            if fn.key not in self.loaded:
                await self.make_local(fn.spec)  # a version without a ready pool here
            named = resolved.qualifier
            suffix = f":{named}" if named and named != LATEST else ""
            invoked_arn = arn("lambda", f"function:{fn.name}{suffix}")  # as the caller named it
            result = await self.invoker.invoke(
                fn, payload, export, request_id, invoked_arn, client_context
            )
        self.recorder.record(
            fn.name, fn.version, result,
            memory_mb=fn.limits.memory_mb, request_bytes=len(payload),
            response_bytes=len(result.output),
        )  # fmt: skip
        return result

    async def enqueue(
        self,
        name: str,
        qualifier: str | None,
        payload: bytes,
        idempotency_key: str | None = None,
        *,
        resolved: Resolved | None = None,
    ) -> str:
        """Accept an Event invocation: stored durably before this returns; returns its request id.

        The version is picked now (or was, by the caller: `resolved`) and stored with the
        event, so its delivery runs that version with that version's timeout.
        Raises FunctionNotFound and PayloadTooLarge at once (nothing is stored then).
        """
        resolved = resolved or self.resolve(name, qualifier)
        fn = resolved.deployed
        check_payload(fn, len(payload))
        return await self.async_invoker.enqueue(
            fn.name, resolved.qualifier, payload, idempotency_key, version=fn.version
        )

    # --- facade: logs, usage, stats -----------------------------------------------------

    async def logs(self, name: str, **query: Any) -> list[dict[str, Any]]:
        """Return a function's logs (see TelemetryStore.logs for the filters)."""
        await self.functions.get(name)
        await self.recorder.flush()
        rows = await self.run_blocking(lambda: self.telemetry.logs(name, **query))
        return [r.to_dict() for r in rows]

    async def usage(
        self, name: str | None, since: float | None, until: float | None, records: bool = False
    ) -> dict[str, Any]:
        """Return usage aggregates per function over a window (and the records if asked)."""
        if name:
            await self.functions.get(name)
        await self.recorder.flush()
        summary = await self.run_blocking(self.telemetry.summary, name, since, until)
        out: dict[str, Any] = {"since": since, "until": until, "functions": summary}
        if records:
            rows = await self.run_blocking(self.telemetry.usage, name, since, until, 10_000)
            out["records"] = [r.to_dict() for r in rows]
        return out

    async def pool_stats_by_key(self) -> dict[str, dict[str, int]]:
        """Return ready/leased counts per pool key, summed over the workers."""
        total: dict[str, dict[str, int]] = {}
        for worker in await self.supervisor.stats():
            for key, pool in worker["pools"].items():
                into = total.setdefault(key, dict.fromkeys(POOL_COUNTS, 0))
                for k in into:
                    into[k] += pool.get(k, 0)
        return total

    async def pool_stats(self, name: str) -> dict[str, int]:
        """Return the ready/leased counts of a function's $LATEST pools."""
        deployed = await self.run_blocking(self.catalog.version, name, LATEST)
        return (await self.pool_stats_by_key()).get(deployed.key, dict.fromkeys(POOL_COUNTS, 0))

    def workers_alive(self) -> int:
        """Return how many worker processes are running now."""
        return self.supervisor.alive()

    async def stats(self) -> dict[str, Any]:
        """Return node-wide statistics: workers, compiled cache, restarts."""
        workers = await self.supervisor.stats()
        return {
            "workers": workers,
            "restarts": self.supervisor.restarts,
            "compiles": {"deploy": self.prepare.compiles, "workers": sum(w["cache"]["misses"] for w in workers)},
            "cache_hits": sum(w["cache"]["hits"] for w in workers),
            "registry": {"url": self.registry.engine.url.render_as_string(hide_password=True),
                         "generation": self.catalog.generation},
            "telemetry_dropped": self.recorder.dropped,
            "snapshots": dataclasses.asdict(self.prepare.snapshot_stats),
            "changes": self.changes.describe(),
        }  # fmt: skip


__all__ = ["Node"]
