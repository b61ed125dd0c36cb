"""The durable queue interface: SQS-like named queues under async invocation (events layer).

Delivery is at least once and ordering is best effort. A received message stays invisible
for its visibility timeout; if it is not deleted by then it is delivered again, and once
its receive count passes the queue's `max_receive_count` it moves to the dead-letter queue
instead. Backends: `firebox.runtime.storage.queue_sqlite` (one node, the default) and
`firebox.runtime.storage.queue_redis` (many nodes); `storage.backends` picks one from a URL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from firebox.runtime.errors import Forbidden

# SQS's defaults: 30 s visibility, 4 days retention, no delay.
DEFAULT_VISIBILITY_TIMEOUT_S = 30.0
DEFAULT_RETENTION_S = 4 * 24 * 3600.0
DEFAULT_DELAY_S = 0.0
# SQS FIFO's deduplication interval: a repeated dedup id within 5 minutes is dropped.
DEFAULT_DEDUP_WINDOW_S = 300.0
# SQS's limits: visibility up to 12 h, delay up to 15 min, 10 messages per receive.
MAX_VISIBILITY_TIMEOUT_S = 12 * 3600.0
MAX_RECEIVE_COUNT = 1000  # SQS's maxReceiveCount range
MAX_DELAY_S = 15 * 60.0
MAX_RECEIVE_BATCH = 10
# A long poll waits at most this long (SQS: 20 s).
MAX_WAIT_S = 20.0

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


@dataclass(frozen=True)
class QueueAttributes:
    """The settings of one queue; `max_receive_count` and `dead_letter_queue` go together."""

    visibility_timeout_s: float = DEFAULT_VISIBILITY_TIMEOUT_S
    max_receive_count: int | None = None
    dead_letter_queue: str | None = None
    retention_s: float = DEFAULT_RETENTION_S
    delay_s: float = DEFAULT_DELAY_S
    dedup_window_s: float = DEFAULT_DEDUP_WINDOW_S

    def validate(self) -> None:
        """Raise ValueError when a value is out of range or the redrive policy is half set."""
        for key in ("visibility_timeout_s", "retention_s", "delay_s", "dedup_window_s"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            if isinstance(value, int) and abs(value) > 2**53:
                raise ValueError(f"{key} is out of range")
        count = self.max_receive_count
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            raise ValueError("max_receive_count must be an integer")
        if count is not None and count > MAX_RECEIVE_COUNT:
            raise ValueError(f"max_receive_count must be 1..{MAX_RECEIVE_COUNT}")
        if self.dead_letter_queue is not None and not isinstance(self.dead_letter_queue, str):
            raise ValueError("dead_letter_queue must be a queue name")
        if not 0 <= self.visibility_timeout_s <= MAX_VISIBILITY_TIMEOUT_S:
            raise ValueError(f"visibility_timeout_s must be 0..{MAX_VISIBILITY_TIMEOUT_S:g}")
        if not 0 <= self.delay_s <= MAX_DELAY_S:
            raise ValueError(f"delay_s must be 0..{MAX_DELAY_S:g}")
        if self.retention_s <= 0 or self.dedup_window_s <= 0:
            raise ValueError("retention_s and dedup_window_s must be positive")
        if (self.max_receive_count is None) != (self.dead_letter_queue is None):
            raise ValueError("max_receive_count and dead_letter_queue must be set together")
        if self.max_receive_count is not None and self.max_receive_count < 1:
            raise ValueError("max_receive_count must be at least 1")


@dataclass(frozen=True)
class Message:
    """One delivery of a message; `receipt_handle` names this delivery, not the message."""

    id: str
    body: bytes
    receipt_handle: str
    receive_count: int
    sent_at: float
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendEntry:
    """One message of `send_batch`; `delay_s=None` means the queue's delay."""

    body: bytes
    attributes: dict[str, str] | None = None
    delay_s: float | None = None
    dedup_id: str | None = None


@dataclass(frozen=True)
class QueueStats:
    """Counts for one queue: current sizes, then running totals since it was created.

    `depth` is visible messages, `in_flight` received and not yet deleted or expired,
    `delayed` not yet visible after a send delay; `oldest_age_s` is 0.0 for an empty queue.
    Redis counts are approximate under concurrent use, as SQS's are.
    """

    depth: int
    in_flight: int
    delayed: int
    oldest_age_s: float
    sent: int
    received: int
    deleted: int
    dead_lettered: int


