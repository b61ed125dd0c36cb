"""Every native-API operation, written once as a generator of HTTP requests (SDK layer).

Each operation yields an `httpx.Request`, receives the `httpx.Response`, and returns a
typed result; `Client` drives it synchronously and `AsyncClient` asynchronously, so the
two clients share one implementation of the protocol.
"""

from __future__ import annotations

import base64
import builtins
import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
from firebox.runtime.errors import FireboxError, error_from_dict

MSGPACK = "application/msgpack"

Op = Generator[httpx.Request, httpx.Response, Any]


@dataclass
class Function:
    """One version of a function ($LATEST or a published number)."""

    name: str
    version: str
    revision: int
    runtime: str
    digest: str
    description: str
    config: dict[str, Any]
    tags: dict[str, str]
    created_at: float
    updated_at: float
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Function:
        """Build from the API's description (unknown keys land in `extra`)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "extra"}
        return cls(
            **known, extra={k: v for k, v in data.items() if k not in cls.__dataclass_fields__}
        )


@dataclass
class Alias:
    """A named pointer at a version, with optional weighted routing."""

    function: str
    name: str
    version: str
    routing: dict[str, float]
    description: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Alias:
        """Build from the API's description."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class LogEntry:
    """One invocation's log, framed by START/END/REPORT lines."""

    id: int
    function: str
    version: str
    request_id: str
    ts: float
    text: str


