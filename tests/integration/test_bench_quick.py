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
C_ROWS = {f"c/{key}" for key in ("compile", "cached", "fresh", "pooled", "floor")}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY_CASES = ("startup", "limits", "http", "glue")
GLUE_ROWS = {
    "function",
    "function_reuse",
    "driver",
    "empty",
    "empty_reuse",
    "inside",
    "inside_reuse",
}


def _finite(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_tiny_run_writes_results_report_and_plots(tmp_path: Path) -> None:
    # startup, limits, http (--tiny: a few requests per phase) and glue (a few invocations)
    # end to end; the python and scale cases have their own test below. This checks the
    # harness, not the speed.
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", *TINY_CASES, "--tiny", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    for key in ("cpu_model", "usable_cores", "memory_total_mb"):
        assert results["machine"][key]
    assert results["versions"]["wasmtime"].startswith("50.")
    assert results["settings"]["tiny"] is True

    startup = results["cases"]["startup"]
    keys = {row["key"] for row in startup["rows"]}
    assert keys >= ROWS and keys - ROWS in (set(), C_ROWS)
    for row in startup["rows"]:
        assert _finite(row["median_us"]) and _finite(row["p99_us"]), row["key"]
        assert row["iterations"] >= 100
    assert {"pooled/floor", "fresh/floor"} <= set(startup["ratios"])

    limits = results["cases"]["limits"]
    assert {row["key"] for row in limits["rows"]} == {"none", "fuel", "epoch", "both"}
    assert _finite(limits["ratios"]["fuel on/off"]["value"])

    http = results["cases"]["http"]
    names = {row["key"] for row in http["rows"]}
    assert {"firebox-wat", "firebox-py", "bare", "process"} <= names
    known = {"firebox-wat", "firebox-py", "firebox-py-heavy", "bare", "process", "wasmtime-serve"}
    assert names <= known
    if "wasmtime-serve" not in names:
        assert http["config"]["not_run"]["wasmtime-serve"]  # the reason is recorded
    for row in http["rows"]:
        assert _finite(row["median_us"]), row["key"]
    table = http["tables"]["throughput (httpx load generator)"]
    assert {(r["server"], r["concurrency"]) for r in table} >= {
        (n, c) for n in ("firebox-wat", "bare", "process") for c in (1, 8, 64)
    }
    assert all(r["errors"] == 0 for r in table), [r for r in table if r["errors"]]
    assert "latency process/firebox-py (c=1)" in http["ratios"]

    glue = results["cases"]["glue"]
    assert {row["key"] for row in glue["rows"]} == GLUE_ROWS
    for row in glue["rows"]:
        assert _finite(row["median_us"]) and row["iterations"] >= 6, row["key"]
    assert {"function/boto3", "function reuse/boto3", "calls in function/boto3"} <= set(
        glue["ratios"]
    )
    assert _finite(glue["ratios"]["function/boto3"]["value"])
    (calls,) = glue["tables"].values()
    assert len(calls) == 3 and all(_finite(v) for r in calls for k, v in r.items() if k != "calls")

    plots = results["plots"]
    assert not results["plot_errors"]
    assert {"startup_ladder.png", "cold_warm.png", "throughput.png", "limits.png"} <= set(plots)
    assert {f"cdf_{case}.png" for case in TINY_CASES} <= set(plots)
    for name in plots:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000, name

    page = (out / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    for case in TINY_CASES:
        assert f'id="case-{case}"' in page
    assert page.count('src="data:image/png;base64,') >= len(plots)
    assert "Headline ratios" in page and "pooled/floor" in page

    report = (out / "report.md").read_text()
    assert "pooled/floor" in report and "(f) via worker process" in report
    for name in plots:
        assert f"]({name})" in report
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
    # The snapshot rows: deploys with their capture, warm calls, boto3 against native.
    "deploy_hello",
    "deploy_heavy",
    "warm_hello",
    "warm_heavy",
    "b2b_heavy",
    "boto3",
    "native",
    "native_boto3",
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
    assert not any(why.startswith("failed") for why in scale["config"]["stopped_early"].values())
    table = next(iter(scale["tables"].values()))
    assert {(r["variant"], r["n"]) for r in table} >= {("python", 10), ("wat", 10)}
    assert all(r["pools ready"] >= r["n"] for r in table)
    report = (out / "report.md").read_text()
    assert "(5) pooled ready instance" in report and "deploy slope" in report
