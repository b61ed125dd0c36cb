"""Shard leases on Redis, beside the streams and their checkpoints (storage layer).

One hash per (mapping, stream, shard): `owner`, `counter`, `expires` (milliseconds on
the Redis server's clock, so nodes' clocks never matter) and `wanted` (a node asking for
it). Every change is a Lua script, so each compare-and-set is atomic; the fenced
checkpoint writes the stream backend's checkpoint hash in the same script.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from firebox.runtime.events.shard_leases import Lease
from firebox.runtime.storage.queue_redis import as_text

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local l = redis.call('HMGET', KEYS[1], 'owner', 'counter', 'expires', 'wanted')
local owner, counter = l[1] or '', tonumber(l[2] or '0')
local live = owner ~= '' and tonumber(l[3] or '0') > now
"""

# ARGV: owner, counter read, ttl ms.
_TAKE = (
    _NOW
    + """
if counter ~= tonumber(ARGV[2]) or live then return -1 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'counter', counter + 1,
  'expires', now + tonumber(ARGV[3]), 'wanted', '')
return counter + 1
"""
)

# ARGV: owner, counter, ttl ms.
_RENEW = (
    _NOW
    + """
if owner ~= ARGV[1] or counter ~= tonumber(ARGV[2]) then return {0, ''} end
redis.call('HSET', KEYS[1], 'expires', now + tonumber(ARGV[3]))
return {1, l[4] or ''}
"""
)

# ARGV: asker, counter.
_ASK = (
    _NOW
    + """
if not live or counter ~= tonumber(ARGV[2]) or owner == ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'wanted', ARGV[1])
return 1
"""
)

# ARGV: owner, counter, to ('' frees it), ttl ms.
_RELEASE = (
    _NOW
    + """
if owner ~= ARGV[1] or counter ~= tonumber(ARGV[2]) then return 0 end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'counter', counter + 1,
    'expires', now + tonumber(ARGV[4]), 'wanted', '')
else
  redis.call('HSET', KEYS[1], 'owner', '', 'expires', 0, 'wanted', '')
end
return 1
"""
)

# KEYS: lease, checkpoint hash. ARGV: owner, counter, field, sequence number.
_CHECKPOINT = (
    _NOW
    + """
if owner ~= ARGV[1] or counter ~= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
return 1
"""
)


class RedisShardLeases:
    """`ShardLeases` on the Redis client (and key prefix) of a `RedisStreamBackend`."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.redis = client
        self.prefix = prefix
        self._scripts = {
            name: client.register_script(source)
            for name, source in [("take", _TAKE), ("renew", _RENEW), ("ask", _ASK),
                                 ("release", _RELEASE), ("checkpoint", _CHECKPOINT)]
        }  # fmt: skip

    def _key(self, consumer: str, stream: str, shard: str) -> str:
        return f"{self.prefix}lease:{consumer}:{stream}/{shard}"

    def _run(self, name: str, keys: list[str], *args: Any) -> Any:
        return self._scripts[name](keys=keys, args=list(args))

    def leases(self, consumer: str, stream: str, shards: Sequence[str]) -> list[Lease]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        for shard in shards:
            pipe.hmget(self._key(consumer, stream, shard), "owner", "counter", "expires", "wanted")
        replies = pipe.execute()
        seconds, micros = replies[0]
        now = seconds * 1000 + micros // 1000
        result = []
        for shard, (owner, counter, expires, wanted) in zip(shards, replies[1:], strict=True):
            name = as_text(owner) if owner else ""
            live = bool(name) and int(expires or 0) > now
            result.append(
                Lease(shard, name, int(counter or 0), live, as_text(wanted) if wanted else "")
            )
        return result

    def take(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, ttl_s: float
    ) -> int | None:
        got = int(self._run("take", [self._key(consumer, stream, shard)], owner, counter,
                            int(ttl_s * 1000)))  # fmt: skip
        return None if got < 0 else got

    def renew(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, ttl_s: float
    ) -> tuple[bool, str]:
        held, wanted = self._run(
            "renew", [self._key(consumer, stream, shard)], owner, counter, int(ttl_s * 1000)
        )
        return bool(held), as_text(wanted) if wanted else ""

    def ask(self, consumer: str, stream: str, shard: str, owner: str, counter: int) -> bool:
        return bool(self._run("ask", [self._key(consumer, stream, shard)], owner, counter))

    def release(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, to: str,
        ttl_s: float,
    ) -> bool:  # fmt: skip
        key = self._key(consumer, stream, shard)
        return bool(self._run("release", [key], owner, counter, to, int(ttl_s * 1000)))

    def checkpoint(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, sequence: str
    ) -> bool:
        keys = [self._key(consumer, stream, shard), f"{self.prefix}checkpoints:{consumer}"]
        return bool(self._run("checkpoint", keys, owner, counter, f"{stream}/{shard}", sequence))
