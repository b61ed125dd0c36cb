"""SDK sub-clients for event-driven invocation: queues, streams, event source mappings,
schedules and event-invoke configs (SDK layer).

Reached as `client.queues`, `client.streams`, `client.mappings`, `client.schedules` and
`client.events` on both `Client` and `AsyncClient`: each method returns its result, or
an awaitable of it on the async client. Bodies are bytes (text is encoded as UTF-8).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firebox.sdk.operations import Op, Operations


@dataclass
class QueueMessage:
    """One received delivery of a queue message."""

    id: str
    body: bytes
    receipt_handle: str
    receive_count: int
    sent_at: float
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamRecord:
    """One record read from a stream shard."""

    sequence_number: str
    partition_key: str
    data: bytes
    arrival_ts: float


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _body(item: dict[str, Any], key: str) -> bytes:
    import base64

    if key in item:
        return _as_bytes(item[key])
    return base64.b64decode(item[f"{key}_base64"])


class _Part:
    def __init__(self, run: Callable[[Op], Any], ops: Operations) -> None:
        self._run = run
        self._ops = ops

    def _call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        return self._run(self._ops.call(method, path, body, **kw))

    def _then(self, op: Op, convert: Callable[[Any], Any]) -> Any:
        def wrapped() -> Op:
            return convert((yield from op))

        return self._run(wrapped())


class Queues(_Part):
    """SQS-like queues: create, send, receive with visibility timeouts, delete, purge, stats."""

    def create(self, name: str, **attributes: Any) -> Any:
        """Create a queue (visibility_timeout_s, max_receive_count + dead_letter_queue, delay_s, ...)."""
        return self._call("POST", "/v1/queues", {"name": name, **attributes})

    def list(self, prefix: str = "") -> Any:
        """Return the queue names (internal ones start with `firebox-`)."""
        return self._then(
            self._ops.call("GET", "/v1/queues", params={"prefix": prefix}), lambda d: d["queues"]
        )

    def get(self, name: str) -> Any:
        """Return a queue's attributes and stats (depth, in_flight, oldest_age_s, dead_lettered, ...)."""
        return self._call("GET", f"/v1/queues/{name}")

    def delete(self, name: str) -> Any:
        """Delete a queue and its messages."""
        return self._call("DELETE", f"/v1/queues/{name}")

    def purge(self, name: str) -> Any:
        """Delete every message of a queue."""
        return self._call("POST", f"/v1/queues/{name}/purge")

    def send(self, name: str, body: bytes | str, *, attributes: dict[str, str] | None = None,
             delay_s: float | None = None, dedup_id: str | None = None) -> Any:  # fmt: skip
        """Send one message; returns its id (a repeated dedup_id within 5 minutes is sent once)."""
        message: dict[str, Any] = {"body": _as_bytes(body)}
        for key, value in (
            ("attributes", attributes),
            ("delay_s", delay_s),
            ("dedup_id", dedup_id),
        ):
            if value is not None:
                message[key] = value
        return self._then(
            self._ops.call("POST", f"/v1/queues/{name}/messages", message),
            lambda d: d["message_id"],
        )

    def send_batch(self, name: str, bodies: builtins.list[bytes | str]) -> Any:
        """Send up to 10 messages; returns their ids."""
        entries = [{"body": _as_bytes(b)} for b in bodies]
        return self._then(
            self._ops.call("POST", f"/v1/queues/{name}/messages", {"entries": entries}),
            lambda d: d["message_ids"],
        )

    def receive(self, name: str, max_messages: int = 1, visibility_timeout_s: float | None = None,
                wait_s: float = 0.0) -> Any:  # fmt: skip
        """Receive up to `max_messages` (1-10), waiting up to `wait_s`; returns QueueMessages."""
        body: dict[str, Any] = {"max_messages": max_messages, "wait_s": wait_s}
        if visibility_timeout_s is not None:
            body["visibility_timeout_s"] = visibility_timeout_s

        def convert(data: Any) -> builtins.list[QueueMessage]:
            return [
                QueueMessage(m["id"], _body(m, "body"), m["receipt_handle"], m["receive_count"], m["sent_at"],
                             m.get("attributes") or {})
                for m in data["messages"]
            ]  # fmt: skip

        return self._then(self._ops.call("POST", f"/v1/queues/{name}/receive", body), convert)

    def delete_messages(self, name: str, receipt_handles: builtins.list[str]) -> Any:
        """Delete received messages; returns, per handle, whether it was deleted (stale ones are not)."""
        body = {"receipt_handles": receipt_handles}
        return self._then(
            self._ops.call("POST", f"/v1/queues/{name}/delete", body), lambda d: d["deleted"]
        )

    def change_visibility(self, name: str, receipt_handle: str, timeout_s: float) -> Any:
        """Make a received message visible again after `timeout_s` (0: at once)."""
        body = {"receipt_handle": receipt_handle, "timeout_s": timeout_s}
        return self._then(
            self._ops.call("POST", f"/v1/queues/{name}/visibility", body), lambda d: d["changed"]
        )


