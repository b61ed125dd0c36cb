"""The retry policy: backoff delays, attempt counting and age limits (events layer).

Async invocations retry a failed event after an exponential, fully jittered delay, up to
`maximum_retry_attempts` times and while it is younger than `maximum_event_age_s`.
Mapping pollers back off after a function error or throttle with a delay that doubles
from a base up to a cap and starts over after a success; they give a record up after
`maximum_retry_attempts` retries or past `maximum_record_age_s`, where -1 means no limit.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from firebox.runtime.events.queue import MAX_DELAY_S

# Lambda's defaults for async invocations: 2 retries, events kept up to 6 hours.
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_EVENT_AGE_S = 6 * 3600
MAX_RETRIES = 10
# Backoff before retry n (1-based): base * 2^(n-1), full jitter, capped by the queue's max delay.
BACKOFF_BASE_S = 1.0


def backoff_s(attempt: int, base: float, rng: random.Random) -> float:
    """Return the delay before retry `attempt` (1-based): exponential with full jitter."""
    ceiling = min(MAX_DELAY_S, base * 2 ** (attempt - 1))
    return rng.uniform(ceiling / 2, ceiling)


def retries_exhausted(attempts: int, maximum_retry_attempts: int) -> bool:
    """Return whether `attempts` failed attempts used up `maximum_retry_attempts` retries.

    The first attempt is not a retry, so n retries allow n + 1 attempts; -1 (or any
    negative maximum) means retry forever.
    """
    return 0 <= maximum_retry_attempts < attempts


def too_old(born_at: float, max_age_s: float, now: float) -> bool:
    """Return whether something created at `born_at` is older than `max_age_s` at `now`.

    A negative maximum (-1) means no age limit.
    """
    return 0 <= max_age_s < now - born_at


@dataclass
class DoublingBackoff:
    """A delay that doubles from `base_s` up to `max_s` each time it is taken, and starts
    over at `base_s` after a success (a mapping poller's backoff)."""

    base_s: float
    max_s: float
    delay_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.delay_s = self.base_s

    def take(self) -> float:
        """Return the current delay and double it (up to `max_s`) for next time."""
        delay, self.delay_s = self.delay_s, min(self.delay_s * 2, self.max_s)
        return delay

    def reset(self) -> None:
        """Start over at `base_s` (after a success)."""
        self.delay_s = self.base_s
