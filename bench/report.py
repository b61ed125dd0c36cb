"""The run's context and its outputs: machine, versions, results.json, report.md, stdout (bench).

A number without the machine, the versions and the peers it was measured beside is not
worth keeping, so every report starts with them.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from bench.cases import CaseResult

REPO = Path(__file__).resolve().parents[1]
VERSIONED = ("wasmtime", "firebox", "starlette", "uvicorn", "httpx", "msgpack", "psutil")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or platform.processor() elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Return the CPU, core counts, memory and OS of this machine."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    memory = psutil.virtual_memory()
    return {
        "cpu_model": cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": usable,
        "memory_total_mb": round(memory.total / 2**20),
        "memory_available_mb": round(memory.available / 2**20),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
    }


def versions() -> dict[str, str]:
    """Return the versions of Python, wasmtime, firebox (with its git commit) and the peers."""
    found: dict[str, str] = {"python": sys.version.split()[0]}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        found["firebox_commit"] = commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        found["firebox_commit"] = "unknown"
    return found


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def _table(headers: list[str], lines: list[list[Any]]) -> list[str]:
    cells = [[_fmt(v) for v in line] for line in lines]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    numeric = [all(_is_number(line[i]) for line in lines) for i in range(len(headers))]

    def row(values: list[str]) -> str:
        parts = [
            v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if n else ("-" * (w + 2))
            for w, n in zip(widths, numeric, strict=True)
        )
        + "|"
    )
    return [row(headers), rule, *(row(c) for c in cells)]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _row_lines(case: CaseResult) -> list[str]:
    data = [row.summary() for row in case.rows]
    return _table(
        ["row", "median us", "p99 us", "min us", "n", "warm-up"],
        [
            [d["label"], d["median_us"], d["p99_us"], d["min_us"], d["iterations"], d["warmup"]]
            for d in data
        ],
    )


def case_text(case: CaseResult) -> list[str]:
    """Return the readable lines of one case: its rows, its ratios and its extra tables."""
    lines = [f"## {case.title}", ""]
    if case.skipped:
        return [*lines, f"Skipped: {case.skipped}", ""]
    if case.rows:
        lines += [*_row_lines(case), ""]
    if case.ratios:
        lines += _table(
            ["ratio", "value", "meaning"],
            [[name, value, meaning] for name, (value, meaning) in case.ratios.items()],
        )
        lines.append("")
    for title, table in case.tables.items():
        if table:
            headers = list(table[0])
            lines += [
                f"### {title}",
                "",
                *_table(headers, [[r.get(h) for h in headers] for r in table]),
                "",
            ]
    return lines


def markdown(run: dict[str, Any], cases: list[CaseResult]) -> str:
    """Return report.md: context first, then each case with its notes, setup and peers."""
    lines = ["# firebox benchmark report", ""]
    lines += [
        f"Started {run['started']}, took {run['duration_s']:.1f} s; command: `{run['command']}`.",
        "",
    ]
    lines += ["## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in run["machine"].items()]
    lines += ["", "## Versions", ""]
    lines += [f"- {k}: {v}" for k, v in run["versions"].items()]
    lines += ["", "## Settings", ""]
    lines += [f"- {k}: {v}" for k, v in run["settings"].items()]
    lines.append("")
    for case in cases:
        lines += case_text(case)
        if case.skipped:
            continue
        lines += [case.description, ""]
        notes = [row for row in case.rows if row.notes]
        if notes:
            lines += ["What each row times:", ""]
            lines += [f"- {row.label}: {row.notes}" for row in notes]
            lines.append("")
        lines += [
            "Setup:",
            "",
            "```json",
            json.dumps(case.config, indent=2, default=str),
            "```",
            "",
        ]
        lines += ["Peers and their configuration:", "", "```json"]
        lines += [json.dumps(case.peers, indent=2, default=str), "```", ""]
    return "\n".join(lines)


def write(out: Path, run: dict[str, Any], cases: list[CaseResult]) -> tuple[Path, Path]:
    """Write results.json and report.md into `out` (created if needed); return both paths."""
    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    report = out / "report.md"
    payload = {**run, "cases": {case.name: case.to_dict() for case in cases}}
    # NaN is not JSON: write null instead so any JSON reader can load the file.
    results.write_text(json.dumps(_nan_to_none(payload), indent=2, default=str) + "\n")
    report.write_text(markdown(run, cases))
    return results, report


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value


def header_text(run: dict[str, Any]) -> list[str]:
    """Return the lines printed before the cases: machine, versions, settings."""
    m, v = run["machine"], run["versions"]
    return [
        f"machine : {m['cpu_model']}; {m['usable_cores']} usable cores"
        f" ({m['logical_cores']} logical); {m['memory_total_mb']} MB; load {m['load_average']}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "settings: " + ", ".join(f"{k}={val}" for k, val in run["settings"].items()),
        "",
    ]
