"""Streams on SQLite in the data dir, beside the queues in `events.db` (storage layer).

A sequence number is a per-shard counter kept in its own table (so trimming every record
never restarts it), written as 20 zero-padded digits so that, like Kinesis's, it sorts as
text. Appends run in `BEGIN IMMEDIATE` transactions and commit before `put` returns.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from firebox.runtime.errors import StreamAlreadyExists, StreamNotFound
from firebox.runtime.events.queue import check_name
from firebox.runtime.events.stream import (
    DEFAULT_STREAM_RETENTION_S,
    PutResult,
    Record,
    StreamInfo,
    check_limit,
    check_stream_settings,
    shard_for_key,
    shard_id,
    shard_index,
)
from firebox.runtime.storage.queue_sqlite import EventsDatabase

# Records past their retention are deleted by `put` at most this often per stream.
TRIM_INTERVAL_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    name TEXT PRIMARY KEY,
    shard_count INTEGER NOT NULL,
    retention_s REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS stream_shards (
    stream TEXT NOT NULL,
    shard INTEGER NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (stream, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stream_records (
    stream TEXT NOT NULL,
    shard INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    partition_key TEXT NOT NULL,
    data BLOB NOT NULL,
    arrival_ts REAL NOT NULL,
    PRIMARY KEY (stream, shard, seq)
);
CREATE INDEX IF NOT EXISTS stream_records_arrival ON stream_records (stream, arrival_ts);
CREATE TABLE IF NOT EXISTS stream_checkpoints (
    consumer TEXT NOT NULL,
    stream TEXT NOT NULL,
    shard TEXT NOT NULL,
    sequence_number TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (consumer, stream, shard)
) WITHOUT ROWID;
"""


def _sequence(seq: int) -> str:
    return f"{seq:020d}"


class SqliteStreamBackend:
    """`StreamBackend` on a SQLite file; several processes may open the same file."""

    def __init__(self, path: Path) -> None:
        self.db = EventsDatabase(path, SCHEMA)
        self._trimmed: dict[str, float] = {}

    def create_stream(
        self, name: str, shard_count: int = 1, retention_s: float = DEFAULT_STREAM_RETENTION_S
    ) -> StreamInfo:
        check_name(name)
        check_stream_settings(shard_count, retention_s)
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT shard_count, retention_s, created_at FROM streams WHERE name = ?", (name,)
            ).fetchone()
            if row is not None:
                if (row[0], row[1]) != (shard_count, retention_s):
                    raise StreamAlreadyExists(name)
                return StreamInfo(name, row[0], row[1], row[2])
            now = time.time()
            conn.execute(
                "INSERT INTO streams VALUES (?, ?, ?, ?)", (name, shard_count, retention_s, now)
            )
            conn.executemany(
                "INSERT OR REPLACE INTO stream_shards VALUES (?, ?, 0)",
                [(name, i) for i in range(shard_count)],
            )
        return StreamInfo(name, shard_count, retention_s, now)

    def delete_stream(self, name: str) -> None:
        with self.db.write() as conn:
            if conn.execute("DELETE FROM streams WHERE name = ?", (name,)).rowcount == 0:
                raise StreamNotFound(name)
            conn.execute("DELETE FROM stream_shards WHERE stream = ?", (name,))
            conn.execute("DELETE FROM stream_records WHERE stream = ?", (name,))

    def describe_stream(self, name: str) -> StreamInfo:
        row = (
            self.db.connection()
            .execute("SELECT shard_count, retention_s, created_at FROM streams WHERE name = ?", (name,))
            .fetchone()
        )  # fmt: skip
        if row is None:
            raise StreamNotFound(name)
        return StreamInfo(name, row[0], row[1], row[2])

    def list_streams(self) -> list[str]:
        rows = self.db.connection().execute("SELECT name FROM streams ORDER BY name").fetchall()
        return [name for (name,) in rows]

    def shards(self, stream: str) -> list[str]:
        return [shard_id(i) for i in range(self.describe_stream(stream).shard_count)]

    def put(self, stream: str, partition_key: str, data: bytes) -> PutResult:
        return self.put_batch(stream, [(partition_key, data)])[0]

    def put_batch(self, stream: str, records: Sequence[tuple[str, bytes]]) -> list[PutResult]:
        results: list[PutResult] = []
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT shard_count, retention_s FROM streams WHERE name = ?", (stream,)
            ).fetchone()
            if row is None:
                raise StreamNotFound(stream)
            shard_count, retention_s = row
            now = time.time()
            for partition_key, data in records:
                shard = shard_for_key(partition_key, shard_count)
                (seq,) = conn.execute(
                    "UPDATE stream_shards SET last_seq = last_seq + 1"
                    " WHERE stream = ? AND shard = ? RETURNING last_seq",
                    (stream, shard),
                ).fetchone()
                conn.execute(
                    "INSERT INTO stream_records VALUES (?, ?, ?, ?, ?, ?)",
                    (stream, shard, seq, partition_key, bytes(data), now),
                )
                results.append(PutResult(shard_id(shard), _sequence(seq)))
            if now - self._trimmed.get(stream, 0.0) >= TRIM_INTERVAL_S:
                self._trimmed[stream] = now
                conn.execute(
                    "DELETE FROM stream_records WHERE stream = ? AND arrival_ts < ?",
                    (stream, now - retention_s),
                )
        return results

    def read(
        self, stream: str, shard_id: str, after_sequence: str | None = None, limit: int = 100
    ) -> list[Record]:
        check_limit(limit)
        shard = shard_index(stream, shard_id, self.describe_stream(stream).shard_count)
        after = int(after_sequence) if after_sequence is not None else 0
        rows = (
            self.db.connection()
            .execute(
                "SELECT seq, partition_key, data, arrival_ts FROM stream_records"
                " WHERE stream = ? AND shard = ? AND seq > ? ORDER BY seq LIMIT ?",
                (stream, shard, after, limit),
            )
            .fetchall()
        )
        return [Record(_sequence(seq), key, bytes(data), ts) for seq, key, data, ts in rows]

    def trim(self, stream: str) -> int:
        with self.db.write() as conn:
            row = conn.execute(
                "SELECT retention_s FROM streams WHERE name = ?", (stream,)
            ).fetchone()
            if row is None:
                raise StreamNotFound(stream)
            gone = conn.execute(
                "DELETE FROM stream_records WHERE stream = ? AND arrival_ts < ?",
                (stream, time.time() - row[0]),
            ).rowcount
        return int(gone)

    def get_checkpoint(self, consumer: str, stream: str, shard_id: str) -> str | None:
        row = (
            self.db.connection()
            .execute(
                "SELECT sequence_number FROM stream_checkpoints"
                " WHERE consumer = ? AND stream = ? AND shard = ?",
                (consumer, stream, shard_id),
            )
            .fetchone()
        )
        return None if row is None else str(row[0])

    def set_checkpoint(
        self, consumer: str, stream: str, shard_id: str, sequence_number: str
    ) -> None:
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO stream_checkpoints VALUES (?, ?, ?, ?, ?)",
                (consumer, stream, shard_id, sequence_number, time.time()),
            )

    def close(self) -> None:
        self.db.close()
