"""The durable queue on Redis Streams with consumer groups: many nodes share queues (storage layer).

Per queue: a stream read through one consumer group (`XREADGROUP`); a received message is
pending (in the PEL) until deleted (`XACK` + `XDEL`). The PEL's idle time is the
visibility clock: `XAUTOCLAIM` with the queue's visibility timeout hands entries idle that
long to the next receiver, so a node that died holding messages has them redelivered; a
shorter timeout is set by back-dating the idle time (`XCLAIM ... IDLE`), a longer one by a
deadline in a hold hash. The PEL's delivery count is the receive count, and a receipt
handle is `entry-id/count`, so a handle from an earlier delivery can never delete a later
one. Delays wait in a sorted set and join the stream on receive; dedup ids are `SET NX`
keys with the window as TTL. Each operation is one Lua script (atomic, one round trip);
scripts derive keys from the queue name, so this needs one Redis (not Cluster).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import redis
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

DEFAULT_PREFIX = "firebox:"
# A waiting receive blocks on new entries in slices this long, then looks again for
# delayed and expired messages (which wake no XREAD).
WAIT_SLICE_S = 0.1

_HANDLE = re.compile(r"^(\d+-\d+)/(\d+)$")
_MISSING = re.compile(r"QUEUE_NOT_FOUND ([A-Za-z0-9_.-]+)")

_PRELUDE = """
local P = ARGV[1]
local G = 'firebox'
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function queue(name)
  local raw = redis.call('HGET', P .. 'queues', name)
  if not raw then return nil end
  local meta = cjson.decode(raw)
  local a = meta['attributes']
  local b = P .. 'q:' .. meta['uid'] .. ':'
  local mrc = a['max_receive_count']
  return {
    attrs = a, vis = math.floor(a['visibility_timeout_s'] * 1000),
    mrc = (type(mrc) == 'number') and mrc or 0, dlq = a['dead_letter_queue'],
    stream = b .. 'stream', delayed = b .. 'delayed', msg = b .. 'm:', hold = b .. 'hold',
    stats = b .. 'stats', cursor = b .. 'cursor', dedup = b .. 'dedup:',
  }
end
local function must(name)
  local q = queue(name)
  if not q then error({err = 'QUEUE_NOT_FOUND ' .. name}) end
  return q
end
local function pending_count(q, id)
  local p = redis.call('XPENDING', q.stream, G, id, id, 1)
  if #p == 0 then return nil end
  return p[1][4]
end
"""

_CREATE = (
    _PRELUDE
    + """
local existing = redis.call('HGET', P .. 'queues', ARGV[2])
if existing then return existing end
local dlq = ARGV[5]
if dlq ~= '' and not queue(dlq) then error({err = 'QUEUE_NOT_FOUND ' .. dlq}) end
redis.call('HSET', P .. 'queues', ARGV[2], ARGV[3])
redis.call('XGROUP', 'CREATE', P .. 'q:' .. ARGV[4] .. ':stream', G, '0', 'MKSTREAM')
return false
"""
)

# ARGV: prefix, name, attributes json, dead-letter queue name ('' for none).
_SET_ATTRIBUTES = (
    _PRELUDE
    + """
must(ARGV[2])
if ARGV[4] ~= '' and not queue(ARGV[4]) then error({err = 'QUEUE_NOT_FOUND ' .. ARGV[4]}) end
local meta = cjson.decode(redis.call('HGET', P .. 'queues', ARGV[2]))
meta['attributes'] = cjson.decode(ARGV[3])
redis.call('HSET', P .. 'queues', ARGV[2], cjson.encode(meta))
return 1
"""
)

# ARGV: prefix, name, drop the queue ('1') or only its messages ('0').
_CLEAR = (
    _PRELUDE
    + """
local q = must(ARGV[2])
for _, id in ipairs(redis.call('ZRANGE', q.delayed, 0, -1)) do redis.call('DEL', q.msg .. id) end
redis.call('DEL', q.stream, q.delayed, q.hold, q.cursor)
if ARGV[3] == '1' then
  redis.call('DEL', q.stats)
  redis.call('HDEL', P .. 'queues', ARGV[2])
else
  redis.call('XGROUP', 'CREATE', q.stream, G, '0', 'MKSTREAM')
end
return 1
"""
)

# ARGV: prefix, name, message id, body, attributes json, delay ms (-1: queue's), dedup id.
_SEND = (
    _PRELUDE
    + """
