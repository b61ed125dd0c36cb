"""The durable queue on SQLite in the data dir: one node, many threads and processes (storage layer).

Durability: WAL with `synchronous=FULL`, and every send commits before it returns, so an
accepted message survives `kill -9` (and power loss). Concurrency: one connection per
thread, every write in a short `BEGIN IMMEDIATE` transaction (so two receivers can never
take the same message), and a busy timeout so other processes wait instead of failing.
The stdlib `sqlite3` module is used directly, not SQLAlchemy, for exact control of those
transactions; `EventsDatabase` is shared with the stream store in the same file.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from firebox.runtime.errors import InvalidReceiptHandle, QueueAlreadyExists, QueueNotFound
from firebox.runtime.events.queue import (
    Message,
    QueueAttributes,
    QueueStats,
    SendEntry,
    SendsInBatches,
    check_entries,
    check_name,
    check_receive,
    check_visibility,
)

# A writer blocked by another process's transaction waits this long before failing.
BUSY_TIMEOUT_S = 30.0
# A long poll re-checks the database this often (other processes cannot wake it).
POLL_INTERVAL_S = 0.05
# Expired messages and dedup ids are swept at most this often per queue and process.
HOUSEKEEP_INTERVAL_S = 1.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    name TEXT PRIMARY KEY,
    attributes TEXT NOT NULL,
    created_at REAL NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0,
    received INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    dead_lettered INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    attributes TEXT NOT NULL,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_visible ON queue_messages (queue, visible_at);
CREATE INDEX IF NOT EXISTS queue_messages_sent ON queue_messages (queue, sent_at);
CREATE UNIQUE INDEX IF NOT EXISTS queue_messages_receipt ON queue_messages (receipt);
CREATE TABLE IF NOT EXISTS queue_dedup (
    queue TEXT NOT NULL,
    dedup_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (queue, dedup_id)
) WITHOUT ROWID;
"""

_RECEIPT = re.compile(r"^[0-9a-f]{32}$")


class EventsDatabase:
    """The `events.db` SQLite file: one connection per thread, immediate write transactions."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self.connection().executescript(schema)

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Run the block in a `BEGIN IMMEDIATE` transaction, committed when it returns."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Run the block in a read transaction (one consistent snapshot)."""
        conn = self.connection()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()


