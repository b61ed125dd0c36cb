"""The benchmark cases, one per module, and what each returns (bench).

A case module has `TITLE` and `run(quick: bool) -> CaseResult`; `CASES` names them in
the order `python -m bench` runs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.measure import Row

CASES = ("startup", "limits", "http", "python", "glue", "scale")


@dataclass
class CaseResult:
    """What one case measured: latency rows, ratios between them, extra tables, its setup."""

    name: str
    title: str
    description: str
    rows: list[Row] = field(default_factory=list)
    # name -> (value, what it compares); printed as "x.xx".
    ratios: dict[str, tuple[float, str]] = field(default_factory=dict)
    # Extra tables (e.g. throughput per concurrency): title -> list of same-keyed dicts.
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    # Each peer (the thing measured beside firebox) and its configuration.
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "rows": [row.summary() for row in self.rows],
            "ratios": {k: {"value": v, "meaning": m} for k, (v, m) in self.ratios.items()},
            "tables": self.tables,
            "config": self.config,
            "peers": self.peers,
            "skipped": self.skipped,
        }


def load_case(name: str) -> Callable[[bool], CaseResult]:
    """Return the `run` function of case `name`; raises KeyError for an unknown case."""
    if name not in CASES:
        raise KeyError(name)
    module = importlib.import_module(f"bench.cases.{name}")
    run: Callable[[bool], CaseResult] = module.run
    return run