class Streams(_Part):
    """Kinesis-like streams: partitioned by key, ordered per shard, read by position."""

    def create(self, name: str, shards: int = 1, retention_s: float | None = None) -> Any:
        """Create a stream with `shards` shards."""
        body: dict[str, Any] = {"name": name, "shards": shards}
        if retention_s is not None:
            body["retention_s"] = retention_s
        return self._call("POST", "/v1/streams", body)

    def list(self) -> Any:
        """Return the stream names."""
        return self._then(self._ops.call("GET", "/v1/streams"), lambda d: d["streams"])

    def get(self, name: str) -> Any:
        """Return a stream's shard count and retention."""
        return self._call("GET", f"/v1/streams/{name}")

    def delete(self, name: str) -> Any:
        """Delete a stream."""
        return self._call("DELETE", f"/v1/streams/{name}")

    def put(self, name: str, partition_key: str, data: bytes | str) -> Any:
        """Append a record; returns {shard_id, sequence_number}."""
        return self._call(
            "POST",
            f"/v1/streams/{name}/records",
            {"partition_key": partition_key, "data": _as_bytes(data)},
        )

    def put_batch(self, name: str, records: builtins.list[tuple[str, bytes | str]]) -> Any:
        """Append up to 500 (partition_key, data) records; returns where each landed."""
        body = {"records": [{"partition_key": k, "data": _as_bytes(d)} for k, d in records]}
        return self._then(
            self._ops.call("POST", f"/v1/streams/{name}/records", body), lambda d: d["records"]
        )

    def read(self, name: str, shard_id: str, after: str | None = None, limit: int = 100) -> Any:
        """Return records of a shard after a sequence number (from the oldest when None)."""
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after

        def convert(data: Any) -> builtins.list[StreamRecord]:
            return [
                StreamRecord(
                    r["sequence_number"], r["partition_key"], _body(r, "data"), r["arrival_ts"]
                )
                for r in data["records"]
            ]

        return self._then(
            self._ops.call("GET", f"/v1/streams/{name}/shards/{shard_id}/records", params=params),
            convert,
        )


class Mappings(_Part):
    """Event source mappings: a queue or stream feeding a function in batches."""

    def create(self, function: str, source: str, **config: Any) -> Any:
        """Create a mapping; `source` is "queue:NAME" or "stream:NAME"; config as Lambda's
        (batch_size, maximum_batching_window_s, function_response_types, ...)."""
        return self._call(
            "POST", "/v1/event-source-mappings", {"function": function, "source": source, **config}
        )

    def list(self, function: str | None = None) -> Any:
        """Return the mappings (of one function if given)."""
        params = {"function": function} if function else {}
        return self._call("GET", "/v1/event-source-mappings", params=params)

    def get(self, mapping_id: str) -> Any:
        """Return one mapping with its state and counters."""
        return self._call("GET", f"/v1/event-source-mappings/{mapping_id}")

    def update(self, mapping_id: str, **changes: Any) -> Any:
        """Change a mapping (enabled=False pauses it)."""
        return self._call("PATCH", f"/v1/event-source-mappings/{mapping_id}", changes)

    def delete(self, mapping_id: str) -> Any:
        """Delete a mapping."""
        return self._call("DELETE", f"/v1/event-source-mappings/{mapping_id}")


class Schedules(_Part):
    """rate(...) and cron(...) schedules that invoke functions."""

    def create(self, name: str, function: str, expression: str, **options: Any) -> Any:
        """Create a schedule (options: qualifier, payload, catch_up "skip" | "once", enabled)."""
        body = {"name": name, "function": function, "expression": expression, **options}
        return self._call("POST", "/v1/schedules", body)

    def list(self) -> Any:
        """Return every schedule."""
        return self._call("GET", "/v1/schedules")

    def get(self, name: str) -> Any:
        """Return one schedule with its next fire time."""
        return self._call("GET", f"/v1/schedules/{name}")

    def update(self, name: str, **changes: Any) -> Any:
        """Change a schedule."""
        return self._call("PATCH", f"/v1/schedules/{name}", changes)

    def delete(self, name: str) -> Any:
        """Delete a schedule."""
        return self._call("DELETE", f"/v1/schedules/{name}")


class Events(_Part):
    """Event-invoke configuration of functions and event metrics."""

    def put_config(self, function: str, qualifier: str = "$LATEST", **config: Any) -> Any:
        """Set retries, maximum event age, on_success/on_failure destinations, dead_letter_queue."""
        return self._call(
            "PUT",
            f"/v1/functions/{function}/event-invoke-config",
            config,
            params={"qualifier": qualifier},
        )

    def get_config(self, function: str, qualifier: str = "$LATEST") -> Any:
        """Return a function's event-invoke configuration (the defaults if none is set)."""
        return self._call(
            "GET", f"/v1/functions/{function}/event-invoke-config", params={"qualifier": qualifier}
        )

    def metrics(self) -> Any:
        """Return async-invocation counters and every queue's stats."""
        return self._call("GET", "/v1/events/metrics")


def attach(client: Any) -> None:
    """Give a Client or AsyncClient its event sub-clients."""
    client.queues = Queues(client._run, client._ops)
    client.streams = Streams(client._run, client._ops)
    client.mappings = Mappings(client._run, client._ops)
    client.schedules = Schedules(client._run, client._ops)
    client.events = Events(client._run, client._ops)
