"""Change capture for buckets and tables: what a write must announce, written in the
write's own transaction (storage layer).

A bucket's notification configuration (Lambda's S3 event notifications: functions and
queues, event types, key prefix and suffix) and a table's stream (DynamoDB Streams: a
view type) are rows of `fb_change_targets`. A put or delete of an object or item reads
its bucket's or table's row *in the transaction that writes the data* and, when there is
something to tell, inserts one `fb_change_outbox` row holding the Lambda-shaped record
(S3's `Records[]` entry, DynamoDB Streams' `dynamodb` block). The data and its event
commit together or not at all, so a node killed at any moment loses no event: the
dispatcher (runtime/events/changes.py) hands outbox rows to the durable async path or to
the table's stream and deletes them only then (at least once).

One node dispatches at a time: `ChangeOutbox.hold` is a lease row compare-and-set in the
same database, so the records of one table reach its stream in commit order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import sqlalchemy as sa
from firebox.runtime.config import arn, region
from firebox.runtime.errors import BadRequest
from firebox.runtime.grants import FUNCTION_RE, QUEUE_RE
from firebox.runtime.storage.data_meta import data_metadata

change_targets = sa.Table(
    "fb_change_targets",
    data_metadata,
    sa.Column("kind", sa.String(8), primary_key=True),  # "bucket" | "table"
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

change_outbox = sa.Table(
    "fb_change_outbox",
    data_metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # Ids are never reused (they are the async events' idempotency keys).
    sqlite_autoincrement=True,
)

change_lease = sa.Table(
    "fb_change_lease",
    data_metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)

#: Created with every data store: a writer reads its targets in its own transaction.
TABLES = [change_targets, change_outbox, change_lease]

#: S3's event types a notification may name ("s3:ObjectCreated:*" takes every creation).
S3_EVENTS = (
    "s3:ObjectCreated:*", "s3:ObjectCreated:Put", "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy", "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*", "s3:ObjectRemoved:Delete",
)  # fmt: skip
#: DynamoDB Streams' view types: what each record carries beside the keys.
VIEW_TYPES = ("KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES")
DEFAULT_VIEW_TYPE = "NEW_AND_OLD_IMAGES"
#: Notification targets per bucket (a hostile caller cannot make one write fan out forever).
MAX_TARGETS = 100
MAX_AFFIX = 1024
#: A table's stream label, fixed: there is one stream per table.
STREAM_LABEL = "firebox"
#: The node's own stream that carries a table's change records.
TABLE_STREAM_PREFIX = "firebox-table-"


def table_stream(table: str) -> str:
    """Return the name of the internal stream that carries `table`'s changes."""
    return TABLE_STREAM_PREFIX + table


def table_stream_arn(table: str) -> str:
    """Return the DynamoDB-style ARN of a table's stream (what mappings name as source)."""
    return arn("dynamodb", f"table/{table}/stream/{STREAM_LABEL}")


