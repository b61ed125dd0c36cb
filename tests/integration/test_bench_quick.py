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


PYTHON_ROWS = {
    "bundle",
    "deploy",
    "healthz_cached",
    "first_cached",
    "fresh",
    "pooled",
    "floor",
    "http",
    "http_b2b",
}


@pytest.mark.slow
def test_quick_python_and_scale_runs_write_their_rows(tmp_path: Path) -> None:
    # The compiled interpreter is kept between runs (bench-compiled beside the interpreter
    # cache), so this is fast once it exists; the very first run compiles it (~20 s).
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "python", "scale", "--quick", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    python = results["cases"]["python"]
    assert {row["key"] for row in python["rows"]} == PYTHON_ROWS
    for row in python["rows"]:
        assert math.isfinite(row["median_us"]) and row["median_us"] > 0, row["key"]
    assert {"pooled/floor", "fresh/pooled", "first invocation ms (cache present)"} <= set(
        python["ratios"]
    )
    scale = results["cases"]["scale"]
    keys = {row["key"] for row in scale["rows"]}
    for variant in ("wat", "wat-distinct", "python", "python-distinct"):
        for n in (1, 10):
            assert f"{variant}/{n}/deploy" in keys
    table = next(iter(scale["tables"].values()))
    assert {(r["variant"], r["n"]) for r in table} >= {("python", 10), ("wat", 10)}
    assert all(r["pools ready"] >= r["n"] for r in table)
    report = (out / "report.md").read_text()
    assert "(5) pooled ready instance" in report and "deploy slope" in report
