"""The stream interface: Kinesis-like sharded, ordered, replayable records (events layer).

A record goes to the shard its partition key hashes to; sequence numbers increase within
a shard and are opaque strings (compare them only through `read`). Records live for the
stream's retention, whoever has read them. Checkpoints remember, per consumer (an event
source mapping) and shard, the last sequence number processed. Backends:
`firebox.runtime.storage.stream_sqlite` and `firebox.runtime.storage.stream_redis`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from firebox.runtime.errors import ShardNotFound

# Kinesis's default retention is 24 hours.
DEFAULT_STREAM_RETENTION_S = 24 * 3600.0
MAX_SHARDS = 256
MAX_READ_LIMIT = 10_000


@dataclass(frozen=True)
class StreamInfo:
    """A stream's settings."""

    name: str
    shard_count: int
    retention_s: float
    created_at: float


class PutResult(NamedTuple):
    """Where a record landed: unpacks as `(shard_id, sequence_number)`."""

    shard_id: str
    sequence_number: str


@dataclass(frozen=True)
class Record:
    """One stored record; `arrival_ts` is the time the backend accepted it (epoch seconds)."""

    sequence_number: str
    partition_key: str
    data: bytes
    arrival_ts: float


@runtime_checkable
class StreamBackend(Protocol):
    """Named sharded streams plus consumer checkpoints; safe to call from many threads."""

    def create_stream(
        self, name: str, shard_count: int = 1, retention_s: float = DEFAULT_STREAM_RETENTION_S
    ) -> StreamInfo:
        """Create a stream (idempotent for equal settings) and return it.

        Raises StreamAlreadyExists for different settings, ValueError for bad ones.
        """
        ...

    def delete_stream(self, name: str) -> None:
        """Delete a stream and its records; raises StreamNotFound."""
        ...

    def describe_stream(self, name: str) -> StreamInfo:
        """Return a stream's settings; raises StreamNotFound."""
        ...

    def list_streams(self) -> list[str]:
        """Return every stream name, sorted."""
        ...

    def shards(self, stream: str) -> list[str]:
        """Return the stream's shard ids in order; raises StreamNotFound."""
        ...

    def put(self, stream: str, partition_key: str, data: bytes) -> PutResult:
        """Append a record to the shard its key hashes to; raises StreamNotFound."""
        ...

    def put_batch(self, stream: str, records: Sequence[tuple[str, bytes]]) -> list[PutResult]:
        """Append `(partition_key, data)` records; results in input order."""
        ...

    def read(
        self, stream: str, shard_id: str, after_sequence: str | None = None, limit: int = 100
    ) -> list[Record]:
        """Return up to `limit` records of one shard in order, after `after_sequence`
        (from the oldest retained one when None). Raises StreamNotFound, ShardNotFound."""
        ...

    def trim(self, stream: str) -> int:
        """Delete the records older than the retention; returns how many went."""
        ...

    def get_checkpoint(self, consumer: str, stream: str, shard_id: str) -> str | None:
        """Return the last sequence number `consumer` recorded for the shard, or None."""
        ...

    def set_checkpoint(
        self, consumer: str, stream: str, shard_id: str, sequence_number: str
    ) -> None:
        """Record that `consumer` processed the shard up to `sequence_number`."""
        ...

    def close(self) -> None:
        """Release connections; the backend is unusable afterwards."""
        ...


def shard_id(index: int) -> str:
    """Return the id of shard `index`, in Kinesis's form (`shardId-000000000000`)."""
    return f"shardId-{index:012d}"


def shard_index(stream: str, shard: str, shard_count: int) -> int:
    """Return the index of a shard id; raises ShardNotFound if the stream has no such shard."""
    prefix = "shardId-"
    digits = shard[len(prefix) :]
    if not shard.startswith(prefix) or not digits.isdigit() or int(digits) >= shard_count:
        raise ShardNotFound(stream, shard)
    return int(digits)


def shard_for_key(partition_key: str, shard_count: int) -> int:
    """Return the shard a partition key maps to: Kinesis's scheme, MD5 over even ranges."""
    point = int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")
    return (point * shard_count) >> 128


def check_stream_settings(shard_count: int, retention_s: float) -> None:
    """Raise ValueError for a shard count or retention out of range."""
    if not 1 <= shard_count <= MAX_SHARDS:
        raise ValueError(f"shard_count must be 1..{MAX_SHARDS}")
    if retention_s <= 0:
        raise ValueError("retention_s must be positive")


def check_limit(limit: int) -> None:
    """Raise ValueError for a read limit out of range."""
    if not 1 <= limit <= MAX_READ_LIMIT:
        raise ValueError(f"limit must be 1..{MAX_READ_LIMIT}")