local q = must(ARGV[2])
if ARGV[7] ~= '' then
  local key = q.dedup .. ARGV[7]
  local first = redis.call('GET', key)
  if first then return first end
  redis.call('SET', key, ARGV[3], 'PX', math.floor(q.attrs['dedup_window_s'] * 1000))
end
local now = now_ms()
local delay = tonumber(ARGV[6])
if delay < 0 then delay = math.floor(q.attrs['delay_s'] * 1000) end
if delay > 0 then
  redis.call('HSET', q.msg .. ARGV[3], 'body', ARGV[4], 'attrs', ARGV[5], 'sent_ms', now)
  redis.call('ZADD', q.delayed, now + delay, ARGV[3])
else
  redis.call('XADD', q.stream, '*', 'id', ARGV[3], 'body', ARGV[4], 'attrs', ARGV[5], 'sent_ms', now)
end
redis.call('HINCRBY', q.stats, 'sent', 1)
return ARGV[3]
"""
)

# ARGV: prefix, name, consumer, limit, visibility ms (-1: queue's).
# Returns {stream key, {entry id, message id, body, attrs, sent ms, receive count}...}.
_RECEIVE = (
    _PRELUDE
    + """
local q = must(ARGV[2])
local consumer, limit = ARGV[3], tonumber(ARGV[4])
local now, V = now_ms(), q.vis
local vis = tonumber(ARGV[5])
if vis < 0 then vis = V end
local dlq = nil
if q.mrc > 0 then dlq = queue(q.dlq) end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', q.delayed, '-inf', now, 'LIMIT', 0, 100)) do
  local f = redis.call('HMGET', q.msg .. id, 'body', 'attrs', 'sent_ms')
  if f[1] then
    redis.call('XADD', q.stream, '*', 'id', id, 'body', f[1], 'attrs', f[2], 'sent_ms', f[3])
  end
  redis.call('DEL', q.msg .. id)
  redis.call('ZREM', q.delayed, id)
end
redis.call('XTRIM', q.stream, 'MINID', now - math.floor(q.attrs['retention_s'] * 1000))
local out, moved = {q.stream}, 0
local function deliver(id, fields, count)
  local m = {}
  for i = 1, #fields, 2 do m[fields[i]] = fields[i + 1] end
  if dlq and count > q.mrc then
    redis.call('XADD', dlq.stream, '*', 'id', m['id'], 'body', m['body'], 'attrs', m['attrs'],
      'sent_ms', m['sent_ms'])
    redis.call('XACK', q.stream, G, id)
    redis.call('XDEL', q.stream, id)
    redis.call('HDEL', q.hold, id)
    moved = moved + 1
    return
  end
  if vis <= V then
    if vis < V then redis.call('XCLAIM', q.stream, G, consumer, 0, id, 'IDLE', V - vis, 'JUSTID') end
    redis.call('HDEL', q.hold, id)
  else
    redis.call('HSET', q.hold, id, now + vis)
  end
  table.insert(out, {id, m['id'], m['body'], m['attrs'], m['sent_ms'], count})
