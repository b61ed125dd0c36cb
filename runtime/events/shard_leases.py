"""Shard leases: which node consumes which shard of a stream mapping (events layer).

The Kinesis Client Library's lease table is the model. Every (mapping, shard) has one
lease: an owner (a node's id), a counter that grows each time the lease changes hands,
and an expiry on the backend's clock. A node consumes a shard only while it holds its
lease; it renews every lease it holds a few times per lease period, whether or not a
batch is running. A lease that is not renewed (its node died or stalled) expires and
another node takes it, reading from the shard's checkpoint.

Checkpoints are written through the lease (`checkpoint`): the write succeeds only while
the writer's counter is still the lease's, so a node that lost a lease can never move
the checkpoint of the node that has it now (the counter is a fencing token).

Balancing (`plan`): a node counts the owners of live leases plus itself and aims at
`ceil(shards / owners)` leases. Below that, it takes free or expired leases; when none
are left, it asks the most loaded owner (one with more than the target) for one. Asking
does not take: the owner finishes the batch in flight, checkpoints, and hands the lease
over (`release` to the node that asked), so a shard moving between live nodes is
processed exactly once and in order. A node leaving cleanly releases what it holds.
Backends: `firebox.runtime.storage.lease_redis` and `firebox.runtime.storage.lease_sqlite`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Lease:
    """One shard's lease as read: `owner` is "" when free; `live` is False once expired."""

    shard: str
    owner: str
    counter: int
    live: bool
    wanted_by: str = ""


@runtime_checkable
class ShardLeases(Protocol):
    """The lease table of stream mappings; safe to call from many threads and nodes."""

    def leases(self, consumer: str, stream: str, shards: Sequence[str]) -> list[Lease]:
        """Return the lease of each shard, in `shards` order (free ones with owner "")."""
        ...

    def take(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, ttl_s: float
    ) -> int | None:
        """Take a free or expired lease whose counter is still `counter`; return the new
        counter, or None if it is live or changed since it was read."""
        ...

    def renew(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, ttl_s: float
    ) -> tuple[bool, str]:
        """Extend a lease `owner` holds with `counter`; return (still held, who asks for it)."""
        ...

    def ask(self, consumer: str, stream: str, shard: str, owner: str, counter: int) -> bool:
        """Ask for a live lease held with `counter`; True if the request was recorded."""
        ...

    def release(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, to: str,
        ttl_s: float,
    ) -> bool:  # fmt: skip
        """Give up a lease: to `to` (a live lease of theirs, counter + 1) or, with `to` "",
        free at once. False if `owner` no longer held it."""
        ...

    def checkpoint(
        self, consumer: str, stream: str, shard: str, owner: str, counter: int, sequence: str
    ) -> bool:
        """Record the shard's checkpoint if `owner` still holds the lease with `counter`;
        False (and nothing written) otherwise."""
        ...


@dataclass(frozen=True)
class Plan:
    """What a node does this round: leases to take (shard, counter) and at most one to ask for."""

    take: list[tuple[str, int]]
    ask: tuple[str, int] | None
    target: int


def plan(leases: Sequence[Lease], me: str) -> Plan:
    """Return the leases `me` should take or ask for, given the whole table (pure).

    The target is `ceil(shards / nodes)`, nodes being the owners of live leases and `me`.
    Free and expired leases are taken first (up to the target); with none left and `me`
    still below it, one lease of the most loaded owner is asked for if that owner holds
    more than the target (so two nodes never trade a lease back and forth).
    """
    live = [lease for lease in leases if lease.live and lease.owner]
    counts = Counter(lease.owner for lease in live)
    nodes = set(counts) | {me}
    target = math.ceil(len(leases) / len(nodes)) if leases else 0
    mine = counts.get(me, 0)
    free = [(lease.shard, lease.counter) for lease in leases if not (lease.live and lease.owner)]
    take = free[: max(0, target - mine)]
    ask = None
    if mine + len(take) < target:
        busiest, most = max(
            ((owner, n) for owner, n in counts.items() if owner != me),
            key=lambda item: (item[1], item[0]),
            default=("", 0),
        )
        if most > target:
            candidates = [
                lease for lease in live if lease.owner == busiest and lease.wanted_by in ("", me)
            ]
            if candidates:
                ask = (candidates[-1].shard, candidates[-1].counter)
    return Plan(take, ask, target)
