"""SDK sub-clients for the data functions are granted: key-value tables, blob buckets and
secrets (SDK layer).

Reached as `client.tables`, `client.buckets` and `client.secrets` on both `Client` and
`AsyncClient` (each method returns its result, or an awaitable of it on the async
client), so data can be seeded before a function runs and inspected after. Object
bodies are bytes.
"""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from firebox.sdk.events import _Part
from firebox.sdk.operations import Op, decode, raise_for


def _key(key: str) -> str:
    return quote(key, safe="")


def _page(prefix: str, limit: int | None, cursor: str | None) -> dict[str, Any]:
    """The query of one page of a listing: a key prefix, at most `limit`, after `cursor`."""
    params: dict[str, Any] = {"prefix": prefix}
    if limit is not None:
        params["limit"] = limit
    if cursor:
        params["cursor"] = cursor
    return params


class Tables(_Part):
    """Key-value tables: get, put (conditional, TTL), delete, and pages of items."""

    def list(self) -> Any:
        """Return every table holding items: [{name, items}]."""
        return self._then(self._ops.call("GET", "/v1/tables"), lambda d: d["tables"])

    def get(self, table: str, key: str) -> Any:
        """Return the item {key, value, version, expires_at}; raises ItemNotFound."""
        return self._call("GET", f"/v1/tables/{table}/items/{_key(key)}")

    def put(
        self,
        table: str,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        if_absent: bool = False,
        if_version: int | None = None,
    ) -> Any:
        """Store `value` (JSON) at `key`; return the new item; raises ConditionFailed."""
        body: dict[str, Any] = {"value": value, "if_absent": if_absent}
        if ttl is not None:
            body["ttl"] = ttl
        if if_version is not None:
            body["if_version"] = if_version
        return self._call("PUT", f"/v1/tables/{table}/items/{_key(key)}", body)

    def delete(self, table: str, key: str) -> Any:
        """Remove `key`; raises ItemNotFound when it is not there."""
        return self._call("DELETE", f"/v1/tables/{table}/items/{_key(key)}")

    def query(
        self, table: str, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Any:
        """Return one page {items, cursor} of items whose key starts with `prefix`."""
        return self._call("GET", f"/v1/tables/{table}/items", params=_page(prefix, limit, cursor))

    def stream(self, table: str) -> Any:
        """Return the table's change stream {table, enabled, view_type?, stream_arn?, source?}."""
        return self._call("GET", f"/v1/tables/{table}/stream")

    def enable_stream(self, table: str, view_type: str = "NEW_AND_OLD_IMAGES") -> Any:
        """Turn on the table's change stream (DynamoDB Streams records; a mapping from
        `table:NAME` consumes it); return it."""
        return self._call("PUT", f"/v1/tables/{table}/stream", {"view_type": view_type})

    def disable_stream(self, table: str) -> Any:
        """Turn the table's change stream off."""
        return self._call("DELETE", f"/v1/tables/{table}/stream")


class Buckets(_Part):
    """Blob buckets: put, get (with a byte range), head, delete, and pages of objects."""

    def list(self) -> Any:
        """Return every bucket holding objects: [{name, objects, bytes}]."""
        return self._then(self._ops.call("GET", "/v1/buckets"), lambda d: d["buckets"])

    def put(self, bucket: str, key: str, data: bytes | str, content_type: str | None = None) -> Any:
        """Store `data` at `key`; return its metadata {key, size, etag, content_type, ...}."""
        raw = data.encode() if isinstance(data, str) else data
        headers = {"Content-Type": content_type or "application/octet-stream"}
        ops = self._ops

        def op() -> Op:
            response = yield ops.http.build_request(
                "PUT", f"/v1/buckets/{bucket}/objects/{_key(key)}", content=raw,
                headers={**headers, "Accept": "application/json"},
            )  # fmt: skip
            raise_for(response)
            return decode(response)

        return self._run(op())

    def get(
        self, bucket: str, key: str, *, start: int | None = None, end: int | None = None
    ) -> Any:
        """Return the object's bytes (`[start, end)` when given); raises ItemNotFound."""
        headers: dict[str, str] = {}
        if start is not None or end is not None:
            last = "" if end is None else str(end - 1)
            headers["Range"] = f"bytes={start or 0}-{last}"
        ops = self._ops

        def op() -> Op:
            response = yield ops.http.build_request(
                "GET", f"/v1/buckets/{bucket}/objects/{_key(key)}", headers=headers
            )
            raise_for(response)
            return response.content

        return self._run(op())

    def head(self, bucket: str, key: str) -> Any:
        """Return {size, etag, content_type} of an object, or None when there is none."""
        ops = self._ops

        def op() -> Op:
            response = yield ops.http.build_request(
                "HEAD", f"/v1/buckets/{bucket}/objects/{_key(key)}"
            )
            if response.status_code == 404:
                return None
            raise_for(response)
            return {
                "size": int(response.headers.get("x-firebox-size", "0")),
                "etag": response.headers.get("etag", "").strip('"'),
                "content_type": response.headers.get("content-type", ""),
            }

        return self._run(op())

    def delete(self, bucket: str, key: str) -> Any:
        """Remove an object; raises ItemNotFound when it is not there."""
        return self._call("DELETE", f"/v1/buckets/{bucket}/objects/{_key(key)}")

    def objects(
        self, bucket: str, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Any:
        """Return one page {objects, cursor} of objects whose key starts with `prefix`."""
        return self._call(
            "GET", f"/v1/buckets/{bucket}/objects", params=_page(prefix, limit, cursor)
        )

    def notifications(self, bucket: str) -> Any:
        """Return the bucket's notifications {functions: [...], queues: [...]}."""
        return self._call("GET", f"/v1/buckets/{bucket}/notifications")

    def set_notifications(
        self,
        bucket: str,
        functions: builtins.list[dict[str, Any]] | None = None,
        queues: builtins.list[dict[str, Any]] | None = None,
    ) -> Any:
        """Replace the bucket's notifications: entries {function|queue, events?, prefix?,
        suffix?, id?} (S3's event notifications); none removes them. Returns them."""
        body: dict[str, Any] = {"functions": functions or [], "queues": queues or []}
        return self._call("PUT", f"/v1/buckets/{bucket}/notifications", body)


class Secrets(_Part):
    """Secrets: set (or rotate) and delete values, list their names; values never come back."""

    def set(self, name: str, value: str) -> Any:
        """Set or rotate secret `name`; return {name, version, updated_at}."""
        return self._call("PUT", f"/v1/secrets/{_key(name)}", {"value": value})

    def list(self) -> Any:
        """Return every secret's {name, version, updated_at}."""
        return self._then(self._ops.call("GET", "/v1/secrets"), lambda d: d["secrets"])

    def info(self, name: str) -> Any:
        """Return {name, version, updated_at}; raises ItemNotFound."""
        return self._call("GET", f"/v1/secrets/{_key(name)}")

    def delete(self, name: str) -> Any:
        """Remove secret `name`; raises ItemNotFound."""
        return self._call("DELETE", f"/v1/secrets/{_key(name)}")


def attach_data(client: Any) -> None:
    """Give a Client or AsyncClient its `tables`, `buckets` and `secrets` sub-clients."""
    client.tables = Tables(client._run, client._ops)
    client.buckets = Buckets(client._run, client._ops)
    client.secrets = Secrets(client._run, client._ops)


__all__ = ["Buckets", "Secrets", "Tables", "attach_data"]
