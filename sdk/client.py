"""The Python clients of a firebox node's native API: `Client` and `AsyncClient` (SDK layer).

msgpack on the wire by default (payloads travel as bytes, no base64), JSON when
`use_msgpack=False`. Errors come back as the typed exceptions the server raised
(`firebox.runtime.errors`: FunctionNotFound, Throttled, InvalidManifest, ...), so
`except Throttled:` works across the network. A function's own failure is not raised:
it is `Invocation.error`.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
from firebox.runtime.config import FIREBOX_DATA_DIR, FIREBOX_ENDPOINT, default_data_dir
from firebox.runtime.credentials import (
    Credentials,
    bearer_token,
    credentials_path,
    read_env,
    read_file,
)
from firebox.runtime.errors import Unauthorized
from firebox.sdk.data import Buckets, Secrets, Tables, attach_data
from firebox.sdk.events import Events, Mappings, Queues, Schedules, Streams, attach
from firebox.sdk.operations import (
    AccessKey,
    Alias,
    Function,
    Invocation,
    KeyOperations,
    LogEntry,
    Op,
    Operations,
    raise_for,
)

__all__ = [
    "AccessKey",
    "Alias",
    "AsyncClient",
    "Client",
    "Function",
    "Invocation",
    "LogEntry",
    "find_credentials",
]


def find_credentials(data_dir: Path | None = None) -> Credentials:
    """Return credentials from the environment or the node's data dir, as the server finds them.

    Raises Unauthorized telling the user where credentials were looked for.
    """
    creds = read_env()
    if creds is not None:
        return creds
    folder = data_dir or Path(FIREBOX_DATA_DIR.get() or default_data_dir())
    path = credentials_path(folder)
    if path.exists():
        return read_file(path)
    raise Unauthorized(
        "no credentials: set FIREBOX_ACCESS_KEY_ID and FIREBOX_SECRET_ACCESS_KEY, or point"
        f" FIREBOX_DATA_DIR at the node's data dir (looked in {path})"
    )


def _settings(endpoint: str | None, credentials: Credentials | None) -> tuple[str, Credentials]:
    url = (endpoint or FIREBOX_ENDPOINT.get()).rstrip("/")
    return url, credentials or find_credentials()


def _build(path: str | Path) -> tuple[dict[str, Any], bytes]:
    from firebox.compiler.build import build_function

    built = build_function(Path(path))
    return built.manifest, built.code


class Client:
    """A synchronous client of one firebox node (thread-safe, like httpx.Client)."""

    queues: Queues
    streams: Streams
    mappings: Mappings
    schedules: Schedules
    events: Events
    tables: Tables
    buckets: Buckets
    secrets: Secrets

    def __init__(
        self,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        *,
        timeout: float = 120.0,
        use_msgpack: bool = True,
    ) -> None:
        self.endpoint, self.credentials = _settings(endpoint, credentials)
        self._http = httpx.Client(
            base_url=self.endpoint,
            timeout=timeout,
            headers={"Authorization": bearer_token(self.credentials)},
        )
        self._ops = Operations(self._http, use_msgpack)
        attach(self)  # .queues, .streams, .mappings, .schedules, .events
        attach_data(self)  # .tables, .buckets, .secrets

    def _run(self, op: Op) -> Any:
        request = next(op)
        while True:
            response = self._http.send(request)
            try:
                request = op.send(response)
            except StopIteration as done:
                return done.value

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Each method's docs are on Operations' twin; the behaviour is the same in AsyncClient.

    def deploy(
        self, manifest: dict[str, Any], code: bytes, tags: dict[str, str] | None = None
    ) -> Function:
        """Create a function or replace its $LATEST (manifest + wasm module or Python bundle)."""
        result: Function = self._run(self._ops.deploy(manifest, code, tags))
        return result

    def deploy_path(self, path: str | Path, tags: dict[str, str] | None = None) -> Function:
        """Build the function at `path` (folder with firebox.toml, or .wat/.wasm) and deploy it."""
        manifest, code = _build(path)
        return self.deploy(manifest, code, tags)

    def update_code(self, name: str, code: bytes) -> Function:
        """Replace $LATEST's code, keeping its configuration."""
        result: Function = self._run(self._ops.update_code(name, code))
        return result

    def update_config(self, name: str, **changes: Any) -> Function:
        """Change $LATEST's configuration (memory=, timeout=, environment=, concurrency=, ...)."""
        result: Function = self._run(self._ops.update_config(name, changes))
        return result

    def list(self, limit: int | None = None) -> builtins.list[Function]:
        """Return every function ($LATEST), following pagination."""
        result: builtins.list[Function] = self._run(self._ops.list(limit))
        return result

    def get(self, name: str) -> Function:
        """Return $LATEST with `extra` holding versions, aliases and the pool; raises FunctionNotFound."""
        result: Function = self._run(self._ops.get(name))
        return result

    def delete(self, name: str) -> None:
        """Delete a function with its versions and aliases; raises FunctionNotFound."""
        self._run(self._ops.delete(name))

    def set_tags(self, name: str, tags: dict[str, str]) -> Function:
        """Replace a function's tags."""
        result: Function = self._run(self._ops.set_tags(name, tags))
        return result

    def publish(self, name: str, description: str = "") -> Function:
        """Publish $LATEST as an immutable numbered version."""
        result: Function = self._run(self._ops.publish(name, description))
        return result

    def versions(self, name: str) -> builtins.list[Function]:
        """Return $LATEST and every published version."""
        result: builtins.list[Function] = self._run(self._ops.versions(name))
        return result

    def create_alias(
        self,
        name: str,
        alias: str,
        version: str | int,
        routing: dict[str, float] | None = None,
        description: str | None = None,
    ) -> Alias:
        """Create an alias; `routing={"3": 0.1}` sends 10% of its traffic to version 3."""
        result: Alias = self._run(
            self._ops.create_alias(name, alias, str(version), routing, description)
        )
        return result

    def update_alias(
        self, name: str, alias: str, version: str | int | None = None, routing: dict[str, float] | None = None,
        description: str | None = None,
    ) -> Alias:  # fmt: skip
        """Move an alias and/or change its routing (routing={} removes the split)."""
        result: Alias = self._run(
            self._ops.update_alias(
                name, alias, None if version is None else str(version), routing, description
            )
        )
        return result

    def get_alias(self, name: str, alias: str) -> Alias:
        """Return one alias; raises FunctionNotFound."""
        result: Alias = self._run(self._ops.get_alias(name, alias))
        return result

    def delete_alias(self, name: str, alias: str) -> None:
        """Delete an alias."""
        self._run(self._ops.delete_alias(name, alias))

    def aliases(self, name: str) -> builtins.list[Alias]:
        """Return a function's aliases."""
        result: builtins.list[Alias] = self._run(self._ops.aliases(name))
        return result

    def set_provisioned(self, name: str, count: int, qualifier: str = "$LATEST") -> dict[str, Any]:
        """Keep `count` instances ready for a version or alias; returns the provisioned status."""
        result: dict[str, Any] = self._run(self._ops.set_provisioned(name, count, qualifier))
        return result

    def provisioned(self, name: str) -> dict[str, Any]:
        """Return per qualifier the requested provisioned concurrency and the instances ready now."""
        result: dict[str, Any] = self._run(self._ops.provisioned(name))
        return result

    def invoke(
        self,
        name: str,
        event: Any = None,
        *,
        qualifier: str | None = None,
        export: str | None = None,
        tail: bool = False,
        invocation_type: str = "RequestResponse",
        idempotency_key: str | None = None,
    ) -> Invocation:
        """Invoke `name` (or `name:qualifier`) with a JSON-able event.

        Returns the result, or the function's error in `.error`, the log tail when
        `tail`, and the version that ran. `invocation_type="Event"` returns at once
        (202) with the request id; "DryRun" only checks. Raises the typed error for
        failures before the function ran (FunctionNotFound, Throttled, PayloadTooLarge, ...).
        """
        result: Invocation = self._run(
            self._ops.invoke(name, event, qualifier=qualifier, export=export, tail=tail,
                             invocation_type=invocation_type, idempotency_key=idempotency_key)
        )  # fmt: skip
        return result

    def logs(self, name: str | None, **query: Any) -> builtins.list[LogEntry]:
        """Return a function's logs (every function's when `name` is None): since=, until=
        (Unix seconds), request_id=, version=, limit=."""
        result: builtins.list[LogEntry] = self._run(self._ops.logs(name, query))
        return result

    def follow_logs(
        self, name: str | None, timeout: float = 3600.0, **query: Any
    ) -> Iterator[LogEntry]:
        """Yield a function's log records (every function's when `name` is None) as
        invocations happen, until `timeout` seconds."""
        params = {
            k: v for k, v in {**query, "follow": "1", "timeout": timeout}.items() if v is not None
        }
        path = f"/v1/functions/{name}/logs" if name else "/v1/logs"
        with self._http.stream("GET", path, params=params, timeout=timeout + 30) as response:
            if response.status_code >= 400:
                response.read()
                raise_for(response)
            for line in response.iter_lines():
                if line.strip():
                    yield LogEntry(**json.loads(line))

    def usage(self, name: str | None = None, since: float | None = None, until: float | None = None,
              records: bool = False) -> dict[str, Any]:  # fmt: skip
        """Return usage aggregates per function over a window (and the raw records if asked)."""
        result: dict[str, Any] = self._run(self._ops.usage(name, since, until, records))
        return result

    def node(self) -> dict[str, Any]:
        """Return node statistics (workers, compiled cache, restarts, registry)."""
        result: dict[str, Any] = self._run(self._ops.node())
        return result

    # --- access keys (admin only) -------------------------------------------------------

    def create_key(self, description: str = "") -> AccessKey:
        """Issue a new access key; its secret is in the result and nowhere else. Admin only."""
        result: AccessKey = self._run(KeyOperations(self._ops).create(description))
        return result

    def list_keys(self) -> builtins.list[AccessKey]:
        """Return the admin key and every issued key (revoked ones too), without secrets."""
        result: builtins.list[AccessKey] = self._run(KeyOperations(self._ops).list())
        return result

    def revoke_key(self, key_id: str) -> None:
        """Revoke an issued key; an unknown id raises the server's KeyNotFound (404)."""
        self._run(KeyOperations(self._ops).revoke(key_id))


