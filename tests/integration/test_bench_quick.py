"""`python -m bench startup --quick` runs end to end and writes a complete report (not speed)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROWS = {"compile", "cached", "fresh", "pooled", "floor", "worker"}


@pytest.mark.slow
def test_quick_startup_run_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "startup", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    case = results["cases"]["startup"]
    assert {row["key"] for row in case["rows"]} == ROWS
    for row in case["rows"]:
        for field in ("median_us", "p99_us"):
            value = row[field]
            assert isinstance(value, float) and math.isfinite(value) and value > 0, (
                row["key"],
                field,
            )
        assert row["iterations"] >= 100
    assert {"pooled/floor", "fresh/floor"} <= set(case["ratios"])
    for key in ("cpu_model", "usable_cores", "memory_total_mb"):
        assert results["machine"][key]
    assert results["versions"]["wasmtime"].startswith("50.")
    report = (out / "report.md").read_text()
    assert "pooled/floor" in report and "(f) via worker process" in report
    assert "pooled/floor" in proc.stdout
