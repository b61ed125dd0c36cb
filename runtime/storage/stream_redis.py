"""Streams on Redis: one Redis stream per shard, the entry id is the sequence number (storage layer).

Settings live in one hash (`<prefix>streams`), each stream under a fresh id so a deleted
and recreated stream never sees the old records. Entry ids grow per shard, so Kinesis's
per-shard ordering holds across nodes; `arrival_ts` is the id's millisecond part (the
Redis server's clock). Appends trim records past the retention approximately
(`XADD MINID ~`); `trim` trims exactly. Checkpoints: one hash per consumer.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, cast

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
from firebox.runtime.storage.queue_redis import DEFAULT_PREFIX, as_text, connect


class RedisStreamBackend:
    """`StreamBackend` on Redis; every node may append and read."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = connect(url)
        self.prefix = prefix

    def _meta(self, name: str) -> dict[str, Any]:
        raw = self.redis.hget(self.prefix + "streams", name)
        if raw is None:
            raise StreamNotFound(name)
        meta: dict[str, Any] = json.loads(raw)
        return meta

    def _key(self, meta: dict[str, Any], index: int) -> str:
        return f"{self.prefix}s:{meta['uid']}:{index}"

    def create_stream(
        self, name: str, shard_count: int = 1, retention_s: float = DEFAULT_STREAM_RETENTION_S
    ) -> StreamInfo:
        check_name(name)
        check_stream_settings(shard_count, retention_s)
        meta = {
            "uid": uuid.uuid4().hex,
            "shard_count": shard_count,
            "retention_s": retention_s,
            "created_at": time.time(),
        }
        if not self.redis.hsetnx(self.prefix + "streams", name, json.dumps(meta)):
            meta = self._meta(name)
            if (meta["shard_count"], meta["retention_s"]) != (shard_count, retention_s):
                raise StreamAlreadyExists(name)
        return _info(name, meta)

    def delete_stream(self, name: str) -> None:
        meta = self._meta(name)
        pipe = self.redis.pipeline()
        pipe.hdel(self.prefix + "streams", name)
        pipe.delete(*[self._key(meta, i) for i in range(meta["shard_count"])])
        pipe.execute()

    def describe_stream(self, name: str) -> StreamInfo:
        return _info(name, self._meta(name))

    def list_streams(self) -> list[str]:
        return sorted(as_text(n) for n in self.redis.hkeys(self.prefix + "streams"))

    def shards(self, stream: str) -> list[str]:
        return [shard_id(i) for i in range(self._meta(stream)["shard_count"])]

    def put(self, stream: str, partition_key: str, data: bytes) -> PutResult:
        return self.put_batch(stream, [(partition_key, data)])[0]

    def put_batch(self, stream: str, records: Sequence[tuple[str, bytes]]) -> list[PutResult]:
        meta = self._meta(stream)
        # Approximate trimming costs nothing extra; the cutoff uses this node's clock.
        cutoff = int((time.time() - meta["retention_s"]) * 1000)
        shards = [shard_for_key(key, meta["shard_count"]) for key, _ in records]
        pipe = self.redis.pipeline(transaction=False)
        for (key, data), shard in zip(records, shards, strict=True):
            pipe.xadd(
                self._key(meta, shard), {"k": key, "d": bytes(data)},
                minid=cutoff, approximate=True,
            )  # fmt: skip
        ids = pipe.execute()
        return [
            PutResult(shard_id(shard), entry.decode())
            for shard, entry in zip(shards, ids, strict=True)
        ]

    def read(
        self, stream: str, shard_id: str, after_sequence: str | None = None, limit: int = 100
    ) -> list[Record]:
        check_limit(limit)
        meta = self._meta(stream)
        index = shard_index(stream, shard_id, meta["shard_count"])
        start = "-" if after_sequence is None else f"({after_sequence}"
        entries = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            self.redis.xrange(self._key(meta, index), min=start, max="+", count=limit),
        )
        return [_record(entry_id, fields) for entry_id, fields in entries]

    def trim(self, stream: str) -> int:
        meta = self._meta(stream)
        seconds, micros = self.redis.time()
        cutoff = int((seconds + micros / 1e6 - meta["retention_s"]) * 1000)
        pipe = self.redis.pipeline(transaction=False)
        for i in range(meta["shard_count"]):
            pipe.xtrim(self._key(meta, i), minid=cutoff, approximate=False)
        return sum(int(n) for n in pipe.execute())

    def get_checkpoint(self, consumer: str, stream: str, shard_id: str) -> str | None:
        raw = self.redis.hget(f"{self.prefix}checkpoints:{consumer}", f"{stream}/{shard_id}")
        return None if raw is None else as_text(raw)

    def set_checkpoint(
        self, consumer: str, stream: str, shard_id: str, sequence_number: str
    ) -> None:
        self.redis.hset(
            f"{self.prefix}checkpoints:{consumer}", f"{stream}/{shard_id}", sequence_number
        )

    def close(self) -> None:
        self.redis.close()


def _info(name: str, meta: dict[str, Any]) -> StreamInfo:
    return StreamInfo(name, meta["shard_count"], meta["retention_s"], meta["created_at"])


def _record(entry_id: bytes, fields: dict[bytes, bytes]) -> Record:
    sequence = entry_id.decode()
    return Record(
        sequence_number=sequence,
        partition_key=fields[b"k"].decode(),
        data=bytes(fields[b"d"]),
        arrival_ts=int(sequence.split("-", 1)[0]) / 1000,
    )
