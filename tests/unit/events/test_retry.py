"""The events layer's retry policy: async backoff with jitter, attempt counting, age limits,
and the pollers' doubling backoff."""

from __future__ import annotations

import random

import pytest
from firebox.runtime.events.queue import MAX_DELAY_S
from firebox.runtime.events.retry import (
    DoublingBackoff,
    backoff_s,
    retries_exhausted,
    too_old,
)


@pytest.mark.parametrize(("attempt", "ceiling"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0)])
def test_backoff_doubles_per_attempt_with_full_jitter(attempt: int, ceiling: float) -> None:
    rng = random.Random(7)
    delays = [backoff_s(attempt, 1.0, rng) for _ in range(500)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    # Jittered over the whole upper half, not one fixed value.
    assert min(delays) < ceiling * 0.55 and max(delays) > ceiling * 0.95


def test_backoff_scales_with_the_base_and_stops_at_the_queue_max_delay() -> None:
    rng = random.Random(1)
    assert 0.1 <= backoff_s(1, 0.2, rng) <= 0.2
    assert 2.0 <= backoff_s(3, 1.0, rng) <= 4.0
    assert all(MAX_DELAY_S / 2 <= backoff_s(30, 1.0, rng) <= MAX_DELAY_S for _ in range(100))
    assert backoff_s(4, 0.0, rng) == 0.0


def test_backoff_is_reproducible_from_a_seeded_generator() -> None:
    first = [backoff_s(n, 1.0, random.Random(42)) for n in range(1, 6)]
    again = [backoff_s(n, 1.0, random.Random(42)) for n in range(1, 6)]
    assert first == again


@pytest.mark.parametrize(
    ("attempts", "maximum", "exhausted"),
    [
        (1, 0, True),  # no retries: the first failure is the last
        (1, 2, False),
        (2, 2, False),
        (3, 2, True),  # 2 retries = 3 attempts
        (10, 10, False),
        (11, 10, True),
        (1_000_000, -1, False),  # -1 retries forever
    ],
)
def test_retries_are_exhausted_after_maximum_plus_one_attempts(
    attempts: int, maximum: int, exhausted: bool
) -> None:
    assert retries_exhausted(attempts, maximum) is exhausted


@pytest.mark.parametrize(
    ("born_at", "max_age_s", "now", "old"),
    [
        (100.0, 10.0, 109.0, False),
        (100.0, 10.0, 110.0, False),  # exactly the maximum age is still young enough
        (100.0, 10.0, 110.5, True),
        (100.0, 0.0, 100.0, False),
        (100.0, 0.0, 100.1, True),
        (0.0, -1.0, 1e12, False),  # -1: no limit
    ],
)
def test_too_old_compares_age_with_the_maximum(
    born_at: float, max_age_s: float, now: float, old: bool
) -> None:
    assert too_old(born_at, max_age_s, now) is old


def test_doubling_backoff_doubles_up_to_the_cap_and_resets() -> None:
    backoff = DoublingBackoff(0.5, 3.0)
    assert [backoff.take() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.delay_s == 3.0
    backoff.reset()
    assert backoff.delay_s == 0.5 and backoff.take() == 0.5 and backoff.delay_s == 1.0


def test_doubling_backoff_with_a_base_above_the_cap_waits_the_base_once() -> None:
    backoff = DoublingBackoff(5.0, 2.0)
    assert [backoff.take() for _ in range(3)] == [5.0, 2.0, 2.0]
