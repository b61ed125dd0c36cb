"""Key-value tables for functions and the native API: JSON values by string key, with
conditional puts, TTL and prefix/paged listing (storage layer).

One SQLAlchemy Core table serves both backends: SQLite in the data dir for one node,
the registry's PostgreSQL database for many (so every node sees the same items).
Tables spring into being on their first put, like a Workers KV namespace; a grant
names them (runtime/grants.py). Every operation is one short statement: no call holds
a lock or a transaction across a guest's work.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from firebox.runtime import config
from firebox.runtime.errors import BadRequest, ConditionFailed, PayloadTooLarge
from firebox.runtime.storage import changes
from firebox.runtime.storage.data_meta import data_metadata

kv_items = sa.Table(
    "fb_kv_items",
    data_metadata,
    sa.Column("tbl", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(1024), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    # Seconds since the epoch; None: never expires.
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

MAX_KEY_BYTES = 1024
MAX_PAGE = 1000
DEFAULT_PAGE = 100
#: Longest TTL accepted (a year and a day); longer is almost surely a unit mistake.
MAX_TTL_S = 366 * 86400.0


@dataclass(frozen=True)
class Item:
    """One table item: its key, decoded JSON value, version (1 on first put) and expiry."""

    key: str
    value: Any
    version: int
    expires_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the item's JSON-able form."""
        return {
            "key": self.key,
            "value": self.value,
            "version": self.version,
            "expires_at": self.expires_at,
        }


@dataclass(frozen=True)
class Page:
    """A page of items in key order; `cursor` resumes after its last key (None: the end)."""

    items: list[Item]
    cursor: str | None

    def to_dict(self) -> dict[str, Any]:
        """Return the page's JSON-able form."""
        return {"items": [item.to_dict() for item in self.items], "cursor": self.cursor}


def check_key(key: Any) -> str:
    """Return `key` if it is a usable item key; raises BadRequest."""
    if not isinstance(key, str) or not key:
        raise BadRequest("a table key must be a non-empty string")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES or "\x00" in key:
        raise BadRequest(f"a table key must be at most {MAX_KEY_BYTES} bytes, without NUL")
    return key


def _encode(value: Any) -> str:
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"a table value must be JSON-serializable: {exc}") from None
    limit = config.FIREBOX_KV_MAX_VALUE_BYTES.get()
    if len(text) > limit:
        raise PayloadTooLarge("a table value (JSON-encoded)", len(text), limit)
    return text


def _limit(limit: Any) -> int:
    if limit is None:
        return DEFAULT_PAGE
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"`limit` must be an integer from 1 to {MAX_PAGE}")
    return limit


