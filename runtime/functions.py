"""The node's functions as records: deploy, update, publish, aliases, provisioned concurrency,
tags, delete, the reads the APIs need, and artifact garbage collection (service layer).

Every registry call runs on the node's blocking executor (`Node.run_blocking`), never on
the event loop: with PostgreSQL each one is a network round trip.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import TYPE_CHECKING, Any

from firebox.runtime.catalog import parse_qualified
from firebox.runtime.compile_bounds import check_compile_cost
from firebox.runtime.errors import (
    BadRequest,
    FireboxError,
    FunctionNotFound,
    HandlerError,
    InvalidArtifact,
    InvalidManifest,
    NodeAtCapacity,
    ServiceUnavailable,
    WorkerLost,
)
from firebox.runtime.manifest import FunctionConfig, parse_manifest
from firebox.runtime.storage.registry import LATEST, AliasRecord, FunctionRecord

if TYPE_CHECKING:
    from firebox.runtime.node import Node

# Configuration keys a config update may change (code identity keys may not).
UPDATABLE = {
    "description", "memory", "timeout", "fuel", "max_request_bytes", "max_response_bytes",
    "max_log_bytes", "environment", "triggers", "provisioned", "concurrency", "isolation",
    "metadata", "capabilities",
}  # fmt: skip
log = logging.getLogger("firebox.functions")
ALIAS_RE = re.compile(r"^(?!^[0-9]+$)[A-Za-z0-9_-]{1,128}$")


class Functions:
    """Deploys and versions the functions of one node, and answers what the APIs read."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.registry = node.registry
        self.catalog = node.catalog
        self.prepare = node.prepare
        self.run = node.run_blocking
        # Code of deploys in progress (stored, not yet in the registry): GC keeps it.
        self._in_flight: list[set[str | None]] = []

    # --- read -------------------------------------------------------------------------

    async def get(self, name: str) -> FunctionRecord:
        """Return $LATEST of a function; raises FunctionNotFound."""
        return await self.run(self.registry.get, name)

    async def find(self, name: str) -> FunctionRecord | None:
        """Return $LATEST of a function, or None when there is none."""
        return await self.run(self.registry.find, name)

    async def list_latest(
        self, after: str | None = None, limit: int | None = None
    ) -> list[FunctionRecord]:
        """Return functions ($LATEST) by name, paginated."""
        return await self.run(self.registry.list, after, limit)

    async def versions(self, name: str) -> list[FunctionRecord]:
        """Return $LATEST then every published version; raises FunctionNotFound."""
        latest = await self.get(name)
        return [latest, *await self.published(name)]

    async def published(self, name: str) -> list[FunctionRecord]:
        """Return the published versions of a function, oldest first."""
        return await self.run(self.registry.versions, name)

    async def aliases(self, name: str) -> list[AliasRecord]:
        """Return a function's aliases (none for a function that does not exist)."""
        return await self.run(self.registry.aliases, name)

    async def alias(self, name: str, alias: str) -> AliasRecord | None:
        """Return one alias of a function, or None."""
        return await self.run(self.registry.alias, name, alias)

    async def record(self, name: str, qualifier: str | None = None) -> FunctionRecord:
        """Return the version a qualifier names (an alias: the version it points at).

        Raises FunctionNotFound naming what is missing.
        """
        if qualifier is None or qualifier == LATEST:
            return await self.get(name)
        if qualifier.isdigit():
            return await self.run(self.registry.version, name, qualifier)
        await self.get(name)
        alias = await self.alias(name, qualifier)
        if alias is None:
            raise FunctionNotFound(name)
        return await self.run(self.registry.version, name, alias.version)

    async def code(self, record: FunctionRecord) -> bytes:
        """Return the code a version was deployed with (a Python function's bundle)."""
        digest = record.bundle_digest or record.digest
        return await self.run(self.node.artifacts.get, digest)

    # --- deploy and update ------------------------------------------------------------

    async def _store_code(self, config: FunctionConfig, code: bytes) -> tuple[str, str | None]:
        if config.kind != "python":
            check_compile_cost(code)  # before anything compiles it
        if config.kind == "python":
            bundle = await self.run(self.prepare.bundle, code, config.handler)
            return await self.prepare.interpreter(), bundle
        return await self.run(self.prepare.module, code), None

    async def _capture(self, record: FunctionRecord) -> None:
        """Capture a Python candidate version's post-init snapshot (its init runs once,
        on the node's threads, under the init budgets): this is the init check, so a
        function that fails to initialize is refused with its error and init output."""
        spec = self.catalog.deployed(record).spec
        if spec.snapshot is None:
            return
        try:
            await self.run(self.prepare.snapshot, spec)
        except HandlerError as exc:
            capture = self.prepare.last_capture
            log = capture.init_log if capture is not None else ""
            raise InvalidArtifact(_init_failure(exc.message, log)) from None
        except FireboxError as exc:
            if isinstance(exc, NodeAtCapacity | ServiceUnavailable | WorkerLost):
                raise
            raise InvalidArtifact(f"the function failed to initialize: {exc.message}") from None

    async def _try_init(self, record: FunctionRecord) -> str | None:
        """Load a candidate version on a worker: a function that fails to initialize is
        refused. Runs outside the node's lock (the guest's init has its own deadline, in
        the worker). Returns the key of a trial pool the caller must adopt (commit) or
        drop (`_drop_trial`), or None when that exact version already runs here."""
        candidate = self.catalog.deployed(record)
        key = candidate.key
        if key in self.node.loaded:
            return None
        try:
            await self.node.load(key, candidate.spec)
        except FireboxError as exc:
            await self.node.unload(key)
            if isinstance(exc, NodeAtCapacity | ServiceUnavailable | WorkerLost):
                raise  # the node's capacity or health, not the function's fault
            raise InvalidArtifact(f"the function failed to initialize: {exc.message}") from None
        # Not in the node's pools until committed: the commit's pool sync adopts the
        # pool already filled on its worker (no second init).
        self.node.pools.trials[key] = self.node.loaded.pop(key)
        return key

    async def _drop_trial(self, key: str | None) -> None:
        """Drop a trial pool whose version was not committed (it must not refill forever)."""
        if key is not None and key not in self.node.loaded:
            self.node.pools.trials.pop(key, None)
            await self.node.unload(key)

    async def deploy(
        self, manifest: dict[str, Any], code: bytes, tags: dict[str, str] | None = None
    ) -> FunctionRecord:
        """Create a function or replace its $LATEST code and configuration; returns $LATEST.

        Raises InvalidManifest, InvalidArtifact (nothing new is kept then) or Conflict.
        """
        config = parse_manifest(manifest, self.node.config.max_memory_mb)
        self.node.routes.check(config)
        # Validated and compiled outside the node's lock (a big module takes seconds);
        # GC keeps what `held` names, and a GC that ran between the store and `held`
        # learning its digests is caught below and the code stored again, lock held.
        held: set[str | None] = {hashlib.sha256(code).hexdigest()}
        self._in_flight.append(held)
        committed = False
        trial: str | None = None
        try:
            digest, bundle = await self._store_code(config, code)
            held.update((digest, bundle))
            async with self.node.lock:  # no GC runs meanwhile; it keeps `held` from now on
                if not await self.run(self._stored, digest, bundle):
                    digest, bundle = await self._store_code(config, code)
                    held.update((digest, bundle))
            stored = config.to_dict()
            candidate = FunctionRecord(config.name, config.kind, digest, bundle, stored)
            # Outside the node's lock: both run user code (another deploy must not wait).
            await self._capture(candidate)
            trial = await self._try_init(candidate)
            async with self.node.lock:
                record = await self._put_latest(config, candidate, tags)
            committed = True
            return record
        finally:
            self._in_flight.remove(held)
            if not committed:  # a failed deploy leaves no pool and no artifact behind
                await self._drop_trial(trial)
                async with self.node.lock:
                    await self.collect_garbage(held)

    def _stored(self, *digests: str | None) -> bool:
        """Whether every given artifact is (still) in the node's store."""
        return all(self.node.artifacts.exists(d) for d in digests if d)

    async def _put_latest(
        self, config: FunctionConfig, candidate: FunctionRecord, tags: dict[str, str] | None
    ) -> FunctionRecord:
        """Make a checked candidate $LATEST (lock held): routes, registry, GC."""
        digest, bundle, stored = candidate.digest, candidate.bundle_digest, candidate.config
        self.node.routes.check(config)
        previous = await self.find(config.name)
        await self.run(
            self.registry.put_latest, config.name, config.kind, digest, stored, bundle, tags
        )
        await self.node.changed()
        await self.collect_garbage({digest, bundle})
        if previous is not None:
            await self._drop_snapshots([previous])
        return await self.get(config.name)

    async def update_code(self, name: str, code: bytes) -> FunctionRecord:
        """Replace $LATEST's code, keeping its configuration; raises FunctionNotFound."""
        current = await self.get(name)
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
        current = await self.get(name)
        config = parse_manifest({**current.config, **changes}, self.node.config.max_memory_mb)
        stored = config.to_dict()
        candidate = FunctionRecord(
            name, current.kind, current.digest, current.bundle_digest, stored
        )
        # Outside the node's lock: both run user code (another deploy must not wait).
        await self._capture(candidate)
        trials = [await self._try_init(candidate)]
        committed = False
        try:
            async with self.node.lock:
                current = await self.get(name)
                config = parse_manifest(
                    {**current.config, **changes}, self.node.config.max_memory_mb
                )
                self.node.routes.check(config)
                stored = config.to_dict()
                moved = FunctionRecord(
                    name, current.kind, current.digest, current.bundle_digest, stored
                )
                if self.catalog.deployed(moved).key != self.catalog.deployed(candidate).key:
                    # $LATEST moved meanwhile (rare): check the new candidate, lock held.
                    await self._capture(moved)
                    trials.append(await self._try_init(moved))
                record = await self.run(self.registry.update_config, name, stored)
                await self.node.changed()
                await self._drop_snapshots([current])
                committed = True
                return record
        finally:
            if not committed:
                for trial in trials:
                    await self._drop_trial(trial)

    async def publish(self, name: str, description: str = "") -> FunctionRecord:
        """Publish $LATEST as an immutable numbered version; returns it.

        A Python version's snapshot is captured for it (its version is part of what its
        init sees) before the node starts serving it.
        """
        record = await self.run(self.registry.publish, name, description)
        try:
            await self._capture(record)  # outside the node's lock: it runs user code
        except FireboxError as exc:  # the version exists: its pool load reports it again
            log.warning("publishing %s:%s: %s", name, record.version, exc.message)
        async with self.node.lock:
            await self.node.changed()
            return record

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
        async with self.node.lock:
            record = await self.run(
                lambda: self.registry.put_alias(
                    function, alias, str(version), routing, description, create=create
                )
            )
            await self.node.changed()
            return record

    async def delete_alias(self, function: str, alias: str) -> None:
        """Delete an alias; raises FunctionNotFound."""
        async with self.node.lock:
            await self.run(self.registry.delete_alias, function, alias)
            await self.node.changed()

    async def set_provisioned(self, function: str, qualifier: str, count: int) -> None:
        """Keep `count` instances ready for a version or alias of a function."""
        if count < 0:
            raise BadRequest(f"provisioned concurrency must be >= 0, got {count}")
        name, qualifier = parse_qualified(function, qualifier)
        resolved = self.catalog.resolve(name, qualifier)  # FunctionNotFound if missing
        cap = resolved.deployed.spec.concurrency
        if count > cap:
            raise BadRequest(
                f"provisioned concurrency {count} exceeds the function's concurrency cap {cap}"
            )
        async with self.node.lock:
            await self.run(self.registry.set_provisioned, name, qualifier, count)
            await self.node.changed()

    async def provisioned_status(self, function: str) -> dict[str, Any]:
        """Return per qualifier: configured provisioned concurrency and instances ready now."""
        await self.get(function)
        settings = dict(await self.run(self.catalog.provisioned_for, function))
        latest = await self.run(self.catalog.version, function, LATEST)
        settings.setdefault(LATEST, latest.spec.provisioned)
        pools = await self.node.pool_stats_by_key()
        out = {}
        for qualifier, count in sorted(settings.items()):
            # The alias's own version (not a weighted pick): that is what keeps instances.
            try:
                if qualifier == LATEST or qualifier.isdigit():
                    deployed = await self.run(self.catalog.version, function, qualifier)
                else:
                    alias = await self.run(self.catalog.alias, function, qualifier)
                    if alias is None:
                        continue
                    deployed = await self.run(self.catalog.version, function, alias.version)
            except FunctionNotFound:
                continue
            ready = pools.get(deployed.key, {}).get("ready", 0)
            out[qualifier] = {"requested": count, "ready": ready, "version": deployed.version}
        return out

    async def set_tags(self, function: str, tags: dict[str, str]) -> None:
        """Replace a function's tags."""
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
            raise BadRequest("tags must map strings to strings")
        await self.run(self.registry.set_tags, function, tags)

    async def delete(self, name: str) -> None:
        """Delete a function, its versions, aliases, pools and unreferenced artifacts."""
        async with self.node.lock:
            gone = await self.run(self.registry.delete, name)
            await self.run(self.node.async_invoker.configs.delete, name)
            await self.run(self.node.stores.lambda_meta.delete_function, name)
            await self.node.changed()
            await self.collect_garbage({d for r in gone for d in (r.digest, r.bundle_digest)})
            await self._drop_snapshots(gone)

    async def delete_version(self, name: str, version: str) -> None:
        """Delete one published version (not one an alias routes to); raises
        FunctionNotFound, or Conflict while an alias names the version."""
        async with self.node.lock:
            gone = await self.run(self.registry.delete_version, name, version)
            await self.run(self.node.async_invoker.configs.delete, name, version)
            await self.run(self.node.stores.lambda_meta.delete_function, name, version)
            await self.node.changed()
            await self.collect_garbage({gone.digest, gone.bundle_digest})
            await self._drop_snapshots([gone])

    async def collect_garbage(self, candidates: set[str | None]) -> None:
        """Delete candidate artifacts no version references; the interpreter stays."""
        keep = await self.run(self.registry.digests_in_use)
        for spec in self.node.held_specs():
            keep.update(spec.digests)
        for digests in self._in_flight:  # deploys between storing their code and the registry
            keep.update(d for d in digests if d)
        doomed = [d for d in candidates - keep if d]
        if doomed:
            await self.run(self._delete_artifacts, doomed)

    async def _drop_snapshots(self, records: list[FunctionRecord]) -> None:
        """Delete the snapshots of versions no longer served (a snapshot belongs to one
        function version: its name and version are in its key), unless still in use."""
        in_use = {spec.snapshot for spec in self.node.held_specs()}
        in_use.update(d.spec.snapshot for d in self.catalog.latest.values())
        keys = {self.catalog.deployed(r).spec.snapshot for r in records} - in_use
        doomed = [k for k in keys if k]
        if doomed:
            await self.run(self._delete_snapshots, doomed)

    def _delete_snapshots(self, keys: list[str]) -> None:
        for key in keys:
            self.node.forget_local(key)
            digest = self.prepare.forget_snapshot(key)
            if digest is not None:
                self._delete_artifacts([digest])

    def _delete_artifacts(self, digests: list[str]) -> None:
        for digest in digests:
            if not self.node.artifacts.is_component(digest):
                self.node.forget_local(digest)
                self.node.artifacts.delete(digest)
                if self.node.stores.blobs is not None:
                    self.node.stores.blobs.delete(digest)


def _init_failure(message: str, init_log: str, keep: int = 4096) -> str:
    """Return an init error's message, with the tail of what init printed or logged."""
    text = f"the function failed to initialize: {message}"
    if init_log.strip():
        text += "\ninit output:\n" + init_log[-keep:]
    return text


__all__ = ["ALIAS_RE", "UPDATABLE", "Functions"]