def _attributes(conn: sqlite3.Connection, name: str) -> QueueAttributes:
    row = conn.execute("SELECT attributes FROM queues WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise QueueNotFound(name)
    return QueueAttributes(**json.loads(row[0]))


class SqliteQueueBackend(SendsInBatches):
    """`QueueBackend` on a SQLite file; several processes may open the same file."""

    def __init__(self, path: Path) -> None:
        self.db = EventsDatabase(path, SCHEMA)
        self._arrived = threading.Condition()
        self._swept: dict[str, float] = {}

    # --- queues ---------------------------------------------------------------------

    def create_queue(self, name: str, attributes: QueueAttributes | None = None) -> QueueAttributes:
        check_name(name)
        attrs = attributes or QueueAttributes()
        attrs.validate()
        with self.db.write() as conn:
            row = conn.execute("SELECT attributes FROM queues WHERE name = ?", (name,)).fetchone()
            if row is not None:
                if QueueAttributes(**json.loads(row[0])) != attrs:
                    raise QueueAlreadyExists(name)
                return attrs
            if attrs.dead_letter_queue is not None:
                _attributes(conn, attrs.dead_letter_queue)
            conn.execute(
                "INSERT INTO queues (name, attributes, created_at) VALUES (?, ?, ?)",
                (name, json.dumps(asdict(attrs)), time.time()),
            )
        return attrs

    def delete_queue(self, name: str) -> None:
        with self.db.write() as conn:
            _attributes(conn, name)
            conn.execute("DELETE FROM queue_messages WHERE queue = ?", (name,))
            conn.execute("DELETE FROM queue_dedup WHERE queue = ?", (name,))
            conn.execute("DELETE FROM queues WHERE name = ?", (name,))

    def set_attributes(self, name: str, attributes: QueueAttributes) -> QueueAttributes:
        attributes.validate()
        with self.db.write() as conn:
            _attributes(conn, name)
            if attributes.dead_letter_queue is not None:
                _attributes(conn, attributes.dead_letter_queue)
            conn.execute(
                "UPDATE queues SET attributes = ? WHERE name = ?",
                (json.dumps(asdict(attributes)), name),
            )
        return attributes

    def get_attributes(self, name: str) -> QueueAttributes:
        with self.db.read() as conn:
            return _attributes(conn, name)

    def list_queues(self, prefix: str = "") -> list[str]:
        with self.db.read() as conn:
            rows = conn.execute("SELECT name FROM queues ORDER BY name").fetchall()
        return [name for (name,) in rows if name.startswith(prefix)]

    # --- messages -------------------------------------------------------------------

    def send_batch(self, queue: str, entries: Sequence[SendEntry]) -> list[str]:
        check_entries(entries)
        ids: list[str] = []
        stored = 0
        with self.db.write() as conn:
            attrs = _attributes(conn, queue)
            now = time.time()
            for entry in entries:
                message_id = str(uuid.uuid4())
                if entry.dedup_id is not None:
                    row = conn.execute(
                        "SELECT message_id FROM queue_dedup"
                        " WHERE queue = ? AND dedup_id = ? AND expires_at > ?",
                        (queue, entry.dedup_id, now),
                    ).fetchone()
                    if row is not None:
                        ids.append(row[0])
                        continue
                    conn.execute(
                        "INSERT OR REPLACE INTO queue_dedup VALUES (?, ?, ?, ?)",
                        (queue, entry.dedup_id, message_id, now + attrs.dedup_window_s),
                    )
                delay = attrs.delay_s if entry.delay_s is None else entry.delay_s
                conn.execute(
                    "INSERT INTO queue_messages (id, queue, body, attributes, sent_at, visible_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (message_id, queue, bytes(entry.body), json.dumps(entry.attributes or {}),
                     now, now + delay),
                )  # fmt: skip
                ids.append(message_id)
                stored += 1
            conn.execute("UPDATE queues SET sent = sent + ? WHERE name = ?", (stored, queue))
        with self._arrived:
            self._arrived.notify_all()
        return ids

    def receive(
        self,
        queue: str,
        max_messages: int = 1,
        visibility_timeout_s: float | None = None,
        wait_s: float = 0.0,
    ) -> list[Message]:
        check_receive(max_messages, visibility_timeout_s, wait_s)
        deadline = time.monotonic() + wait_s
        while True:
            messages = self._receive_now(queue, max_messages, visibility_timeout_s)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            with self._arrived:
                self._arrived.wait(min(remaining, POLL_INTERVAL_S))

    def _receive_now(self, queue: str, limit: int, timeout_s: float | None) -> list[Message]:
        # An idle long poll must not take the write lock (and fsync) twenty times a second.
        conn = self.db.connection()
        if (
            conn.execute(
                "SELECT 1 FROM queue_messages WHERE queue = ? AND visible_at <= ? LIMIT 1",
                (queue, time.time()),
            ).fetchone()
            is None
        ):
            _attributes(conn, queue)
            return []
        out: list[Message] = []
        seen: set[int] = set()
        moved = 0
        with self.db.write() as conn:
            attrs = _attributes(conn, queue)
            now = time.time()
            self._housekeep(conn, queue, attrs, now)
            hidden_until = now + (attrs.visibility_timeout_s if timeout_s is None else timeout_s)
            dlq = attrs.dead_letter_queue
            if (
                dlq is not None
                and conn.execute("SELECT 1 FROM queues WHERE name = ?", (dlq,)).fetchone() is None
            ):
                dlq = None  # the dead-letter queue was deleted: keep delivering, lose nothing
            while len(out) < limit:
                rows = conn.execute(
                    "SELECT seq, id, body, attributes, sent_at, receive_count FROM queue_messages"
                    " WHERE queue = ? AND visible_at <= ? ORDER BY visible_at, seq LIMIT ?",
                    (queue, now, limit - len(out) + len(seen)),
                ).fetchall()
                fresh = [row for row in rows if row[0] not in seen]
                if not fresh:
                    break
                for seq, message_id, body, attributes, sent_at, count in fresh:
                    seen.add(seq)
                    if dlq is not None and count + 1 > (attrs.max_receive_count or 0):
                        conn.execute(
                            "UPDATE queue_messages SET queue = ?, visible_at = ?,"
                            " receive_count = 0, receipt = NULL WHERE seq = ?",
                            (dlq, now, seq),
                        )
                        moved += 1
                        continue
                    receipt = uuid.uuid4().hex
                    conn.execute(
                        "UPDATE queue_messages SET receive_count = ?, receipt = ?, visible_at = ?"
                        " WHERE seq = ?",
                        (count + 1, receipt, hidden_until, seq),
                    )
                    out.append(
                        Message(message_id, bytes(body), receipt, count + 1, sent_at,
                                json.loads(attributes))
                    )  # fmt: skip
                    if len(out) == limit:
                        break
            if out or moved:
                conn.execute(
                    "UPDATE queues SET received = received + ?, dead_lettered = dead_lettered + ?"
                    " WHERE name = ?",
                    (len(out), moved, queue),
                )
        return out

    def _housekeep(
        self, conn: sqlite3.Connection, queue: str, attrs: QueueAttributes, now: float
    ) -> None:
        if now - self._swept.get(queue, 0.0) < HOUSEKEEP_INTERVAL_S:
            return
        self._swept[queue] = now
        conn.execute(
            "DELETE FROM queue_messages WHERE queue = ? AND sent_at < ?",
            (queue, now - attrs.retention_s),
        )
        conn.execute("DELETE FROM queue_dedup WHERE queue = ? AND expires_at <= ?", (queue, now))

    def delete(self, queue: str, receipt_handle: str) -> bool:
        _check_handle(receipt_handle)
        with self.db.write() as conn:
            _attributes(conn, queue)
            gone = conn.execute(
                "DELETE FROM queue_messages WHERE queue = ? AND receipt = ?",
                (queue, receipt_handle),
            ).rowcount
            conn.execute("UPDATE queues SET deleted = deleted + ? WHERE name = ?", (gone, queue))
        return gone > 0

    def change_visibility(self, queue: str, receipt_handle: str, timeout_s: float) -> bool:
        _check_handle(receipt_handle)
        check_visibility(timeout_s)
        with self.db.write() as conn:
            _attributes(conn, queue)
            changed = conn.execute(
                "UPDATE queue_messages SET visible_at = ? WHERE queue = ? AND receipt = ?",
                (time.time() + timeout_s, queue, receipt_handle),
            ).rowcount
        if changed and timeout_s == 0:
            with self._arrived:
                self._arrived.notify_all()
        return changed > 0

    def purge(self, queue: str) -> None:
        with self.db.write() as conn:
            _attributes(conn, queue)
            conn.execute("DELETE FROM queue_messages WHERE queue = ?", (queue,))

    def stats(self, queue: str) -> QueueStats:
        with self.db.read() as conn:
            row = conn.execute(
                "SELECT sent, received, deleted, dead_lettered FROM queues WHERE name = ?",
                (queue,),
            ).fetchone()
            if row is None:
                raise QueueNotFound(queue)
            now = time.time()
            depth, in_flight, delayed, oldest = conn.execute(
                "SELECT COALESCE(SUM(visible_at <= :now), 0),"
                " COALESCE(SUM(visible_at > :now AND receipt IS NOT NULL), 0),"
                " COALESCE(SUM(visible_at > :now AND receipt IS NULL), 0), MIN(sent_at)"
                " FROM queue_messages WHERE queue = :queue",
                {"now": now, "queue": queue},
            ).fetchone()
        age = max(0.0, now - oldest) if oldest is not None else 0.0
        return QueueStats(depth, in_flight, delayed, age, *row)

    def close(self) -> None:
        self.db.close()


def _check_handle(handle: str) -> None:
    if not _RECEIPT.match(handle):
        raise InvalidReceiptHandle(handle)