class KvStore:
    """Every function's tables, in one SQL table keyed by (table, key)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        data_metadata.create_all(engine, tables=[kv_items, *changes.TABLES], checkfirst=True)

    def _live(self, now: float) -> Any:
        return sa.or_(kv_items.c.expires_at.is_(None), kv_items.c.expires_at > now)

    def get(self, table: str, key: str) -> Item | None:
        """Return the item at `key` in `table`, or None (absent or expired)."""
        check_key(key)
        now = time.time()
        query = sa.select(kv_items).where(
            kv_items.c.tbl == table, kv_items.c.key == key, self._live(now)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return _item(row) if row is not None else None

    def put(
        self,
        table: str,
        key: str,
        value: Any,
        *,
        ttl_s: float | None = None,
        if_absent: bool = False,
        if_version: int | None = None,
    ) -> Item:
        """Store `value` at `key` and return the new item (its version one more).

        `if_absent` writes only when no live item is there; `if_version` only when the
        live item has that version. Raises ConditionFailed when the condition does not
        hold, BadRequest/PayloadTooLarge for a bad key, value or TTL.
        """
        check_key(key)
        text = _encode(value)
        if ttl_s is not None and (
            isinstance(ttl_s, bool)
            or not isinstance(ttl_s, (int, float))
            or not 0 < ttl_s <= MAX_TTL_S
        ):
            raise BadRequest(f"`ttl` must be a number of seconds from 0 to {MAX_TTL_S:.0f}")
        now = time.time()
        expires = now + ttl_s if ttl_s is not None else None
        where = sa.and_(kv_items.c.tbl == table, kv_items.c.key == key)
        for _ in range(3):  # a concurrent insert of the same key: read again and retry
            try:
                with self.engine.begin() as conn:
                    row = conn.execute(sa.select(kv_items).where(where)).first()
                    live = row is not None and (row.expires_at is None or row.expires_at > now)
                    current = row.version if row is not None and live else None
                    if if_absent and live:
                        raise ConditionFailed(f"{table}/{key} already exists")
                    if if_version is not None and current != if_version:
                        found = "none" if current is None else current
                        raise ConditionFailed(
                            f"{table}/{key} is at version {found}, not {if_version}"
                        )
                    if row is None:
                        version = 1
                        conn.execute(
                            kv_items.insert().values(
                                tbl=table, key=key, value=text, version=1,
                                expires_at=expires, updated_at=now,
                            )
                        )  # fmt: skip
                    else:
                        version = (row.version if live else 0) + 1
                        # Compare-and-set on the version read: a racing writer loses.
                        done = conn.execute(
                            kv_items.update()
                            .where(where, kv_items.c.version == row.version)
                            .values(value=text, version=version, expires_at=expires, updated_at=now)
                        )
                        if done.rowcount != 1:
                            raise sa.exc.IntegrityError("kv put", None, Exception("raced"))
                    before = row.value if row is not None and live else None
                    changes.capture_item(conn, table, key, before, text, now)
                return Item(key=key, value=json.loads(text), version=version, expires_at=expires)
            except sa.exc.IntegrityError:
                continue
        raise ConditionFailed(f"{table}/{key} is being written concurrently; retry")

    def delete(self, table: str, key: str, *, if_version: int | None = None) -> bool:
        """Remove `key` from `table`; return True if a live item was there.

        Raises ConditionFailed when `if_version` is given and the item is not at it.
        """
        check_key(key)
        where = [kv_items.c.tbl == table, kv_items.c.key == key]
        if if_version is not None:
            where.append(kv_items.c.version == if_version)
        now = time.time()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(kv_items.c.expires_at, kv_items.c.value).where(*where)
            ).first()
            conn.execute(kv_items.delete().where(*where))
            live = row is not None and (row.expires_at is None or row.expires_at > now)
            if row is not None and live:
                changes.capture_item(conn, table, key, row.value, None, now)
        if row is None and if_version is not None:
            raise ConditionFailed(f"{table}/{key} is not at version {if_version}")
        return live

    def query(
        self, table: str, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        """Return live items whose key starts with `prefix`, in key order, a page at a time
        (`cursor` from the previous page). With no prefix this is a scan of the table."""
        size = _limit(limit)
        if not isinstance(prefix, str) or (cursor is not None and not isinstance(cursor, str)):
            raise BadRequest("`prefix` and `cursor` must be strings")
        now = time.time()
        query = sa.select(kv_items).where(kv_items.c.tbl == table, self._live(now))
        if prefix:
            query = query.where(sa.func.substr(kv_items.c.key, 1, len(prefix)) == prefix)
        if cursor:
            query = query.where(kv_items.c.key > cursor)
        query = query.order_by(kv_items.c.key).limit(size + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).fetchall()
        items = [_item(row) for row in rows[:size]]
        return Page(items=items, cursor=items[-1].key if len(rows) > size else None)

    def tables(self) -> list[dict[str, Any]]:
        """Return every table that holds items, with its item count."""
        query = (
            sa.select(kv_items.c.tbl, sa.func.count())
            .group_by(kv_items.c.tbl)
            .order_by(kv_items.c.tbl)
        )
        with self.engine.connect() as conn:
            return [{"name": row[0], "items": int(row[1])} for row in conn.execute(query)]

    def purge_expired(self, now: float | None = None) -> int:
        """Delete expired items everywhere; return how many (reads skip them anyway)."""
        now = time.time() if now is None else now
        with self.engine.begin() as conn:
            done = conn.execute(
                kv_items.delete().where(
                    kv_items.c.expires_at.is_not(None), kv_items.c.expires_at <= now
                )
            )
        return int(done.rowcount or 0)


def _item(row: Any) -> Item:
    return Item(
        key=row.key,
        value=json.loads(row.value),
        version=int(row.version),
        expires_at=row.expires_at,
    )
