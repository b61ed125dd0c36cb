"""A firebox node: registry, catalog, artifacts, workers, telemetry assembled (service layer).

The HTTP front ends call this; it never touches wasmtime or SQL itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any

from firebox.runtime.artifacts import ArtifactStore
from firebox.runtime.catalog import Catalog, Resolved, parse_qualified
from firebox.runtime.config import NodeConfig, arn
from firebox.runtime.credentials import Credentials, load_or_create
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import (
    BadRequest,
    Conflict,
    FireboxError,
    FunctionNotFound,
    InvalidArtifact,
    InvalidManifest,
    NodeAtCapacity,
    PayloadTooLarge,
    ServiceUnavailable,
    Throttled,
    WorkerLost,
)
from firebox.runtime.events.async_invoke import AsyncInvoker
from firebox.runtime.events.mappings import MappingManager
from firebox.runtime.events.scheduler import Scheduler
from firebox.runtime.invoke import Deployed, InvocationResult, Invoker
from firebox.runtime.manifest import FunctionConfig, HttpTrigger, parse_manifest
from firebox.runtime.prepare import Preparer
from firebox.runtime.storage.events_auto import open_queue_backend, open_stream_backend
from firebox.runtime.storage.mappings import MappingStore
from firebox.runtime.storage.registry import (
    LATEST,
    AliasRecord,
    FunctionRecord,
    Registry,
    registry_url,
)
from firebox.runtime.storage.schedules import ScheduleStore
from firebox.runtime.storage.telemetry import TelemetryStore
from firebox.runtime.supervisor import Supervisor
from firebox.runtime.telemetry import Recorder

log = logging.getLogger("firebox.node")

# Configuration keys a config update may change (code identity keys may not).
UPDATABLE = {
    "description", "memory", "timeout", "fuel", "max_request_bytes", "max_response_bytes",
    "max_log_bytes", "environment", "triggers", "provisioned", "concurrency", "isolation",
    "metadata",
}  # fmt: skip
ALIAS_RE = re.compile(r"^(?!^[0-9]+$)[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class Route:
    """A compiled HTTP trigger route of a deployed function."""

    pattern: re.Pattern[str]
    trigger: HttpTrigger
    function: str


def compile_route(route: str) -> re.Pattern[str]:
    """Turn `/users/{id}/*` into a regex: `{x}` matches one segment, a final `*` the rest."""
    parts = []
    for segment in route.strip("/").split("/") if route != "/" else []:
        if segment == "*":
            parts.append("(?:/.*)?")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append("/[^/]+")
        else:
            parts.append("/" + re.escape(segment))
    body = "".join(parts)
    if body.endswith("(?:/.*)?"):
        return re.compile("^" + body + "$")
    return re.compile("^" + (body or "/") + "/?$")


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


class Node:
    """Deploys, versions, routes and invokes functions on this node."""

    def __init__(self, config: NodeConfig, database_url: str | None = None) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings = EngineSettings(
            pool_slots=config.pool_slots, max_memory_mb=config.max_memory_mb
        )
        self.artifacts = ArtifactStore(config.data_dir)
        self.registry = Registry(
            registry_url(config.data_dir, database_url or os.environ.get("FIREBOX_DATABASE_URL"))
        )
        self.catalog = Catalog(self.registry)
        self.prepare = Preparer(self.settings, config.data_dir, self.artifacts, self.registry)
        self.supervisor = Supervisor(config, self.settings)
        self.invoker = Invoker(self.supervisor)
        self.telemetry = TelemetryStore(self.registry.engine)
        self.recorder = Recorder(self.telemetry, _env_float("FIREBOX_LOG_RETENTION_S", 7 * 86400))
        self.credentials, self.generated_credentials = load_or_create(config.data_dir)
        self.routes: list[Route] = []
        self.loaded: dict[str, dict[str, Any]] = {}
        self.inflight: dict[str, int] = {}
        queue_url = os.environ.get("FIREBOX_QUEUE_URL") or None
        self.queues = open_queue_backend(queue_url, config.data_dir)
        self.streams = open_stream_backend(queue_url, config.data_dir)
        self.async_invoker = AsyncInvoker(
            self, self.queues, int(os.environ.get("FIREBOX_ASYNC_CONCURRENCY") or 8)
        )
        self.scheduler = Scheduler(self, ScheduleStore(self.registry.engine))
        self.mappings = MappingManager(
            self, self.queues, self.streams, MappingStore(self.registry.engine)
        )
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.poll_s = _env_float("FIREBOX_REGISTRY_POLL_S", 0.5)

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start workers and telemetry, read the registry, fill pools in the background."""
        await self.supervisor.start()
        await self.recorder.start()
        await asyncio.to_thread(self.catalog.reload)
        self._rebuild_routes()
        await self.async_invoker.start()
        await self.mappings.start()
        await self.scheduler.start()
        if os.environ.get("FIREBOX_PREPARE_PYTHON", "1") != "0":
            self.prepare.start_interpreter()  # so the first Python deploy is fast
        self._tasks = [asyncio.create_task(self._initial_sync()), asyncio.create_task(self._poll())]

    async def stop(self) -> None:
        """Stop polling, flush telemetry, stop workers, close the registry."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.scheduler.stop()
        await self.mappings.stop()
        await self.async_invoker.stop()
        await self.recorder.stop()
        await self.supervisor.stop()
        self.queues.close()
        self.streams.close()
        self.registry.close()

    async def _initial_sync(self) -> None:
        async with self._lock:
            await self._sync_pools()

    async def _poll(self) -> None:
        """Notice writes by other nodes sharing the registry (and keep pools in step)."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                changed = await asyncio.to_thread(self.catalog.refresh)
            except Exception as exc:  # the database is briefly unreachable: keep serving
                log.warning("registry poll failed: %s", exc)
                continue
            if changed:
                async with self._lock:
                    self._rebuild_routes()
                    await self._sync_pools()

    async def _changed(self) -> None:
        """After a write of ours: reload the catalog, routes and pools (lock held by caller)."""
        await asyncio.to_thread(self.catalog.reload)
        self._rebuild_routes()
        await self._sync_pools()

    async def _sync_pools(self) -> None:
        wanted = self.catalog.wanted()
        for key in [k for k in self.loaded if k not in wanted]:
            await self.supervisor.unload(key)
            del self.loaded[key]
        for key, spec in wanted.items():
            if key in self.loaded:
                continue
            try:
                await self._load(key, spec)
            except Exception as exc:  # one broken function must not stop the others
                log.warning("could not load %s: %s", key, exc)

    async def _load(self, key: str, spec: dict[str, Any]) -> None:
        await asyncio.to_thread(self.prepare.ensure_local, spec["digest"])
        await asyncio.to_thread(self.prepare.ensure_local, spec.get("bundle_digest"))
        if spec["kind"] == "python":
            await asyncio.to_thread(self.prepare.compile_component, spec["digest"])
        await self.supervisor.load(key, spec)
        self.loaded[key] = spec

    def known_keys(self) -> dict[str, str]:
        """Return the access keys this node accepts (id -> secret)."""
        return {self.credentials.access_key_id: self.credentials.secret_access_key}

    def admin_credentials(self) -> Credentials:
        """Return the admin key pair."""
        return self.credentials

    # --- deploy and update ------------------------------------------------------------

    async def _store_code(self, config: FunctionConfig, code: bytes) -> tuple[str, str | None]:
        if config.kind == "python":
            bundle = await asyncio.to_thread(self.prepare.bundle, code, config.handler)
            return await self.prepare.interpreter(), bundle
        return await asyncio.to_thread(self.prepare.module, code), None

    async def _try_init(self, record: FunctionRecord) -> None:
        """Load a candidate version on a worker: a function that fails to initialize is refused."""
        candidate = self.catalog.deployed(record)
        try:
            await self._load(candidate.key, candidate.spec)
        except FireboxError as exc:
            await self.supervisor.unload(candidate.key)
            self.loaded.pop(candidate.key, None)
            if isinstance(exc, NodeAtCapacity | ServiceUnavailable | WorkerLost):
                raise  # the node's capacity or health, not the function's fault
            raise InvalidArtifact(f"the function failed to initialize: {exc.message}") from None

    async def deploy(
        self, manifest: dict[str, Any], code: bytes, tags: dict[str, str] | None = None
    ) -> FunctionRecord:
        """Create a function or replace its $LATEST code and configuration; returns $LATEST.

        Raises InvalidManifest, InvalidArtifact (nothing new is kept then) or Conflict.
        """
        config = parse_manifest(manifest, self.config.max_memory_mb)
        async with self._lock:
            self._check_routes(config)
            digest, bundle = await self._store_code(config, code)
            stored = config.to_dict()
            await self._try_init(FunctionRecord(config.name, config.kind, digest, bundle, stored))
            await asyncio.to_thread(
                self.registry.put_latest, config.name, config.kind, digest, stored, bundle, tags
            )
            await self._changed()
            self._collect_garbage({digest, bundle})
            return self.registry.get(config.name)

    async def update_code(self, name: str, code: bytes) -> FunctionRecord:
        """Replace $LATEST's code, keeping its configuration; raises FunctionNotFound."""
        current = self.registry.get(name)
        return await self.deploy(current.config, code)

    async def update_config(self, name: str, changes: dict[str, Any]) -> FunctionRecord:
        """Change $LATEST's configuration without new code; published versions never change.

        Raises FunctionNotFound, InvalidManifest (unknown key, value out of range).
        """
        unknown = sorted(set(changes) - UPDATABLE)
        if unknown:
            raise InvalidManifest(
                f"cannot update {', '.join(unknown)}; updatable keys: {', '.join(sorted(UPDATABLE))}"
            )
        async with self._lock:
            current = self.registry.get(name)
            merged = {**current.config, **changes}
            config = parse_manifest(merged, self.config.max_memory_mb)
            self._check_routes(config)
            stored = config.to_dict()
            await self._try_init(
                FunctionRecord(name, current.kind, current.digest, current.bundle_digest, stored)
            )
            record = await asyncio.to_thread(self.registry.update_config, name, stored)
            await self._changed()
            return record

    async def publish(self, name: str, description: str = "") -> FunctionRecord:
        """Publish $LATEST as an immutable numbered version; returns it."""
        async with self._lock:
            record = await asyncio.to_thread(self.registry.publish, name, description)
            await self._changed()
            return record

    def versions(self, name: str) -> list[FunctionRecord]:
        """Return $LATEST then every published version of a function."""
        return [self.registry.get(name), *self.registry.versions(name)]

    async def put_alias(
        self,
        function: str,
        alias: str,
        version: str,
        routing: dict[str, float] | None = None,
        description: str | None = None,
        *,
        create: bool,
    ) -> AliasRecord:
        """Create or update an alias (with optional weighted routing); returns it.

        Raises BadRequest for a bad name or weights, FunctionNotFound for missing
        versions, Conflict if creating an alias that exists.
        """
        if not ALIAS_RE.match(alias) or alias == LATEST:
            raise BadRequest(
                f"alias name {alias!r} must be 1-128 letters, digits, '-' or '_', not all digits"
            )
        routing = {str(k): float(v) for k, v in (routing or {}).items()}
        if any(not 0.0 <= w <= 1.0 for w in routing.values()) or sum(routing.values()) > 1.0:
            raise BadRequest("routing weights must be between 0 and 1 and add up to at most 1")
        if str(version) in routing:
            raise BadRequest("routing cannot name the alias's own version")
        async with self._lock:
            record = await asyncio.to_thread(
                self.registry.put_alias,
                function,
                alias,
                str(version),
                routing,
                description,
                create=create,
            )
            await self._changed()
            return record

    async def delete_alias(self, function: str, alias: str) -> None:
        """Delete an alias; raises FunctionNotFound."""
        async with self._lock:
            await asyncio.to_thread(self.registry.delete_alias, function, alias)
            await self._changed()

    async def set_provisioned(self, function: str, qualifier: str, count: int) -> None:
        """Keep `count` instances ready for a version or alias of a function."""
        if count < 0:
            raise BadRequest(f"provisioned concurrency must be >= 0, got {count}")
        name, qualifier = parse_qualified(function, qualifier)
        resolved = self.catalog.resolve(name, qualifier)  # FunctionNotFound if missing
        cap = int(resolved.deployed.spec["concurrency"])
        if count > cap:
            raise BadRequest(
                f"provisioned concurrency {count} exceeds the function's concurrency cap {cap}"
            )
        async with self._lock:
            await asyncio.to_thread(self.registry.set_provisioned, name, qualifier, count)
            await self._changed()

    async def provisioned_status(self, function: str) -> dict[str, Any]:
        """Return per qualifier: configured provisioned concurrency and instances ready now."""
        self.registry.get(function)
        settings = dict(self.catalog.provisioned_for(function))
        latest = self.catalog.version(function, LATEST)
        settings.setdefault(LATEST, int(latest.spec["provisioned"]))
        pools = await self.pool_stats_by_key()
        out = {}
        for qualifier, count in sorted(settings.items()):
            try:
                deployed = self.catalog.resolve(function, qualifier).deployed
            except FunctionNotFound:
                continue
            if not qualifier.isdigit() and qualifier != LATEST:
                alias = self.catalog.alias(function, qualifier)
                deployed = self.catalog.version(function, alias.version) if alias else deployed
            ready = pools.get(deployed.key, {}).get("ready", 0)
            out[qualifier] = {"requested": count, "ready": ready, "version": deployed.version}
        return out

    async def set_tags(self, function: str, tags: dict[str, str]) -> None:
        """Replace a function's tags."""
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise BadRequest("tags must map strings to strings")
        await asyncio.to_thread(self.registry.set_tags, function, tags)

    async def delete(self, name: str) -> None:
        """Delete a function, its versions, aliases, pools and unreferenced artifacts."""
        async with self._lock:
            gone = await asyncio.to_thread(self.registry.delete, name)
            await asyncio.to_thread(self.async_invoker.configs.delete, name)
            await self._changed()
            self._collect_garbage({d for r in gone for d in (r.digest, r.bundle_digest)})

    def _collect_garbage(self, candidates: set[str | None]) -> None:
        """Delete candidate artifacts no version references; the interpreter stays."""
        keep = self.registry.digests_in_use()
        for spec in self.loaded.values():
            keep.add(spec["digest"])
            if spec.get("bundle_digest"):
                keep.add(spec["bundle_digest"])
        for digest in candidates - keep:
            if digest and not self.artifacts.is_component(digest):
                self.artifacts.delete(digest)
                if self.registry.shared:
                    self.registry.delete_blob(digest)

    # --- routes -----------------------------------------------------------------------

    def _check_routes(self, config: FunctionConfig) -> None:
        for trigger in config.triggers:
            for route in self.routes:
                if route.function == config.name:
                    continue
                if route.trigger.route == trigger.route and set(route.trigger.methods) & set(
                    trigger.methods
                ):
                    raise Conflict(
                        f"route {trigger.route} is already served by function {route.function}"
                    )

    def _rebuild_routes(self) -> None:
        routes = []
        for deployed in self.catalog.latest.values():
            config = parse_manifest(deployed.config)
            for trigger in config.triggers:
                routes.append(Route(compile_route(trigger.route), trigger, deployed.name))
        # Longest literal route first, so /api/users wins over /api/*.
        routes.sort(key=lambda r: -len(r.trigger.route.replace("*", "")))
        self.routes = routes

    def match_route(self, path: str) -> list[Route]:
        """Return the trigger routes whose pattern matches `path` (any method)."""
        return [r for r in self.routes if r.pattern.match(path)]

    # --- read -------------------------------------------------------------------------

    def get(self, name: str) -> FunctionRecord:
        """Return $LATEST of a function; raises FunctionNotFound."""
        return self.registry.get(name)

    def all(self, after: str | None = None, limit: int | None = None) -> list[FunctionRecord]:
        """Return functions ($LATEST) by name, paginated."""
        return self.registry.list(after, limit)

    def resolve(self, name: str, qualifier: str | None = None) -> Resolved:
        """Resolve `name[:qualifier]` to the version that will run."""
        return self.catalog.resolve(name, qualifier)

    # --- invoke -----------------------------------------------------------------------

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

        A caller that already resolved the name (and so picked a weighted alias's version)
        passes `resolved`, so the version it checked is the version that runs.

        Raises FunctionNotFound, PayloadTooLarge and Throttled before anything runs
        (each still leaves a log line and a usage record).
        """
        resolved = resolved or self.catalog.resolve(name, qualifier)
        fn = resolved.deployed
        request_id = request_id or str(uuid.uuid4())
        memory_mb = int(fn.spec["limits"]["memory_mb"])
        cap = int(self.catalog.version(fn.name, LATEST).spec["concurrency"])
        running = self.inflight.get(fn.name, 0)
        limit = int(fn.spec["limits"]["max_request_bytes"])
        rejection: FireboxError | None = None
        if len(payload) > limit:
            rejection = PayloadTooLarge("Request payload", len(payload), limit)
        elif running >= cap:
            rejection = Throttled(fn.name, cap)
        if rejection is not None:
            self.recorder.record_rejected(
                fn.name, fn.version, request_id, rejection.code, rejection.message,
                memory_mb=memory_mb, request_bytes=len(payload),
            )  # fmt: skip
            raise rejection
        if fn.key not in self.loaded:
            # A version without a ready pool: make sure its artifacts are on this node.
            await asyncio.to_thread(self.prepare.ensure_local, fn.spec["digest"])
            await asyncio.to_thread(self.prepare.ensure_local, fn.spec.get("bundle_digest"))
            if fn.spec["kind"] == "python":
                await asyncio.to_thread(self.prepare.compile_component, fn.spec["digest"])
        self.inflight[fn.name] = running + 1
        try:
            suffix = f":{qualifier}" if qualifier and qualifier != LATEST else ""
            invoked_arn = arn("lambda", f"function:{fn.name}{suffix}")  # as the caller named it
            result = await self.invoker.invoke(
                fn, payload, export, request_id, invoked_arn, client_context
            )
        finally:
            self.inflight[fn.name] -= 1
        self.recorder.record(
            fn.name, fn.version, result,
            memory_mb=memory_mb, request_bytes=len(payload), response_bytes=len(result.output),
        )  # fmt: skip
        return result

    async def enqueue(
        self, name: str, qualifier: str | None, payload: bytes, idempotency_key: str | None = None
    ) -> str:
        """Accept an Event invocation: stored durably before this returns; returns its request id.

        Raises FunctionNotFound and PayloadTooLarge at once (nothing is stored then).
        """
        resolved = self.catalog.resolve(name, qualifier)
        fn = resolved.deployed
        limit = int(fn.spec["limits"]["max_request_bytes"])
        if len(payload) > limit:
            raise PayloadTooLarge("Request payload", len(payload), limit)
        return await self.async_invoker.enqueue(
            fn.name, resolved.qualifier, payload, idempotency_key
        )

    # --- logs, usage, stats -----------------------------------------------------------

    async def logs(self, name: str, **query: Any) -> list[dict[str, Any]]:
        """Return a function's logs (see TelemetryStore.logs for the filters)."""
        self.registry.get(name)
        await self.recorder.flush()
        rows = await asyncio.to_thread(self.telemetry.logs, name, **query)
        return [r.to_dict() for r in rows]

    async def usage(
        self, name: str | None, since: float | None, until: float | None, records: bool = False
    ) -> dict[str, Any]:
        """Return usage aggregates per function over a window (and the records if asked)."""
        if name:
            self.registry.get(name)
        await self.recorder.flush()
        summary = await asyncio.to_thread(self.telemetry.summary, name, since, until)
        out: dict[str, Any] = {"since": since, "until": until, "functions": summary}
        if records:
            rows = await asyncio.to_thread(self.telemetry.usage, name, since, until, 10_000)
            out["records"] = [r.to_dict() for r in rows]
        return out

    async def pool_stats_by_key(self) -> dict[str, dict[str, int]]:
        """Return ready/leased counts per pool key, summed over the workers."""
        total: dict[str, dict[str, int]] = {}
        for worker in await self.supervisor.stats():
            for key, pool in worker["pools"].items():
                into = total.setdefault(
                    key, {"ready": 0, "leased": 0, "cold_starts": 0, "warm_starts": 0}
                )
                for k in into:
                    into[k] += pool[k]
        return total

    async def pool_stats(self, name: str) -> dict[str, int]:
        """Return the ready/leased counts of a function's $LATEST pools."""
        deployed = self.catalog.version(name, LATEST)
        return (await self.pool_stats_by_key()).get(
            deployed.key, {"ready": 0, "leased": 0, "cold_starts": 0, "warm_starts": 0}
        )

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
        }  # fmt: skip


__all__ = ["Deployed", "Node", "Route", "compile_route"]
