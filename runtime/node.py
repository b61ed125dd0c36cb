"""A firebox node: the registry, artifacts, workers and invoker assembled (service layer).

The HTTP front end calls this; it never touches wasmtime or the database itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime
from firebox.runtime.artifacts import ArtifactStore, CompiledCache, artifact_kind, compile_module
from firebox.runtime.config import NodeConfig
from firebox.runtime.credentials import Credentials, load_or_create
from firebox.runtime.engine import EngineSettings, build_engine
from firebox.runtime.errors import (
    Conflict,
    FireboxError,
    FunctionNotFound,
    InvalidArtifact,
    ServiceUnavailable,
)
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


def function_spec(
    name: str, kind: str, digest: str, bundle_digest: str | None, stored: dict[str, Any]
) -> dict[str, Any]:
    """Return the spec a worker needs to run a function (its wire form)."""
    config = parse_manifest(stored)
    return {
        "name": name,
        "kind": kind,
        "digest": digest,
        "bundle_digest": bundle_digest,
        "handler": config.handler,
        "limits": config.limits.to_dict(),
        "environment": config.environment,
        "provisioned": config.provisioned,
        "concurrency": config.concurrency,
        "isolation": config.isolation,
        "export": config.export,
    }


def spec_key(name: str, spec: dict[str, Any]) -> str:
    """Return the pool key of a spec: the same code and configuration share one pool."""
    blob = json.dumps(spec, sort_keys=True).encode()
    return f"{name}@{hashlib.sha256(blob).hexdigest()[:12]}"


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (between processes of one machine)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _validate_bundle(bundle: bytes, handler: str) -> None:
    from firebox.compiler.errors import CompileError
    from firebox.compiler.python import validate_bundle

    try:
        validate_bundle(bundle, handler)
    except CompileError as exc:
        raise InvalidArtifact(str(exc)) from None


def _log_failure(future: asyncio.Future[str]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("the Python interpreter could not be prepared: %s", future.exception())


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
        self._interpreter: asyncio.Future[str] | None = None

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
        if os.environ.get("FIREBOX_PREPARE_PYTHON", "1") != "0":
            # Build/compile the interpreter now, so the first Python deploy is fast.
            self._interpreter = asyncio.ensure_future(asyncio.to_thread(self._prepare_interpreter))
            self._interpreter.add_done_callback(_log_failure)

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

    def _validate_module(self, code: bytes) -> str:
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
        return digest

    # --- the shared Python interpreter ------------------------------------------------

    def _prepare_interpreter(self) -> str:
        """Build (once per firebox version) and compile (once per node) the interpreter."""
        from firebox.compiler.interpreter import build_interpreter

        path = build_interpreter()
        digest = sha256_file(path)
        if not self.artifacts.exists(digest):
            self.artifacts.put(path.read_bytes())
        engine, cache = self._compile_engine()
        with file_lock(cache.root / ".compile.lock"):
            cache.ensure_component(engine, digest, self.artifacts.path(digest))
        return digest

    async def interpreter(self) -> str:
        """Return the digest of the compiled interpreter component, preparing it if needed."""
        if self._interpreter is None:
            self._interpreter = asyncio.ensure_future(asyncio.to_thread(self._prepare_interpreter))
        try:
            return await asyncio.shield(self._interpreter)
        except Exception as exc:
            self._interpreter = None
            raise ServiceUnavailable(f"the Python interpreter is not available: {exc}") from exc

    # --- deploy ---------------------------------------------------------------------

    async def deploy(self, manifest: dict[str, Any], code: bytes) -> Deployed:
        """Validate and store a function, then fill its ready pool; returns it as deployed.

        Raises InvalidManifest, InvalidArtifact (nothing new is kept then) or Conflict.
        """
        config = parse_manifest(manifest, self.config.max_memory_mb)
        async with self._deploy_lock:
            self._check_routes(config)
            bundle_digest: str | None = None
            if config.kind == "python":
                await asyncio.to_thread(_validate_bundle, code, config.handler)
                digest = await self.interpreter()
                bundle_digest = self.artifacts.put(code)
            else:
                digest = await asyncio.to_thread(self._validate_module, code)
            stored = config.to_dict()
            spec = function_spec(config.name, config.kind, digest, bundle_digest, stored)
            key = spec_key(config.name, spec)
            try:
                await self.supervisor.load(key, spec)
            except FireboxError as exc:
                await self.supervisor.unload(key)
                self._collect_garbage(spec)
                raise InvalidArtifact(f"the function failed to initialize: {exc.message}") from None
            record = self.registry.put(config.name, config.kind, digest, stored, bundle_digest)
            deployed = self._deployed(record)
            previous = self.functions.get(config.name)
            self.functions[config.name] = deployed
            self._rebuild_routes()
            if previous is not None and previous.key != deployed.key:
                await self.supervisor.unload(previous.key)
                self._collect_garbage(previous.spec)
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
        spec = function_spec(
            record.name, record.kind, record.digest, record.bundle_digest, record.config
        )
        return Deployed(
            name=record.name,
            key=spec_key(record.name, spec),
            spec=spec,
            config=record.config,
            revision=record.revision,
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
            self._collect_garbage(deployed.spec)

    def _collect_garbage(self, spec: dict[str, Any]) -> None:
        """Delete the artifacts of `spec` (a replaced, deleted or failed version) that no
        function references any more. The shared interpreter is never a candidate."""
        candidates = {spec["bundle_digest"]} if spec["kind"] == "python" else {spec["digest"]}
        keep = self.registry.digests_in_use()
        for deployed in self.functions.values():
            keep.update({deployed.spec["digest"], deployed.spec.get("bundle_digest")})
        for digest in candidates - keep:
            if digest:
                self.artifacts.delete(digest)

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
