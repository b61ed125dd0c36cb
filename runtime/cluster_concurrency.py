"""Cluster-wide concurrency: every function's cap and the account's limit, counted for all
nodes at once in Redis (service layer, beside admission).

Each running invocation holds a *slot*: a member of the function's sorted set and of the
account's, scored by its expiry on the Redis server's clock. Taking a slot is one Lua
script that drops expired members and adds one only while both sets are below their
limits, so the limits hold across nodes. A node renews the slots it holds every third of
FIREBOX_CONCURRENCY_LEASE_S from a thread of its own; a node that dies stops renewing
and its slots expire, so they are never leaked.

Local token cache: a slot freed by an invocation stays with its node for
FIREBOX_CONCURRENCY_LINGER_S, and the node's next invocation of the same function takes
it with no round trip; slots still idle after that go back to Redis in one batch. The
guarantee is unchanged (an idle slot is still counted), at the price that another node
may be throttled for that long while this one holds idle slots.

Redis unreachable, or restarted (it keeps nothing on disk): new invocations are
throttled rather than let through unchecked. After a restart the first script to notice
(the epoch key is gone) sets a grace period of one lease, during which slots are only
re-asserted by the nodes that hold them, and none are handed out.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

from firebox.runtime import config
from firebox.runtime.errors import FireboxError, Throttled

log = logging.getLogger("firebox.concurrency")

# How long a slot outlives its node's last renewal: the longest a dead node's running
# invocations keep counting against the limits.
LEASE_S = config.FIREBOX_CONCURRENCY_LEASE_S.get()
# How long a freed slot stays with its node for the next invocation of that function.
LINGER_S = config.FIREBOX_CONCURRENCY_LINGER_S.get()
# Lambda's default account limit.
ACCOUNT_LIMIT = config.FIREBOX_ACCOUNT_CONCURRENCY.get()
MODE = config.FIREBOX_CLUSTER_CONCURRENCY.get()
# After a Redis error, calls are throttled at once for this long instead of each waiting
# for the connection to fail (the admission path runs on the event loop).
BREAKER_S = 0.5
# A Redis call in the admission path gives up after this long.
SOCKET_TIMEOUT_S = 0.25

_PRELUDE = """
local P = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local recovering = false
if redis.call('EXISTS', P .. 'conc:epoch') == 0 then
  redis.call('SET', P .. 'conc:epoch', now)
  redis.call('SET', P .. 'conc:grace', 1, 'PX', ttl)
end
if redis.call('EXISTS', P .. 'conc:grace') == 1 then recovering = true end
local account = P .. 'conc:account'
"""

# ARGV: prefix, ttl ms, function, slot, function limit, account limit (0: none).
# Returns 1 (taken), 0 (function at its limit), -1 (account at its limit), -2 (recovering).
_TAKE = (
    _PRELUDE
    + """
if recovering then return -2 end
local key = P .. 'conc:f:' .. ARGV[3]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
redis.call('ZREMRANGEBYSCORE', account, '-inf', now)
if redis.call('ZCARD', key) >= tonumber(ARGV[5]) then return 0 end
local limit = tonumber(ARGV[6])
if limit > 0 and redis.call('ZCARD', account) >= limit then return -1 end
redis.call('ZADD', key, now + ttl, ARGV[4])
redis.call('ZADD', account, now + ttl, ARGV[4])
redis.call('PEXPIRE', key, ttl * 2)
redis.call('PEXPIRE', account, ttl * 2)
return 1
"""
)

# ARGV: prefix, ttl ms, then (function, slot) pairs to renew (re-added if Redis lost them).
_RENEW = (
    _PRELUDE
    + """
for i = 3, #ARGV, 2 do
  local key = P .. 'conc:f:' .. ARGV[i]
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('ZADD', account, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl * 2)
end
redis.call('PEXPIRE', account, ttl * 2)
return 1
"""
)

# ARGV: prefix, then (function, slot) pairs to give back.
_GIVE_BACK = """
local P = ARGV[1]
for i = 2, #ARGV, 2 do
  redis.call('ZREM', P .. 'conc:f:' .. ARGV[i], ARGV[i + 1])
  redis.call('ZREM', P .. 'conc:account', ARGV[i + 1])