class AsyncClient:
    """An asyncio client of one firebox node; the same operations as `Client`, awaited."""

    queues: Queues
    streams: Streams
    mappings: Mappings
    schedules: Schedules
    events: Events
    tables: Tables
    buckets: Buckets
    secrets: Secrets

    def __init__(
        self,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        *,
        timeout: float = 120.0,
        use_msgpack: bool = True,
    ) -> None:
        self.endpoint, self.credentials = _settings(endpoint, credentials)
        self._http = httpx.AsyncClient(
            base_url=self.endpoint,
            timeout=timeout,
            headers={"Authorization": bearer_token(self.credentials)},
        )
        self._ops = Operations(self._http, use_msgpack)
        attach(self)  # .queues, .streams, .mappings, .schedules, .events
        attach_data(self)  # .tables, .buckets, .secrets

    async def _run(self, op: Op) -> Any:
        request = next(op)
        while True:
            response = await self._http.send(request)
            try:
                request = op.send(response)
            except StopIteration as done:
                return done.value

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def deploy(
        self, manifest: dict[str, Any], code: bytes, tags: dict[str, str] | None = None
    ) -> Function:
        """See Client.deploy."""
        result: Function = await self._run(self._ops.deploy(manifest, code, tags))
        return result

    async def deploy_path(self, path: str | Path, tags: dict[str, str] | None = None) -> Function:
        """See Client.deploy_path."""
        manifest, code = _build(path)
        return await self.deploy(manifest, code, tags)

    async def update_code(self, name: str, code: bytes) -> Function:
        """See Client.update_code."""
        result: Function = await self._run(self._ops.update_code(name, code))
        return result

    async def update_config(self, name: str, **changes: Any) -> Function:
        """See Client.update_config."""
        result: Function = await self._run(self._ops.update_config(name, changes))
        return result

    async def list(self, limit: int | None = None) -> builtins.list[Function]:
        """See Client.list."""
        result: builtins.list[Function] = await self._run(self._ops.list(limit))
        return result

    async def get(self, name: str) -> Function:
        """See Client.get."""
        result: Function = await self._run(self._ops.get(name))
        return result

    async def delete(self, name: str) -> None:
        """See Client.delete."""
        await self._run(self._ops.delete(name))

    async def set_tags(self, name: str, tags: dict[str, str]) -> Function:
        """See Client.set_tags."""
        result: Function = await self._run(self._ops.set_tags(name, tags))
        return result

    async def get_alias(self, name: str, alias: str) -> Alias:
        """See Client.get_alias."""
        result: Alias = await self._run(self._ops.get_alias(name, alias))
        return result

    async def publish(self, name: str, description: str = "") -> Function:
        """See Client.publish."""
        result: Function = await self._run(self._ops.publish(name, description))
        return result

    async def versions(self, name: str) -> builtins.list[Function]:
        """See Client.versions."""
        result: builtins.list[Function] = await self._run(self._ops.versions(name))
        return result

    async def create_alias(
        self,
        name: str,
        alias: str,
        version: str | int,
        routing: dict[str, float] | None = None,
        description: str | None = None,
    ) -> Alias:
        """See Client.create_alias."""
        result: Alias = await self._run(
            self._ops.create_alias(name, alias, str(version), routing, description)
        )
        return result

    async def update_alias(
        self, name: str, alias: str, version: str | int | None = None, routing: dict[str, float] | None = None,
        description: str | None = None,
    ) -> Alias:  # fmt: skip
        """See Client.update_alias."""
        result: Alias = await self._run(
            self._ops.update_alias(
                name, alias, None if version is None else str(version), routing, description
            )
        )
        return result

    async def delete_alias(self, name: str, alias: str) -> None:
        """See Client.delete_alias."""
        await self._run(self._ops.delete_alias(name, alias))

    async def aliases(self, name: str) -> builtins.list[Alias]:
        """See Client.aliases."""
        result: builtins.list[Alias] = await self._run(self._ops.aliases(name))
        return result

    async def set_provisioned(
        self, name: str, count: int, qualifier: str = "$LATEST"
    ) -> dict[str, Any]:
        """See Client.set_provisioned."""
        result: dict[str, Any] = await self._run(self._ops.set_provisioned(name, count, qualifier))
        return result

    async def provisioned(self, name: str) -> dict[str, Any]:
        """See Client.provisioned."""
        result: dict[str, Any] = await self._run(self._ops.provisioned(name))
        return result

    async def invoke(
        self,
        name: str,
        event: Any = None,
        *,
        qualifier: str | None = None,
        export: str | None = None,
        tail: bool = False,
        invocation_type: str = "RequestResponse",
        idempotency_key: str | None = None,
    ) -> Invocation:
        """See Client.invoke."""
        result: Invocation = await self._run(
            self._ops.invoke(name, event, qualifier=qualifier, export=export, tail=tail,
                             invocation_type=invocation_type, idempotency_key=idempotency_key)
        )  # fmt: skip
        return result

    async def logs(self, name: str, **query: Any) -> builtins.list[LogEntry]:
        """See Client.logs."""
        result: builtins.list[LogEntry] = await self._run(self._ops.logs(name, query))
        return result

    async def follow_logs(
        self, name: str, timeout: float = 3600.0, **query: Any
    ) -> AsyncIterator[LogEntry]:
        """See Client.follow_logs."""
        params = {
            k: v for k, v in {**query, "follow": "1", "timeout": timeout}.items() if v is not None
        }
        async with self._http.stream(
            "GET", f"/v1/functions/{name}/logs", params=params, timeout=timeout + 30
        ) as response:
            if response.status_code >= 400:
                await response.aread()
                raise_for(response)
            async for line in response.aiter_lines():
                if line.strip():
                    yield LogEntry(**json.loads(line))

    async def usage(self, name: str | None = None, since: float | None = None, until: float | None = None,
                    records: bool = False) -> dict[str, Any]:  # fmt: skip
        """See Client.usage."""
        result: dict[str, Any] = await self._run(self._ops.usage(name, since, until, records))
        return result

    async def node(self) -> dict[str, Any]:
        """See Client.node."""
        result: dict[str, Any] = await self._run(self._ops.node())
        return result

    # --- access keys (admin only) -------------------------------------------------------

    async def create_key(self, description: str = "") -> AccessKey:
        """See Client.create_key."""
        result: AccessKey = await self._run(KeyOperations(self._ops).create(description))
        return result

    async def list_keys(self) -> builtins.list[AccessKey]:
        """See Client.list_keys."""
        result: builtins.list[AccessKey] = await self._run(KeyOperations(self._ops).list())
        return result

    async def revoke_key(self, key_id: str) -> None:
        """See Client.revoke_key."""
        await self._run(KeyOperations(self._ops).revoke(key_id))