@dataclass(frozen=True)
class BucketTarget:
    """One notification of a bucket: where it goes (`function` name[:qualifier] or
    `queue`), for which event types and which keys."""

    id: str
    type: str  # "function" | "queue"
    target: str
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""

    def matches(self, event_name: str, key: str) -> bool:
        """Whether an event `ObjectCreated:Put` on `key` goes to this target."""
        wanted = "s3:" + event_name
        family = wanted.rpartition(":")[0] + ":*"
        return (
            any(e in (wanted, family) for e in self.events)
            and key.startswith(self.prefix)
            and key.endswith(self.suffix)
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the stored/wire form."""
        return {"id": self.id, self.type: self.target, "events": list(self.events),
                "prefix": self.prefix, "suffix": self.suffix}  # fmt: skip


def _affix(item: dict[str, Any], name: str) -> str:
    value = item.get(name, "") or ""
    if not isinstance(value, str) or len(value) > MAX_AFFIX:
        raise BadRequest(f"notification {name} must be a string of at most {MAX_AFFIX} characters")
    return value


def parse_bucket_targets(data: Any) -> list[BucketTarget]:
    """Validate a bucket's notification configuration, `{"functions": [...], "queues": [...]}`,
    each entry `{"id", "function"|"queue", "events", "prefix", "suffix"}`; raises BadRequest."""
    if not isinstance(data, dict):
        raise BadRequest('a notification configuration is {"functions": [...], "queues": [...]}')
    unknown = sorted(set(data) - {"functions", "queues"})
    if unknown:
        raise BadRequest(f"unknown notification field(s): {', '.join(unknown)}")
    targets: list[BucketTarget] = []
    for field, kind, rule in (
        ("functions", "function", FUNCTION_RE),
        ("queues", "queue", QUEUE_RE),
    ):
        entries = data.get(field) or []
        if not isinstance(entries, list):
            raise BadRequest(f"`{field}` must be a list")
        for item in entries:
            if not isinstance(item, dict):
                raise BadRequest(f"each of `{field}` must be an object")
            target = item.get(kind)
            if not isinstance(target, str) or not rule.match(target):
                raise BadRequest(f"each of `{field}` needs a valid `{kind}` name, got {target!r}")
            events = item.get("events") or ["s3:ObjectCreated:*"]
            if not isinstance(events, list) or any(e not in S3_EVENTS for e in events):
                raise BadRequest(f"notification events must be among {', '.join(S3_EVENTS)}")
            ident = item.get("id") or f"{kind}-{len(targets) + 1}"
            if not isinstance(ident, str) or len(ident) > 255:
                raise BadRequest("a notification `id` must be a string of at most 255 characters")
            targets.append(
                BucketTarget(ident, kind, target, tuple(dict.fromkeys(events)),
                             _affix(item, "prefix"), _affix(item, "suffix"))
            )  # fmt: skip
    if len(targets) > MAX_TARGETS:
        raise BadRequest(f"a bucket takes at most {MAX_TARGETS} notifications")
    if len({t.id for t in targets}) != len(targets):
        raise BadRequest("notification ids must be unique within a bucket")
    return targets


def bucket_config(targets: Sequence[BucketTarget]) -> dict[str, Any]:
    """Return the wire form of a bucket's notifications."""
    return {
        "functions": [t.to_dict() for t in targets if t.type == "function"],
        "queues": [t.to_dict() for t in targets if t.type == "queue"],
    }


def _targets_of(config: dict[str, Any]) -> list[BucketTarget]:
    return parse_bucket_targets(config)


# --- records --------------------------------------------------------------------------


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def s3_record(
    bucket: str, key: str, event_name: str, now: float, size: int | None, etag: str | None
) -> dict[str, Any]:
    """Return S3's event record for a change of `bucket/key` (without its configurationId).

    As S3 does, the key is URL-encoded (spaces as '+'), so handlers decode it with
    `urllib.parse.unquote_plus`.
    """
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/")}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    obj["sequencer"] = f"{int(now * 1e9):016X}"
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region(),
        "eventTime": _iso(now), "eventName": event_name,
        "userIdentity": {"principalId": "firebox"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": obj["sequencer"], "x-amz-id-2": "firebox"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "firebox"},
                          "arn": f"arn:aws:s3:::{bucket}"},
               "object": obj},
    }  # fmt: skip


#: What `table_record` is given for the side of a change with no item.
ABSENT: Any = object()


def attribute(value: Any) -> dict[str, Any]:
    """Return DynamoDB's typed attribute value for a JSON value."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": json.dumps(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [attribute(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): attribute(v) for k, v in value.items()}}
    return {"S": str(value)}


def image(key: str, value: Any) -> dict[str, Any]:
    """Return an item as a DynamoDB image: an object value's fields as attributes, any
    other value as the attribute `value`; the item key is the attribute `key`."""
    fields = value if isinstance(value, dict) else {"value": value}
    return {**{str(k): attribute(v) for k, v in fields.items()}, "key": {"S": key}}


def table_record(
    table: str, key: str, old: Any, new: Any, view_type: str, now: float
) -> dict[str, Any]:
    """Return the DynamoDB Streams record of a table write (`old`/`new` ABSENT: none).

    `SequenceNumber` and `eventID` are filled in when the record is read from the
    table's stream (they are the stream's)."""
    event = "INSERT" if old is ABSENT else "REMOVE" if new is ABSENT else "MODIFY"
    block: dict[str, Any] = {"ApproximateCreationDateTime": round(now, 3),
                             "Keys": {"key": {"S": key}}, "StreamViewType": view_type}  # fmt: skip
    if new is not ABSENT and view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        block["NewImage"] = image(key, new)
    if old is not ABSENT and view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
        block["OldImage"] = image(key, old)
    block["SizeBytes"] = len(json.dumps(block, separators=(",", ":")))
    return {"eventName": event, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": region(), "dynamodb": block,
            "eventSourceARN": table_stream_arn(table)}  # fmt: skip


# --- capture, inside the writer's transaction ------------------------------------------


def _config(conn: sa.Connection, kind: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(
        sa.select(change_targets.c.config).where(
            change_targets.c.kind == kind, change_targets.c.name == name
        )
    ).first()
    return json.loads(row.config) if row is not None else None


def _insert(conn: sa.Connection, kind: str, name: str, change: dict[str, Any], now: float) -> None:
    conn.execute(
        change_outbox.insert().values(
            kind=kind, name=name, change=json.dumps(change, separators=(",", ":")), created_at=now
        )
    )


def capture_object(
    conn: sa.Connection,
    bucket: str,
    key: str,
    event_name: str,
    now: float,
    size: int | None = None,
    etag: str | None = None,
) -> None:
    """Record an object change (`ObjectCreated:Put`, `ObjectRemoved:Delete`...) for the
    bucket's matching notifications, in the caller's transaction `conn`."""
    config = _config(conn, "bucket", bucket)
    if config is None:
        return
    targets = [t.to_dict() | {"type": t.type} for t in _targets_of(config)
               if t.matches(event_name, key)]  # fmt: skip
    if targets:
        record = s3_record(bucket, key, event_name, now, size, etag)
        _insert(conn, "bucket", bucket, {"record": record, "targets": targets}, now)


def capture_item(
    conn: sa.Connection, table: str, key: str, old: str | None, new: str | None, now: float
) -> None:
    """Record an item change for the table's stream, if it has one, in the caller's
    transaction `conn`; `old`/`new` are the stored JSON texts (None: absent/removed)."""
    if old is None and new is None:
        return
    config = _config(conn, "table", table)
    if config is None:
        return
    view = config.get("view_type", DEFAULT_VIEW_TYPE)
    before = json.loads(old) if old is not None else ABSENT
    after = json.loads(new) if new is not None else ABSENT
    record = table_record(table, key, before, after, view, now)
    _insert(conn, "table", table, {"key": key, "record": record}, now)


# --- configuration and the outbox -------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One outbox row: `kind` bucket or table, its name, and what was captured."""

    id: int
    kind: str
    name: str
    change: dict[str, Any]
    created_at: float


