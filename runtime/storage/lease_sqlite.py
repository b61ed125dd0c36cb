"""Shard leases on SQLite, in the stream store's `events.db` (storage layer).

For the nodes of one machine sharing a data dir's file (and for one node, where every
lease is its own). Each change is one `BEGIN IMMEDIATE` transaction, so it is a
compare-and-set; the fenced checkpoint writes `stream_checkpoints` in the same one.
Expiry uses this machine's clock, which every process sharing the file shares.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from firebox.runtime.events.shard_leases import Lease
from firebox.runtime.storage.queue_sqlite import EventsDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS shard_leases (
    consumer TEXT NOT NULL,
    stream TEXT NOT NULL,
    shard TEXT NOT NULL,
    owner TEXT NOT NULL DEFAULT '',
    counter INTEGER NOT NULL DEFAULT 0,
    expires_at REAL NOT NULL DEFAULT 0,
    wanted_by TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (consumer, stream, shard)
) WITHOUT ROWID;
"""


def _row(
    conn: sqlite3.Connection, consumer: str, stream: str, shard: str
) -> tuple[str, int, float, str]:
    row = conn.execute(
        "SELECT owner, counter, expires_at, wanted_by FROM shard_leases"
        " WHERE consumer = ? AND stream = ? AND shard = ?",
        (consumer, stream, shard),
    ).fetchone()
    return ("", 0, 0.0, "") if row is None else (row[0], row[1], row[2], row[3])


def _put(
    conn: sqlite3.Connection, key: tuple[str, str, str], owner: str, counter: int,
    expires_at: float, wanted_by: str,
) -> None:  # fmt: skip
    conn.execute(
        "INSERT OR REPLACE INTO shard_leases VALUES (?, ?, ?, ?, ?, ?, ?)",
        (*key, owner, counter, expires_at, wanted_by),
    )


class SqliteShardLeases:
    """`ShardLeases` on the `EventsDatabase` of a `SqliteStreamBackend`."""

    def __init__(self, db: EventsDatabase) -> None:
        self.db = db
        db.connection().executescript(SCHEMA)

    def leases(self, consumer: str, stream: str, shards: Sequence[str]) -> list[Lease]:
        now = time.time()
        with self.db.read() as conn:
            rows = [_row(conn, consumer, stream, shard) for shard in shards]
        return [
            Lease(shard, owner, counter, bool(owner) and expires > now, wanted)
            for shard, (owner, counter, expires, wanted) in zip(shards, rows, strict=True)
        ]

    def take(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, ttl_s: float
    ) -> int | None:
        now = time.time()
        with self.db.write() as conn:
            current, have, expires, _ = _row(conn, consumer, stream, shard)
            if have != counter or (current and expires > now):
                return None
            _put(conn, (consumer, stream, shard), owner, counter + 1, now + ttl_s, "")
        return counter + 1

    def renew(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, ttl_s: float
    ) -> tuple[bool, str]:
        with self.db.write() as conn:
            current, have, _, wanted = _row(conn, consumer, stream, shard)
            if (current, have) != (owner, counter):
                return False, ""
            _put(conn, (consumer, stream, shard), owner, counter, time.time() + ttl_s, wanted)
        return True, wanted

    def ask(self, consumer: str, stream: str, shard: str, owner: str, counter: int) -> bool:
        with self.db.write() as conn:
            current, have, expires, _ = _row(conn, consumer, stream, shard)
            if not current or expires <= time.time() or have != counter or current == owner:
                return False
            _put(conn, (consumer, stream, shard), current, have, expires, owner)
        return True

    def release(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, to: str,
        ttl_s: float,
    ) -> bool:  # fmt: skip
        key = (consumer, stream, shard)
        with self.db.write() as conn:
            current, have, _, _ = _row(conn, *key)
            if (current, have) != (owner, counter):
                return False
            if to:
                _put(conn, key, to, counter + 1, time.time() + ttl_s, "")
            else:
                _put(conn, key, "", counter, 0.0, "")
        return True

    def checkpoint(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, sequence: str
    ) -> bool:
        with self.db.write() as conn:
            current, have, _, _ = _row(conn, consumer, stream, shard)
            if (current, have) != (owner, counter):
                return False
            conn.execute(
                "INSERT OR REPLACE INTO stream_checkpoints VALUES (?, ?, ?, ?, ?)",
                (consumer, stream, shard, sequence, time.time()),
            )
        return True
