"""A firebox node: the registry, artifacts, workers and invoker assembled (service layer).

The HTTP front end calls this; it never touches wasmtime or the database itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import re
from dataclasses import dataclass
from typing import Any

import wasmtime
from firebox.runtime.artifacts import ArtifactStore, CompiledCache, artifact_kind, compile_module
from firebox.runtime.config import NodeConfig
from firebox.runtime.credentials import Credentials, load_or_create
from firebox.runtime.engine import EngineSettings, build_engine
from firebox.runtime.errors import Conflict, FunctionNotFound, InvalidArtifact, InvalidManifest
from firebox.runtime.guest import check_abi
from firebox.runtime.invoke import Deployed, InvocationResult, Invoker
from firebox.runtime.manifest import FunctionConfig, HttpTrigger, parse_manifest
from firebox.runtime.storage.registry import FunctionRecord, Registry, registry_url
from firebox.runtime.supervisor import Supervisor

log = logging.getLogger("firebox.node")


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
            continue
        if segment.startswith("{") and segment.endswith("}"):
            parts.append("/[^/]+")
        else:
            parts.append("/" + re.escape(segment))
    body = "".join(parts)
    if body.endswith("(?:/.*)?"):
        return re.compile("^" + body + "$")
    return re.compile("^" + (body or "/") + "/?$")


class Node:
    """Deploys, lists, deletes and invokes functions on this node."""

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
        self.supervisor = Supervisor(config, self.settings)
        self.invoker = Invoker(self.supervisor)
        self.credentials, self.generated_credentials = load_or_create(config.data_dir)
        self.functions: dict[str, Deployed] = {}
        self.routes: list[Route] = []
        # Compiling at deploy (in a thread) validates the module and fills the compiled
        # cache the workers then deserialize from; few slots: the node runs no guest.
        self._engine: wasmtime.Engine | None = None
        self._cache: CompiledCache | None = None
        self._deploy_lock = asyncio.Lock()
        self._loader: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the workers and load every registered function's pool in the background."""
        await self.supervisor.start()
        for record in self.registry.list():
            deployed = self._deployed(record)
            self.functions[record.name] = deployed
            self.supervisor.specs[deployed.key] = deployed.spec
        self._rebuild_routes()
        self._loader = asyncio.create_task(self._load_all())

    async def _load_all(self) -> None:
        for deployed in list(self.functions.values()):
            try:
                await self.supervisor.load(deployed.key, deployed.spec)
            except Exception as exc:  # one broken function must not stop the others
                log.warning("could not load %s: %s", deployed.name, exc)

    async def stop(self) -> None:
        """Stop the workers and close the registry."""
        if self._loader is not None:
            self._loader.cancel()
        await self.supervisor.stop()
        self.registry.close()

    def known_keys(self) -> dict[str, str]:
        """Return the access keys this node accepts (id -> secret)."""
        return {self.credentials.access_key_id: self.credentials.secret_access_key}

    def admin_credentials(self) -> Credentials:
        """Return the admin key pair."""
        return self.credentials

    # --- deploy ---------------------------------------------------------------------

    def _compile_engine(self) -> tuple[wasmtime.Engine, CompiledCache]:
        if self._engine is None or self._cache is None:
            settings = dataclasses.replace(self.settings, pool_slots=4)
            self._engine = build_engine(settings)
            self._cache = CompiledCache(self.config.data_dir, settings)
        return self._engine, self._cache

    def _validate_module(self, code: bytes) -> None:
        kind = artifact_kind(code)
        if kind != "module":
            raise InvalidArtifact(
                'components are deployed with `runtime = "python"` (or another component'
                " runtime); a plain WebAssembly function must be a core module (ABI v1)"
            )
        engine, cache = self._compile_engine()
        module = compile_module(engine, code)
        check_abi(module)
        digest = self.artifacts.put(code)
        path = cache.path(digest, "module")
        if not path.exists():
            cache.load_module(engine, digest, self.artifacts.path(digest))

    async def deploy(self, manifest: dict[str, Any], code: bytes) -> Deployed:
        """Validate and store a function, then fill its ready pool; returns it as deployed.

        Raises InvalidManifest, InvalidArtifact (nothing is stored then) or Conflict.
        """
        config = parse_manifest(manifest, self.config.max_memory_mb)
        if config.kind != "module":
            raise InvalidManifest(f"runtime {config.kind!r} is not supported by this node yet")
        async with self._deploy_lock:
            self._check_routes(config)
            await asyncio.to_thread(self._validate_module, code)
            digest = self.artifacts.put(code)
            record = self.registry.put(config.name, config.kind, digest, config.to_dict(), None)
            deployed = self._deployed(record)
            previous = self.functions.get(config.name)
            await self.supervisor.load(deployed.key, deployed.spec)
            self.functions[config.name] = deployed
            self._rebuild_routes()
            if previous is not None:
                await self.supervisor.unload(previous.key)
                self._collect_garbage()
            return deployed

    def _check_routes(self, config: FunctionConfig) -> None:
        for trigger in config.triggers:
            for route in self.routes:
                if route.function == config.name:
                    continue
                same = route.trigger.route == trigger.route
                if same and set(route.trigger.methods) & set(trigger.methods):
                    raise Conflict(
                        f"route {trigger.route} is already served by function {route.function}"
                    )

    def _rebuild_routes(self) -> None:
        routes = []
        for deployed in self.functions.values():
            config = parse_manifest(deployed.config, self.config.max_memory_mb)
            for trigger in config.triggers:
                routes.append(Route(compile_route(trigger.route), trigger, deployed.name))
        # Longest literal route first, so /api/users wins over /api/*.
        routes.sort(key=lambda r: -len(r.trigger.route.replace("*", "")))
        self.routes = routes

    def _deployed(self, record: FunctionRecord) -> Deployed:
        config = parse_manifest(record.config, self.config.max_memory_mb)
        spec = {
            "name": record.name,
            "kind": record.kind,
            "digest": record.digest,
            "bundle_digest": record.bundle_digest,
            "handler": config.handler,
            "limits": config.limits.to_dict(),
            "environment": config.environment,
            "provisioned": config.provisioned,
            "concurrency": config.concurrency,
            "isolation": config.isolation,
            "export": config.export,
        }
        return Deployed(
            name=record.name,
            key=f"{record.name}@{record.revision}",
            spec=spec,
            config=record.config,
        )

    # --- read, delete, invoke ------------------------------------------------------------

    def get(self, name: str) -> Deployed:
        """Return a deployed function; raises FunctionNotFound."""
        try:
            return self.functions[name]
        except KeyError:
            raise FunctionNotFound(name) from None

    def all(self) -> list[Deployed]:
        """Return every deployed function, by name."""
        return [self.functions[n] for n in sorted(self.functions)]

    async def delete(self, name: str) -> None:
        """Delete a function, its pools and its unreferenced artifacts; raises FunctionNotFound."""
        async with self._deploy_lock:
            deployed = self.get(name)
            self.registry.delete(name)
            del self.functions[name]
            self._rebuild_routes()
            await self.supervisor.unload(deployed.key)
            self._collect_garbage()

    def _collect_garbage(self) -> None:
        keep = self.registry.digests_in_use()
        for deployed in self.functions.values():
            keep.add(deployed.spec["digest"])
        for path in self.artifacts.root.glob("*/*.wasm"):
            if path.stem not in keep:
                path.unlink(missing_ok=True)

    async def invoke(
        self, name: str, payload: bytes, export: str | None = None
    ) -> InvocationResult:
        """Invoke a function by name; see Invoker.invoke for what it raises."""
        return await self.invoker.invoke(self.get(name), payload, export)

    def match_route(self, path: str) -> list[Route]:
        """Return the trigger routes whose pattern matches `path` (any method)."""
        return [r for r in self.routes if r.pattern.match(path)]

    async def stats(self) -> dict[str, Any]:
        """Return node-wide statistics: workers, compiled cache, restarts, pools."""
        workers = await self.supervisor.stats()
        engine_cache = self._cache.stats if self._cache is not None else None
        return {
            "workers": workers,
            "restarts": self.supervisor.restarts,
            "compiles": {
                "deploy": engine_cache.misses if engine_cache else 0,
                "workers": sum(w["cache"]["misses"] for w in workers),
            },
            "cache_hits": sum(w["cache"]["hits"] for w in workers),
        }

    async def pool_stats(self, name: str) -> dict[str, Any]:
        """Return the ready/leased counts of a function's pools summed over the workers."""
        deployed = self.get(name)
        total = {"ready": 0, "leased": 0, "cold_starts": 0, "warm_starts": 0}
        for worker in await self.supervisor.stats():
            pool = worker["pools"].get(deployed.key)
            if pool:
                for k in total:
                    total[k] += pool[k]
        return total