end
local start = redis.call('GET', q.cursor) or '0-0'
for _ = 1, 10 do
  if #out > limit then break end
  local from = start
  local r = redis.call('XAUTOCLAIM', q.stream, G, consumer, V, from, 'COUNT', limit + 1 - #out)
  start = r[1]
  for _, e in ipairs(r[2]) do
    if e and e[2] then
      local id = e[1]
      local count = pending_count(q, id)
      local hold = tonumber(redis.call('HGET', q.hold, id) or '0')
      if hold > now then
        redis.call('XCLAIM', q.stream, G, consumer, 0, id, 'IDLE', math.max(0, V - (hold - now)),
          'RETRYCOUNT', count - 1, 'JUSTID')
      else
        deliver(id, e[2], count)
      end
    end
  end
  for _, id in ipairs(r[3] or {}) do redis.call('HDEL', q.hold, id) end
  if start == '0-0' and from == '0-0' then break end
end
redis.call('SET', q.cursor, start)
if #out <= limit then
  local r = redis.call('XREADGROUP', 'GROUP', G, consumer, 'COUNT', limit + 1 - #out,
    'STREAMS', q.stream, '>')
  if r then for _, e in ipairs(r[1][2]) do deliver(e[1], e[2], 1) end end
end
if #out > 1 then redis.call('HINCRBY', q.stats, 'received', #out - 1) end
if moved > 0 then redis.call('HINCRBY', q.stats, 'dead_lettered', moved) end
return out
"""
)

# ARGV: prefix, name, entry id, receive count.
_DELETE = (
    _PRELUDE
    + """
local q = must(ARGV[2])
if tostring(pending_count(q, ARGV[3])) ~= ARGV[4] then return 0 end
redis.call('XACK', q.stream, G, ARGV[3])
redis.call('XDEL', q.stream, ARGV[3])
redis.call('HDEL', q.hold, ARGV[3])
redis.call('HINCRBY', q.stats, 'deleted', 1)
return 1
"""
)

# ARGV: prefix, name, entry id, receive count, consumer, timeout ms.
_CHANGE_VISIBILITY = (
    _PRELUDE
    + """
local q = must(ARGV[2])
if tostring(pending_count(q, ARGV[3])) ~= ARGV[4] then return 0 end
local t, V = tonumber(ARGV[6]), q.vis
if t <= V then
  redis.call('HDEL', q.hold, ARGV[3])
  redis.call('XCLAIM', q.stream, G, ARGV[5], 0, ARGV[3], 'IDLE', V - t, 'JUSTID')
else
  redis.call('HSET', q.hold, ARGV[3], now_ms() + t)
  redis.call('XCLAIM', q.stream, G, ARGV[5], 0, ARGV[3], 'IDLE', 0, 'JUSTID')
end
return 1
"""
)

# ARGV: prefix, name. Returns {depth, in flight, delayed, oldest sent ms (-1), now ms, totals}.
_STATS = (
    _PRELUDE
    + """
local q = must(ARGV[2])
local now = now_ms()
local pending = redis.call('XPENDING', q.stream, G)[1]
local expired = 0
if pending > 0 then
  for _, p in ipairs(redis.call('XPENDING', q.stream, G, 'IDLE', q.vis, '-', '+', 10000)) do
    if tonumber(redis.call('HGET', q.hold, p[1]) or '0') <= now then expired = expired + 1 end
  end
end
local oldest = -1
local head = redis.call('XRANGE', q.stream, '-', '+', 'COUNT', 1)
if #head > 0 then
  local f = head[1][2]
  for i = 1, #f, 2 do if f[i] == 'sent_ms' then oldest = tonumber(f[i + 1]) end end
end
local undelivered = math.max(0, redis.call('XLEN', q.stream) - pending)
local t = redis.call('HMGET', q.stats, 'sent', 'received', 'deleted', 'dead_lettered')
return {undelivered + expired, pending - expired, redis.call('ZCARD', q.delayed), oldest, now,
  tonumber(t[1] or '0'), tonumber(t[2] or '0'), tonumber(t[3] or '0'), tonumber(t[4] or '0')}
"""
)


def default_consumer_name() -> str:
    """Return this process's consumer name: `hostname-pid`."""
    return f"{socket.gethostname()}-{os.getpid()}"


def as_text(value: bytes | str) -> str:
    """Return a Redis reply value as text (replies are bytes; the stubs also allow str)."""
    return value.decode() if isinstance(value, bytes) else value


def connect(url: str) -> redis.Redis:
    """Return a Redis client for `url` (bytes in, bytes out; thread-safe connection pool)."""
    client: redis.Redis = redis.Redis.from_url(url, socket_connect_timeout=5)
    return client


class RedisQueueBackend(SendsInBatches):
    """`QueueBackend` on Redis Streams; every node gives its own `consumer` name."""

    def __init__(
        self, url: str, *, consumer: str | None = None, prefix: str = DEFAULT_PREFIX
    ) -> None:
        self.redis = connect(url)
        self.consumer = consumer or default_consumer_name()
        self.prefix = prefix
        self._scripts = {
            name: self.redis.register_script(source)
            for name, source in [
                ("create", _CREATE), ("clear", _CLEAR), ("send", _SEND), ("receive", _RECEIVE),
                ("delete", _DELETE), ("visibility", _CHANGE_VISIBILITY), ("stats", _STATS),
                ("set_attributes", _SET_ATTRIBUTES),
            ]
        }  # fmt: skip

    def _run(self, script: str, queue: str, *args: str | int | bytes) -> Any:
        try:
            return self._scripts[script](args=[self.prefix, queue, *args])
        except redis.ResponseError as exc:
            raise _mapped(exc) from None

    # --- queues ---------------------------------------------------------------------

    def create_queue(self, name: str, attributes: QueueAttributes | None = None) -> QueueAttributes:
        check_name(name)
        attrs = attributes or QueueAttributes()
        attrs.validate()
        uid = uuid.uuid4().hex
        meta = json.dumps({"uid": uid, "attributes": asdict(attrs)})
        existing = self._run("create", name, meta, uid, attrs.dead_letter_queue or "")
        if existing is not None and _attributes_of(existing) != attrs:
            raise QueueAlreadyExists(name)
        return attrs

    def delete_queue(self, name: str) -> None:
        self._run("clear", name, "1")

    def set_attributes(self, name: str, attributes: QueueAttributes) -> QueueAttributes:
        attributes.validate()
        encoded = json.dumps(asdict(attributes))
        self._run("set_attributes", name, encoded, attributes.dead_letter_queue or "")
        return attributes

    def get_attributes(self, name: str) -> QueueAttributes:
        raw = self.redis.hget(self.prefix + "queues", name)
        if raw is None:
            raise QueueNotFound(name)
        return _attributes_of(raw)

    def list_queues(self, prefix: str = "") -> list[str]:
        names = [as_text(n) for n in self.redis.hkeys(self.prefix + "queues")]
        return sorted(n for n in names if n.startswith(prefix))

    # --- messages -------------------------------------------------------------------

    def send_batch(self, queue: str, entries: Sequence[SendEntry]) -> list[str]:
        check_entries(entries)
        # One pipeline of per-message scripts: one round trip, each message atomic.
        pipe = self.redis.pipeline(transaction=False)
        for entry in entries:
            delay_ms = -1 if entry.delay_s is None else round(entry.delay_s * 1000)
            attrs = json.dumps(entry.attributes or {})
            message_id = str(uuid.uuid4())
            args: list[str | int | bytes] = [self.prefix, queue, message_id, bytes(entry.body)]
            args += [attrs, delay_ms, entry.dedup_id or ""]
            self._scripts["send"](args=args, client=pipe)
        try:
            return [as_text(sent) for sent in pipe.execute()]
        except redis.ResponseError as exc:
            raise _mapped(exc) from None

    def receive(
        self,
        queue: str,
        max_messages: int = 1,
        visibility_timeout_s: float | None = None,
        wait_s: float = 0.0,
    ) -> list[Message]:
        check_receive(max_messages, visibility_timeout_s, wait_s)
        vis_ms = -1 if visibility_timeout_s is None else round(visibility_timeout_s * 1000)
        deadline = time.monotonic() + wait_s
        while True:
            stream, *rows = self._run("receive", queue, self.consumer, max_messages, vis_ms)
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0:
                return [_message(row) for row in rows]
            # Wakes as soon as any message is added; no entry is consumed here.
            self.redis.xread(
                {stream: "$"}, block=max(1, round(min(remaining, WAIT_SLICE_S) * 1000))
            )

    def delete(self, queue: str, receipt_handle: str) -> bool:
        entry, count = _parse_handle(receipt_handle)
        return bool(self._run("delete", queue, entry, count))

    def change_visibility(self, queue: str, receipt_handle: str, timeout_s: float) -> bool:
        check_visibility(timeout_s)
        entry, count = _parse_handle(receipt_handle)
        done = self._run("visibility", queue, entry, count, self.consumer, round(timeout_s * 1000))
        return bool(done)

    def purge(self, queue: str) -> None:
        self._run("clear", queue, "0")

    def stats(self, queue: str) -> QueueStats:
        depth, in_flight, delayed, oldest_ms, now_ms, *totals = self._run("stats", queue)
        age = max(0.0, (now_ms - oldest_ms) / 1000) if oldest_ms >= 0 else 0.0
        sent, received, deleted, dead = (int(t) for t in totals)
        return QueueStats(depth, in_flight, delayed, age, sent, received, deleted, dead)

    def close(self) -> None:
        self.redis.close()


def _mapped(exc: redis.ResponseError) -> Exception:
    """Return QueueNotFound for a script's missing-queue error, else the error itself."""
    missing = _MISSING.search(str(exc))
    return exc if missing is None else QueueNotFound(missing.group(1))


def _attributes_of(raw: bytes | str) -> QueueAttributes:
    return QueueAttributes(**json.loads(raw)["attributes"])


def _message(row: list[Any]) -> Message:
    entry, message_id, body, attrs, sent_ms, count = row
    return Message(
        id=message_id.decode(),
        body=bytes(body),
        receipt_handle=f"{entry.decode()}/{count}",
        receive_count=int(count),
        sent_at=int(sent_ms) / 1000,
        attributes=json.loads(attrs),
    )


def _parse_handle(handle: str) -> tuple[str, int]:
    match = _HANDLE.match(handle)
    if match is None:
        raise InvalidReceiptHandle(handle)
    return match.group(1), int(match.group(2))
