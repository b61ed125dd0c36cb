"""The run's context and its outputs: machine, versions, results.json, report.md/.html, stdout (bench).

A number without the machine, the versions and the peers it was measured beside is not
worth keeping, so every report starts with them.
"""

from __future__ import annotations

import base64
import html
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
VERSIONED = (
    "wasmtime",
    "firebox",
    "starlette",
    "uvicorn",
    "httpx",
    "msgpack",
    "psutil",
    "matplotlib",
)


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
    """Write results.json, the PNG plots, report.md and report.html into `out`; return
    (results.json, report.html)."""
    from bench import plots

    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    figures, errors = plots.draw_all(cases, out)
    run = {**run, "plots": [name for _, name, _ in figures], "plot_errors": errors}
    payload = {**run, "cases": {case.name: case.to_dict() for case in cases}}
    # NaN is not JSON: write null instead so any JSON reader can load the file.
    results.write_text(json.dumps(_nan_to_none(payload), indent=2, default=str) + "\n")
    md = markdown(run, cases)
    if figures or errors:
        md += "\n## Plots\n\n"
        for title, name, caption in figures:
            md += f"### {title}\n\n![{title}]({name})\n\n{caption}\n\n"
        md += "".join(f"- plot failed: {error}\n" for error in errors)
    (out / "report.md").write_text(md)
    report = out / "report.html"
    report.write_text(html_report(run, cases, figures, errors, out))
    return results, report


def summary_ratios(cases: list[CaseResult]) -> list[tuple[str, str, float, str]]:
    """The headline ratios of a run, (case, ratio, value, meaning), for the top of the report."""
    wanted = {
        "startup": ("pooled/floor", "fresh/floor", "cached/compile"),
        "limits": ("fuel on/off", "epoch on/off", "fuel+epoch / none"),
        "http": (
            "latency firebox-wat/bare (c=1)",
            "latency firebox-py/bare (c=1)",
            "latency process/firebox-py (c=1)",
            "latency firebox-wat/wasmtime-serve (c=1)",
            "throughput firebox-wat/bare (c=64)",
            "throughput firebox-py/bare (c=64)",
            "throughput firebox-wat/wasmtime-serve (c=64)",
        ),
        "python": ("pooled/floor", "first invocation ms (cache present)", "http warm/pooled"),
        "glue": ("function/boto3", "function reuse/boto3", "calls in function/boto3"),
    }
    found: list[tuple[str, str, float, str]] = []
    for case in cases:
        for name in wanted.get(case.name, ()):
            if name in case.ratios:
                value, meaning = case.ratios[name]
                found.append((case.name, name, value, meaning))
    return found


def _html_table(headers: list[str], lines: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num" if _is_number(v) else ""}">{html.escape(_fmt(v))}</td>'
            for v in line
        )
        + "</tr>"
        for line in lines
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv(items: dict[str, Any]) -> str:
    return _html_table(["", ""], [[k, v if _is_number(v) else str(v)] for k, v in items.items()])


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 1em auto; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f0f0f0; }
img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; font-size: 0.8em; }
.skipped { color: #a40; }
nav a { margin-right: 1em; }
"""


def html_report(
    run: dict[str, Any],
    cases: list[CaseResult],
    figures: list[tuple[str, str, str]],
    errors: list[str],
    out: Path,
) -> str:
    """Return report.html: one self-contained page (PNGs embedded as base64 data URIs)."""
    esc = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>firebox benchmark report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>firebox benchmark report</h1>",
        f"<p>Started {esc(run['started'])}, took {run['duration_s']:.1f} s; command:"
        f" <code>{esc(run['command'])}</code>.</p>",
        "<nav>"
        + "".join(f'<a href="#case-{esc(c.name)}">{esc(c.name)}</a>' for c in cases)
        + '<a href="#plots">plots</a></nav>',
    ]
    headline = summary_ratios(cases)
    if headline:
        parts += [
            "<h2>Headline ratios</h2>",
            _html_table(["case", "ratio", "value", "meaning"], [list(item) for item in headline]),
        ]
    parts += [
        "<h2>Machine</h2>",
        _kv(run["machine"]),
        "<h2>Versions</h2>",
        _kv(run["versions"]),
        "<h2>Settings</h2>",
        _kv(run["settings"]),
    ]
    for case in cases:
        parts.append(f'<h2 id="case-{esc(case.name)}">{esc(case.title)}</h2>')
        if case.skipped:
            parts.append(f'<p class="skipped">Skipped: {esc(case.skipped)}</p>')
            continue
        parts.append(f"<p>{esc(case.description)}</p>")
        if case.rows:
            data = [row.summary() for row in case.rows]
            parts.append(
                _html_table(
                    ["row", "median us", "p99 us", "min us", "n", "warm-up", "what it times"],
                    [
                        [
                            d["label"],
                            d["median_us"],
                            d["p99_us"],
                            d["min_us"],
                            d["iterations"],
                            d["warmup"],
                            d["notes"],
                        ]
                        for d in data
                    ],
                )
            )
        if case.ratios:
            parts.append("<h3>Ratios</h3>")
            parts.append(
                _html_table(
                    ["ratio", "value", "meaning"],
                    [[k, v, m] for k, (v, m) in case.ratios.items()],
                )
            )
        for title, table in case.tables.items():
            if table:
                headers = list(table[0])
                parts.append(f"<h3>{esc(title)}</h3>")
                parts.append(_html_table(headers, [[r.get(h) for h in headers] for r in table]))
        for name in (f for _, f, _ in figures):
            if name in (f"cdf_{case.name}.png",):
                parts.append(_img(out / name, f"latency CDF of {case.name}"))
        parts += [
            "<details><summary>Setup and peers</summary>",
            f"<pre>{esc(json.dumps(case.config, indent=2, default=str))}</pre>",
            f"<pre>{esc(json.dumps(case.peers, indent=2, default=str))}</pre>",
            "</details>",
        ]
    parts.append('<h2 id="plots">Plots</h2>')
    for title, name, caption in figures:
        parts += [f"<h3>{esc(title)}</h3>", _img(out / name, title), f"<p>{esc(caption)}</p>"]
    for error in errors:
        parts.append(f'<pre class="skipped">plot failed: {esc(error)}</pre>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></p>'


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