class ChangeOutbox:
    """Change targets (bucket notifications, table streams) and the outbox of changes."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        data_metadata.create_all(engine, tables=TABLES, checkfirst=True)

    def _put(self, kind: str, name: str, config: dict[str, Any] | None) -> None:
        where = sa.and_(change_targets.c.kind == kind, change_targets.c.name == name)
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.execute(change_targets.delete().where(where))
                    if config is not None:
                        conn.execute(
                            change_targets.insert().values(
                                kind=kind, name=name, config=json.dumps(config),
                                updated_at=time.time(),
                            )
                        )  # fmt: skip
                return
            except sa.exc.IntegrityError:  # a racing writer: the last one wins
                continue

    def _get(self, kind: str, name: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return _config(conn, kind, name)

    def put_bucket(self, bucket: str, targets: Sequence[BucketTarget]) -> None:
        """Replace a bucket's notifications (none: remove them)."""
        self._put("bucket", bucket, bucket_config(targets) if targets else None)

    def bucket(self, bucket: str) -> list[BucketTarget]:
        """Return a bucket's notifications."""
        config = self._get("bucket", bucket)
        return _targets_of(config) if config is not None else []

    def put_table_stream(self, table: str, view_type: str | None) -> None:
        """Turn a table's stream on with `view_type`, or off (None)."""
        if view_type is not None and view_type not in VIEW_TYPES:
            raise BadRequest(f"view_type must be one of {', '.join(VIEW_TYPES)}")
        self._put("table", table, {"view_type": view_type} if view_type else None)

    def table_stream(self, table: str) -> str | None:
        """Return a table's stream view type, or None when it has no stream."""
        config = self._get("table", table)
        return None if config is None else str(config.get("view_type", DEFAULT_VIEW_TYPE))

    def hold(self, owner: str, lease_s: float, now: float | None = None) -> bool:
        """Take or renew the dispatch lease for `owner`; True when `owner` holds it."""
        now = time.time() if now is None else now
        free = sa.or_(change_lease.c.owner == owner, change_lease.c.expires_at < now)
        values = {"owner": owner, "expires_at": now + lease_s}
        with self.engine.begin() as conn:
            done = conn.execute(
                change_lease.update().where(change_lease.c.name == "outbox", free).values(**values)
            )
            if done.rowcount == 1:
                return True
            try:
                with conn.begin_nested():
                    conn.execute(change_lease.insert().values(name="outbox", **values))
            except sa.exc.IntegrityError:  # held by someone else
                return False
        return True

    def release(self, owner: str) -> None:
        """Give the dispatch lease up (another node may take it at once)."""
        with self.engine.begin() as conn:
            conn.execute(
                change_lease.update()
                .where(change_lease.c.name == "outbox", change_lease.c.owner == owner)
                .values(expires_at=0.0)
            )

    def pending(self, limit: int = 100) -> list[Change]:
        """Return the oldest outbox rows, in commit order."""
        query = sa.select(change_outbox).order_by(change_outbox.c.id).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        return [Change(int(r.id), r.kind, r.name, json.loads(r.change), float(r.created_at))
                for r in rows]  # fmt: skip

    def done(self, ids: Sequence[int]) -> None:
        """Delete outbox rows whose changes were handed on."""
        if ids:
            with self.engine.begin() as conn:
                conn.execute(change_outbox.delete().where(change_outbox.c.id.in_(list(ids))))

    def backlog(self) -> int:
        """Return how many changes wait in the outbox."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).select_from(change_outbox)).scalar() or 0
            )


def encode_record(record: dict[str, Any]) -> bytes:
    """Return a table record as stored in the table's stream."""
    return json.dumps(record, separators=(",", ":")).encode()


def decode_record(data: bytes) -> dict[str, Any]:
    """Return a table record read back from the table's stream."""
    decoded: dict[str, Any] = json.loads(data)
    return decoded


__all__ = [
    "BucketTarget", "Change", "ChangeOutbox", "attribute", "capture_item", "capture_object",
    "decode_record", "encode_record", "image", "parse_bucket_targets", "table_stream",
    "table_stream_arn",
]  # fmt: skip