end
return 1
"""


class AccountThrottled(Throttled):
    """Every function together is at the account's concurrency limit, or the cluster's
    counter cannot be checked right now; retry after `retry_after` seconds.

    Not a wire type of its own (it is defined outside `errors.py` on purpose): callers see
    `Throttled`, a 429 with Retry-After, and only the message differs.
    """

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        FireboxError.__init__(self, message)
        self.retry_after = retry_after


class ClusterConcurrency:
    """Holds this node's share of the cluster-wide slots; `acquire`/`release` per invocation."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "firebox:",
        account_limit: int = ACCOUNT_LIMIT,
        lease_s: float = LEASE_S,
        linger_s: float = LINGER_S,
    ) -> None:
        import redis

        self.redis = redis.Redis.from_url(
            url, socket_connect_timeout=SOCKET_TIMEOUT_S, socket_timeout=SOCKET_TIMEOUT_S
        )
        self.prefix = prefix
        self.account_limit = account_limit
        self.lease_s = lease_s
        self.linger_s = linger_s
        self.node_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        # The renewing thread waits longer than the admission path may: a renewal that
        # times out under load would let slots expire while they are in use.
        self.tend_redis = redis.Redis.from_url(
            url, socket_connect_timeout=lease_s / 3, socket_timeout=lease_s / 3
        )
        self._take = self.redis.register_script(_TAKE)
        self._give_back_now = self.redis.register_script(_GIVE_BACK)
        self._renew = self.tend_redis.register_script(_RENEW)
        self._give_back = self.tend_redis.register_script(_GIVE_BACK)
        self._lock = threading.Lock()
        self._busy: dict[str, set[str]] = defaultdict(set)
        self._idle: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self._serial = 0
        self._broken_until = 0.0
        self._renewed_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.round_trips = 0  # Redis calls made by acquire and release (not by the thread)

    def start(self) -> None:
        """Start renewing held slots and giving back idle ones (a daemon thread)."""
        try:  # a fresh cluster needs no grace period; a restarted Redis gets one (see above)
            self.redis.set(self.prefix + "conc:epoch", int(time.time() * 1000), nx=True)
        except Exception as exc:
            log.warning("concurrency counter unreachable at start: %s", exc)
        self._stop.clear()
        self._thread = threading.Thread(target=self._tend, name="concurrency", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and give back every slot held (idle and, at shutdown, busy)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            held = [(f, s) for f, slots in self._busy.items() for s in slots]
            held += [(f, s) for f, idle in self._idle.items() for s, _ in idle]
            self._busy.clear()
            self._idle.clear()
        try:
            self._call(self._give_back, held)
        except Exception as exc:  # they expire by themselves
            log.warning("could not give back concurrency slots: %s", exc)
        self.redis.close()
        self.tend_redis.close()

    def acquire(self, function: str, limit: int) -> Throttled | None:
        """Take a slot for one invocation of `function` under its cluster-wide `limit` and
        the account's; return None when taken, or the Throttled to answer (nothing held)."""
        with self._lock:
            idle = self._idle.get(function)
            if idle and len(self._busy[function]) < limit:
                slot, _ = idle.pop()
                self._busy[function].add(slot)
                return None
            self._serial += 1
            slot = f"{self.node_id}:{self._serial}"
        if limit <= 0:
            return Throttled(function, limit)
        if time.monotonic() < self._broken_until:
            return AccountThrottled(
                "Rate exceeded: the cluster's concurrency counter is unreachable"
            )
        try:
            self.round_trips += 1
            got = int(
                self._take(
                    args=[
                        self.prefix,
                        int(self.lease_s * 1000),
                        function,
                        slot,
                        limit,
                        self.account_limit,
                    ],
                )
            )
        except Exception as exc:
            self._broken_until = time.monotonic() + BREAKER_S
            log.warning("concurrency counter unreachable: %s", exc)
            return AccountThrottled(
                "Rate exceeded: the cluster's concurrency counter is unreachable"
            )
        if got == 0:
            return Throttled(function, limit)
        if got == -1:
            return AccountThrottled(
                f"Rate exceeded: the account is at its concurrency limit of {self.account_limit}"
            )
        if got == -2:
            return AccountThrottled(
                "Rate exceeded: the concurrency counter is recovering from a restart", self.lease_s
            )
        with self._lock:
            self._busy[function].add(slot)
        return None

    def release(self, function: str) -> None:
        """Free the slot of one finished invocation: it lingers here for the next one
        (with FIREBOX_CONCURRENCY_LINGER_S=0 it goes back to Redis at once)."""
        with self._lock:
            busy = self._busy.get(function)
            if not busy:
                return
            slot = busy.pop()
            # Keep it only while renewals succeed; otherwise Redis may have dropped it.
            keep = self.linger_s > 0 and time.monotonic() - self._renewed_at < self.lease_s
            if keep:
                self._idle[function].append((slot, time.monotonic()))
        if not keep and self.linger_s <= 0:  # no cache: give it back now (a round trip)
            try:
                self.round_trips += 1
                self._call(self._give_back_now, [(function, slot)])
            except Exception as exc:  # it expires by itself
                log.warning("could not give back a concurrency slot: %s", exc)

    # --- the thread ---------------------------------------------------------------------

    def _call(self, script: Any, pairs: list[tuple[str, str]], *head: Any) -> None:
        if not pairs and script is not self._renew:
            return
        args: list[Any] = [self.prefix, *head]
        for function, slot in pairs:
            args += [function, slot]
        script(args=args)

    def _tend(self) -> None:
        period = min(self.lease_s / 3, max(self.linger_s, 0.01))
        last_renew = 0.0
        while not self._stop.wait(period):
            now = time.monotonic()
            with self._lock:
                stale = [
                    (f, s) for f, idle in self._idle.items() for s, t in idle
                    if now - t >= self.linger_s
                ]  # fmt: skip
                for idle in self._idle.values():
                    idle[:] = [(s, t) for s, t in idle if now - t < self.linger_s]
                renew = now - last_renew >= self.lease_s / 3
                held = [(f, s) for f, slots in self._busy.items() for s in slots]
                held += [(f, s) for f, idle in self._idle.items() for s, _ in idle]
            try:
                self._call(self._give_back, stale)
                if renew:
                    self._call(self._renew, held, int(self.lease_s * 1000))
                    last_renew = now
                    self._renewed_at = now
            except Exception as exc:  # idle slots are given up locally; they expire there
                log.warning("concurrency slots not renewed: %s", exc)
                if now - self._renewed_at >= self.lease_s:
                    with self._lock:
                        self._idle.clear()


def open_cluster_concurrency(queue_url: str | None) -> ClusterConcurrency | None:
    """Return the cluster-wide counter for a node whose events backend is `queue_url`, or
    None (one node, or FIREBOX_CLUSTER_CONCURRENCY=0): Redis URLs turn it on unless off."""
    redis_url = queue_url is not None and queue_url.startswith(("redis://", "rediss://", "unix://"))
    if MODE == "0" or (MODE == "auto" and not redis_url):
        return None
    if not redis_url:
        raise ValueError("FIREBOX_CLUSTER_CONCURRENCY=1 needs a Redis FIREBOX_QUEUE_URL")
    assert queue_url is not None
    return ClusterConcurrency(queue_url)
