"""Timing samples and their summaries: medians, p99s, ratios (bench).

Every case times with `time.perf_counter_ns` and hands its samples here, so all rows
of all cases are summarized the same way.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Row:
    """One measured variant of a case: its samples (ns) and what they mean."""

    key: str
    label: str
    samples_ns: list[int] = field(default_factory=list)
    warmup: int = 0
    notes: str = ""

    def summary(self) -> dict[str, Any]:
        """Return the row as JSON-ready numbers: count, median, p99, mean, min, max (us)."""
        return {
            "key": self.key,
            "label": self.label,
            "iterations": len(self.samples_ns),
            "warmup": self.warmup,
            **summarize_us(self.samples_ns),
            "notes": self.notes,
        }


def percentile(sorted_values: list[int], pct: float) -> float:
    """Return the `pct` percentile of already-sorted values (nearest rank, as latency tools do)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def summarize_us(samples_ns: list[int]) -> dict[str, float]:
    """Return median, p99, mean, min and max of nanosecond samples, in microseconds."""
    if not samples_ns:
        nan = math.nan
        return {"median_us": nan, "p99_us": nan, "mean_us": nan, "min_us": nan, "max_us": nan}
    ordered = sorted(samples_ns)
    return {
        "median_us": statistics.median(ordered) / 1000,
        "p99_us": percentile(ordered, 99) / 1000,
        "mean_us": statistics.fmean(ordered) / 1000,
        "min_us": ordered[0] / 1000,
        "max_us": ordered[-1] / 1000,
    }


def ratio(numerator: float, denominator: float) -> float:
    """Return numerator / denominator, or NaN when the denominator is zero or missing."""
    if not denominator or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def interleave(
    rows: list[tuple[Row, Callable[[Row, int], None]]], count: Callable[[Row], int], rounds: int
) -> None:
    """Run every row's measuring function in `rounds` interleaved chunks.

    Side by side beats one-after-the-other on a noisy machine: a slow minute (another
    tenant, a frequency change) then lands on every row alike instead of on one.
    `count(row)` is the row's total iteration count; each chunk runs its share.
    """
    for r in range(rounds):
        for row, run in rows:
            total = count(row)
            share = total // rounds + (1 if r < total % rounds else 0)
            if share:
                run(row, share)