@dataclass
class Invocation:
    """The outcome of one invocation: the result (or the function's error), log tail, version."""

    request_id: str
    version: str
    status_code: int = 200
    payload: Any = None
    raw: bytes = b""
    error: FireboxError | None = None
    log: str = ""
    warm: bool = False
    duration_ms: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if the function returned without error."""
        return self.error is None


def raise_for(response: httpx.Response) -> None:
    """Raise the typed FireboxError an error response carries (nothing for 2xx/3xx)."""
    if response.status_code < 400:
        return
    try:
        body = decode(response)
        err = body["error"]
    except Exception:
        raise FireboxError(f"HTTP {response.status_code}: {response.text[:200]}") from None
    error = error_from_dict(err)
    retry_after = response.headers.get("retry-after", "")
    if retry_after.isdigit():
        error.retry_after = float(retry_after)  # type: ignore[attr-defined]
    raise error


def decode(response: httpx.Response) -> Any:
    """Decode a msgpack or JSON response body (None when empty)."""
    if not response.content:
        return None
    if "msgpack" in response.headers.get("content-type", ""):
        return msgpack.unpackb(response.content, raw=False)
    return response.json()


class Operations:
    """Builds requests for one node; `use_msgpack` picks the wire encoding of bodies."""

    def __init__(self, http: httpx.Client | httpx.AsyncClient, use_msgpack: bool = True) -> None:
        self.http = http
        self.use_msgpack = use_msgpack

    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Request:
        """Return a request with the body encoded and the matching Accept header."""
        headers = {
            "Accept": MSGPACK if self.use_msgpack else "application/json",
            **kw.pop("headers", {}),
        }
        content = None
        if body is not None:
            if self.use_msgpack:
                content = msgpack.packb(body, use_bin_type=True)
                headers["Content-Type"] = MSGPACK
            else:
                content = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        return self.http.build_request(method, path, content=content, headers=headers, **kw)

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Op:
        """Send one request and return its decoded body; raises the server's typed error."""
        response = yield self.request(method, path, body, **kw)
        raise_for(response)
        return decode(response)

    def _code_body(self, code: bytes) -> dict[str, Any]:
        return (
            {"code": code} if self.use_msgpack else {"code_base64": base64.b64encode(code).decode()}
        )

    # --- functions --------------------------------------------------------------------

    def deploy(
        self, manifest: dict[str, Any], code: bytes, tags: dict[str, str] | None = None
    ) -> Op:
        body = {"manifest": manifest, **self._code_body(code)}
        if tags is not None:
            body["tags"] = tags
        return Function.from_wire((yield from self.call("POST", "/v1/functions", body)))

    def update_code(self, name: str, code: bytes) -> Op:
        return Function.from_wire(
            (yield from self.call("PUT", f"/v1/functions/{name}/code", self._code_body(code)))
        )

    def update_config(self, name: str, changes: dict[str, Any]) -> Op:
        return Function.from_wire(
            (yield from self.call("PATCH", f"/v1/functions/{name}/configuration", changes))
        )

    def list(self, limit: int | None = None) -> Op:
        functions: builtins.list[Function] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if after:
                params["after"] = after
            page = yield from self.call("GET", "/v1/functions", params=params)
            functions += [Function.from_wire(f) for f in page["functions"]]
            after = page.get("next")
            if not after or (limit is not None and len(functions) >= limit):
                return functions[:limit] if limit is not None else functions

    def get(self, name: str) -> Op:
        return Function.from_wire((yield from self.call("GET", f"/v1/functions/{name}")))

    def delete(self, name: str) -> Op:
        yield from self.call("DELETE", f"/v1/functions/{name}")

    def set_tags(self, name: str, tags: dict[str, str]) -> Op:
        return Function.from_wire(
            (yield from self.call("PUT", f"/v1/functions/{name}/tags", {"tags": tags}))
        )

    # --- versions and aliases -----------------------------------------------------------

    def publish(self, name: str, description: str = "") -> Op:
        return Function.from_wire(
            (
                yield from self.call(
                    "POST", f"/v1/functions/{name}/versions", {"description": description}
                )
            )
        )

    def versions(self, name: str) -> Op:
        data = yield from self.call("GET", f"/v1/functions/{name}/versions")
        return [Function.from_wire(v) for v in data["versions"]]

    def create_alias(
        self,
        name: str,
        alias: str,
        version: str,
        routing: dict[str, float] | None,
        description: str | None,
    ) -> Op:
        body: dict[str, Any] = {"name": alias, "version": str(version)}
        if routing is not None:
            body["routing"] = routing
        if description is not None:
            body["description"] = description
        return Alias.from_wire(
            (yield from self.call("POST", f"/v1/functions/{name}/aliases", body))
        )

    def update_alias(
        self,
        name: str,
        alias: str,
        version: str | None,
        routing: dict[str, float] | None,
        description: str | None,
    ) -> Op:
        body: dict[str, Any] = {}
        if version is not None:
            body["version"] = str(version)
        if routing is not None:
            body["routing"] = routing
        if description is not None:
            body["description"] = description
        return Alias.from_wire(
            (yield from self.call("PUT", f"/v1/functions/{name}/aliases/{alias}", body))
        )

    def get_alias(self, name: str, alias: str) -> Op:
        return Alias.from_wire(
            (yield from self.call("GET", f"/v1/functions/{name}/aliases/{alias}"))
        )

    def delete_alias(self, name: str, alias: str) -> Op:
        yield from self.call("DELETE", f"/v1/functions/{name}/aliases/{alias}")

    def aliases(self, name: str) -> Op:
        data = yield from self.call("GET", f"/v1/functions/{name}/aliases")
        return [Alias.from_wire(a) for a in data["aliases"]]

    def set_provisioned(self, name: str, count: int, qualifier: str) -> Op:
        body = {"count": count, "qualifier": qualifier}
        return (yield from self.call("PUT", f"/v1/functions/{name}/provisioned", body))[
            "provisioned"
        ]

    def provisioned(self, name: str) -> Op:
        return (yield from self.call("GET", f"/v1/functions/{name}/provisioned"))["provisioned"]

    # --- invoke, logs, usage ------------------------------------------------------------

    def invoke(
        self,
        name: str,
        event: Any,
        *,
        qualifier: str | None,
        export: str | None,
        tail: bool,
        invocation_type: str,
        idempotency_key: str | None,
    ) -> Op:
        params = {k: v for k, v in {"qualifier": qualifier, "export": export}.items() if v}
        if tail:
            params["log"] = "tail"
        headers = {"X-Firebox-Invocation-Type": invocation_type}
        if idempotency_key:
            headers["X-Firebox-Idempotency-Key"] = idempotency_key
        request = self.request("POST", f"/v1/functions/{name}/invoke", {} if event is None else event,
                               params=params, headers=headers)  # fmt: skip
        response = yield request
        h = response.headers
        invocation = Invocation(
            request_id=h.get("x-firebox-request-id", ""),
            version=h.get("x-firebox-executed-version", ""),
            status_code=response.status_code,
            raw=response.content,
            warm=h.get("x-firebox-warm") == "true",
            duration_ms=float(h.get("x-firebox-duration-ms", 0) or 0),
            headers=dict(h),
        )
        if "x-firebox-log-result" in h:
            invocation.log = base64.b64decode(h["x-firebox-log-result"]).decode("utf-8", "replace")
        if "x-firebox-function-error" in h:
            try:
                raise_for(response)
            except FireboxError as exc:
                invocation.error = exc
            return invocation
        raise_for(response)
        if response.status_code == 202:
            invocation.request_id = decode(response)["request_id"]
        elif response.status_code != 204:
            try:
                invocation.payload = decode(response)
            except ValueError:
                invocation.payload = response.content
        return invocation

    def logs(self, name: str | None, query: dict[str, Any]) -> Op:
        params = {k: v for k, v in query.items() if v is not None}
        path = f"/v1/functions/{name}/logs" if name else "/v1/logs"
        data = yield from self.call("GET", path, params=params)
        return [LogEntry(**r) for r in data["logs"]]

    def usage(
        self, name: str | None, since: float | None, until: float | None, records: bool
    ) -> Op:
        params: dict[str, Any] = {
            k: v for k, v in {"since": since, "until": until}.items() if v is not None
        }
        if records:
            params["records"] = "1"
        path = f"/v1/functions/{name}/usage" if name else "/v1/usage"
        return (yield from self.call("GET", path, params=params))

    def node(self) -> Op:
        return (yield from self.call("GET", "/v1/node"))


# --- access keys (admin only) -----------------------------------------------------------


@dataclass
class AccessKey:
    """An access key of the node; `secret_access_key` is only known right after creation."""

    access_key_id: str
    description: str = ""
    created_at: float | None = None
    revoked_at: float | None = None
    admin: bool = False
    secret_access_key: str | None = None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> AccessKey:
        """Build from the API's description."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


class KeyOperations:
    """The /v1/keys operations, built on an Operations instance (admin credentials needed)."""

    def __init__(self, ops: Operations) -> None:
        self.ops = ops

    def create(self, description: str = "") -> Op:
        data = yield from self.ops.call("POST", "/v1/keys", {"description": description})
        return AccessKey.from_wire(data)

    def list(self) -> Op:
        data = yield from self.ops.call("GET", "/v1/keys")
        return [AccessKey.from_wire(k) for k in data["keys"]]

    def revoke(self, key_id: str) -> Op:
        yield from self.ops.call("DELETE", f"/v1/keys/{key_id}")
