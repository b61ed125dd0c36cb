"""Engine settings as data (runtime/engine.py): epoch-tick rounding and the cache fingerprint."""

from __future__ import annotations

import dataclasses

import pytest
from firebox.runtime.engine import EngineSettings, ticks_for


@pytest.mark.parametrize(
    ("seconds", "ticks"),
    [
        (0.3, 30),  # 0.3 / 0.01 is 29.999999999999996 in floats
        (0.07, 7),  # and 0.07 / 0.01 is 7.000000000000001
        (1.0, 100),
        (900.0, 90_000),
        (0.015, 2),  # a part tick rounds up: never interrupted before the timeout
        (0.001, 1),
        (0.0, 1),  # at least one tick: a deadline of 0 would trap at once
        (-5.0, 1),
    ],
)
def test_ticks_for_rounds_up_to_whole_ticks(seconds: float, ticks: int) -> None:
    assert ticks_for(seconds, tick_s=0.01) == ticks


def test_ticks_for_follows_the_tick_period() -> None:
    assert ticks_for(1.0, tick_s=0.1) == 10


def test_fingerprint_ignores_the_slot_count_but_not_what_shapes_code() -> None:
    base = EngineSettings()
    assert dataclasses.replace(base, pool_slots=4).fingerprint() == base.fingerprint()
    assert dataclasses.replace(base, max_memory_mb=512).fingerprint() != base.fingerprint()
    assert len(base.fingerprint()) == 16