@runtime_checkable
class QueueBackend(Protocol):
    """Named durable queues; every method is safe to call from many threads."""

    def create_queue(self, name: str, attributes: QueueAttributes | None = None) -> QueueAttributes:
        """Create a queue (idempotent for equal attributes) and return its attributes.

        Raises QueueAlreadyExists for different attributes, QueueNotFound when the
        dead-letter queue does not exist, ValueError for a bad name or attribute.
        """
        ...

    def delete_queue(self, name: str) -> None:
        """Delete a queue and every message in it; raises QueueNotFound."""
        ...

    def set_attributes(self, name: str, attributes: QueueAttributes) -> QueueAttributes:
        """Replace a queue's attributes (its messages stay); raises QueueNotFound for the
        queue or its new dead-letter queue, ValueError for a bad attribute."""
        ...

    def get_attributes(self, name: str) -> QueueAttributes:
        """Return a queue's attributes; raises QueueNotFound."""
        ...

    def list_queues(self, prefix: str = "") -> list[str]:
        """Return the names of the queues starting with `prefix`, sorted."""
        ...

    def send(
        self,
        queue: str,
        body: bytes,
        *,
        attributes: dict[str, str] | None = None,
        delay_s: float | None = None,
        dedup_id: str | None = None,
    ) -> str:
        """Store a message durably and return its id; raises QueueNotFound.

        A `dedup_id` seen on this queue within the dedup window returns the first
        message's id and stores nothing. `delay_s=None` uses the queue's delay.
        """
        ...

    def send_batch(self, queue: str, entries: Sequence[SendEntry]) -> list[str]:
        """Send several messages; returns their ids in order. Raises QueueNotFound."""
        ...

    def receive(
        self,
        queue: str,
        max_messages: int = 1,
        visibility_timeout_s: float | None = None,
        wait_s: float = 0.0,
    ) -> list[Message]:
        """Return up to `max_messages` (1..10) visible messages, hiding each for its timeout.

        With `wait_s` > 0 it waits (at most that long) until one is visible. Messages past
        the redrive limit move to the dead-letter queue instead. Raises QueueNotFound.
        """
        ...

    def delete(self, queue: str, receipt_handle: str) -> bool:
        """Delete the delivered message; False when the handle is stale (redelivered,
        already deleted or moved). Raises InvalidReceiptHandle for a malformed handle."""
        ...

    def change_visibility(self, queue: str, receipt_handle: str, timeout_s: float) -> bool:
        """Make a delivered message visible again `timeout_s` from now; False when stale."""
        ...

    def purge(self, queue: str) -> None:
        """Delete every message in the queue, in flight or delayed; raises QueueNotFound."""
        ...

    def stats(self, queue: str) -> QueueStats:
        """Return the queue's current counts; raises QueueNotFound."""
        ...

    def close(self) -> None:
        """Release connections; the backend is unusable afterwards."""
        ...


# Queues whose names start with this are the node's own (`firebox-async-invocations`):
# the public queue API, mappings, destinations and DLQs never reach them.
INTERNAL_PREFIX = "firebox-"


# The reserved attribute in which the SQS API keeps the data types of a message's
# attributes that are not `String` (SQS refuses user attribute names starting `AWS.`).
TYPES_ATTRIBUTE = "AWS.Firebox.DataTypes"


def typed_attributes(attributes: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Return a message's attributes as {name: (SQS data type, text or base64 of binary)}."""
    try:
        types = json.loads(attributes.get(TYPES_ATTRIBUTE, "{}"))
    except ValueError:
        types = {}
    if not isinstance(types, dict):
        types = {}
    return {
        name: (str(types.get(name, "String")), value)
        for name, value in attributes.items()
        if name != TYPES_ATTRIBUTE
    }


def is_internal(name: str) -> bool:
    """Return True for the name of one of the node's internal queues."""
    return name.startswith(INTERNAL_PREFIX)


def check_public(name: str, what: str = "queue") -> None:
    """Raise Forbidden when `name` is an internal queue's (or reserved for one)."""
    if is_internal(name):
        raise Forbidden(
            f"{what} {name!r} is internal to the node (names starting with"
            f" {INTERNAL_PREFIX!r} are reserved)"
        )


def check_name(name: str) -> None:
    """Raise ValueError unless `name` is a valid queue or stream name (SQS's alphabet)."""
    if not _NAME.match(name):
        raise ValueError(f"invalid name {name!r}: use 1-80 of A-Z a-z 0-9 _ . -")


def check_receive(max_messages: int, visibility_timeout_s: float | None, wait_s: float) -> None:
    """Raise ValueError for receive arguments out of range."""
    if not 1 <= max_messages <= MAX_RECEIVE_BATCH:
        raise ValueError(f"max_messages must be 1..{MAX_RECEIVE_BATCH}")
    if visibility_timeout_s is not None:
        check_visibility(visibility_timeout_s)
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise ValueError(f"wait_s must be 0..{MAX_WAIT_S:g}")


def check_visibility(timeout_s: float) -> None:
    """Raise ValueError for a visibility timeout out of range."""
    if not 0 <= timeout_s <= MAX_VISIBILITY_TIMEOUT_S:
        raise ValueError(f"visibility timeout must be 0..{MAX_VISIBILITY_TIMEOUT_S:g} s")


def check_delay(delay_s: float) -> None:
    """Raise ValueError for a send delay out of range."""
    if not 0 <= delay_s <= MAX_DELAY_S:
        raise ValueError(f"delay_s must be 0..{MAX_DELAY_S:g}")


class SendsInBatches:
    """Backends implement `send_batch`; `send` is one-entry batch for every backend."""

    def send_batch(self, queue: str, entries: Sequence[SendEntry]) -> list[str]:
        raise NotImplementedError

    def send(
        self,
        queue: str,
        body: bytes,
        *,
        attributes: dict[str, str] | None = None,
        delay_s: float | None = None,
        dedup_id: str | None = None,
    ) -> str:
        """See QueueBackend.send."""
        return self.send_batch(queue, [SendEntry(body, attributes, delay_s, dedup_id)])[0]


def check_entries(entries: Sequence[SendEntry]) -> None:
    """Raise ValueError if an entry's delay is out of SQS's range."""
    for entry in entries:
        if entry.delay_s is not None:
            check_delay(entry.delay_s)
