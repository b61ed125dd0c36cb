"""The stream poller's pure decisions: which leading records are too old, and how far a
(partly) successful invocation lets the checkpoint advance."""

from __future__ import annotations

import json

import pytest
from firebox.runtime.events.stream import Record
from firebox.runtime.events.stream_poller import expired_count, processed_count


def records(*arrivals: float) -> list[Record]:
    return [Record(f"{n:03d}", "pk", b"x", ts) for n, ts in enumerate(arrivals, 1)]


def failures(*sequence_numbers: str) -> bytes:
    items = [{"itemIdentifier": s} for s in sequence_numbers]
    return json.dumps({"batchItemFailures": items}).encode()


@pytest.mark.parametrize(
    ("arrivals", "max_age_s", "expected"),
    [
        ((100.0, 101.0, 102.0), 10.0, 2),  # 12 s and 11 s old; 10 s is not past the limit
        ((100.0, 101.0, 102.0), 20.0, 0),
        ((100.0, 101.0, 102.0), 1.0, 3),
        ((100.0, 111.0, 100.0), 10.0, 1),  # only a leading run: order is kept
        ((0.0, 0.0), -1.0, 0),  # -1: no limit
        ((), 10.0, 0),
    ],
)
def test_expired_count_is_the_leading_run_past_the_maximum_age(
    arrivals: tuple[float, ...], max_age_s: float, expected: int
) -> None:
    assert expired_count(records(*arrivals), max_age_s, now=112.0) == expected


def test_without_report_failures_a_successful_invocation_processed_everything() -> None:
    batch = records(1, 2, 3)
    assert processed_count(batch, failures("002"), report_failures=False) == 3
    assert processed_count(batch, b"not json", report_failures=False) == 3


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (b"", 4),  # no answer: all succeeded
        (b"null", 4),
        (failures(), 4),
        (failures("003"), 2),  # checkpoint after 002, retry from 003
        (failures("004", "002"), 1),  # the lowest failed sequence number wins
        (failures("001"), 0),
        (failures("999"), 0),  # an unknown identifier fails the whole batch
        (failures(""), 0),
        (b"{not json", 0),
    ],
)
def test_report_failures_checkpoints_before_the_first_failed_record(
    output: bytes, expected: int
) -> None:
    assert processed_count(records(1, 2, 3, 4), output, report_failures=True) == expected
