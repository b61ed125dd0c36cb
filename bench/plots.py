"""The report's figures: PNGs drawn with matplotlib's Agg backend, one per question (bench).

Each function takes the run's cases (in memory, with their raw samples) and writes zero
or more PNGs into the output folder; `draw_all` returns `[(title, file name, caption)]`
for the reports. A figure whose data a run did not measure is simply not drawn; a
figure that fails to draw is reported as such rather than failing the run.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.cases import CaseResult

Figure = tuple[str, str, str]  # title, file name, caption
DPI = 110


def _by_name(cases: list[CaseResult]) -> dict[str, CaseResult]:
    return {case.name: case for case in cases if not case.skipped}


def _save(fig: Any, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=DPI)
    plt.close(fig)
    return name


def _cdf(ax: Any, samples_ns: list[int], label: str) -> None:
    if not samples_ns:
        return
    xs = sorted(s / 1000 for s in samples_ns)
    n = len(xs)
    ax.plot(xs, [(i + 1) / n for i in range(n)], label=f"{label} (n={n})", linewidth=1.4)


def latency_cdfs(cases: list[CaseResult], out: Path) -> list[Figure]:
    """One CDF figure per case whose rows hold latency samples (scale excluded: too many rows)."""
    figures: list[Figure] = []
    for case in cases:
        if case.skipped or case.name == "scale":
            continue
        rows = [row for row in case.rows if len(row.samples_ns) >= 5]
        if not rows:
            continue
        fig, ax = plt.subplots(figsize=(9, 5))
        for row in rows:
            _cdf(ax, row.samples_ns, row.label)
        ax.set_xscale("log")
        ax.set_xlabel("latency (us, log scale)")
        ax.set_ylabel("fraction of requests <= x")
        ax.set_ylim(0, 1.01)
        ax.grid(True, which="both", alpha=0.3)
        ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title(f"Latency CDF: {case.title}", fontsize=10)
        name = _save(fig, out, f"cdf_{case.name}.png")
        figures.append(
            (
                f"Latency distribution: {case.name}",
                name,
                "Cumulative distribution of every timed sample per row (log x); the dotted"
                " line is p99. Further left is faster; a long tail to the right is jitter.",
            )
        )
    return figures


def _bars(ax: Any, labels: list[str], medians: list[float], p99s: list[float]) -> None:
    xs = range(len(labels))
    errs = [max(0.0, p - m) for m, p in zip(medians, p99s, strict=True)]
    bars = ax.bar(xs, medians, yerr=[[0] * len(errs), errs], capsize=3, color="#4c72b0")
    for bar, value in zip(bars, medians, strict=True):
        ax.annotate(
            _short(value),
            (bar.get_x() + bar.get_width() / 2, value),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, rotation=25, ha="right", fontsize=7)
    ax.set_yscale("log")
    ax.grid(True, axis="y", which="both", alpha=0.3)


def _short(us: float) -> str:
    if math.isnan(us):
        return "n/a"
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1000:
        return f"{us / 1000:.2f} ms"
    return f"{us:.1f} us"


def startup_ladder(cases: list[CaseResult], out: Path) -> list[Figure]:
    """The ladder per language: compile, cached, fresh, pooled, floor (median, p99 whisker)."""
    found = _by_name(cases)
    groups: list[tuple[str, list[tuple[str, dict[str, Any]]]]] = []
    if "startup" in found:
        summaries = {row.key: row.summary() for row in found["startup"].rows}
        for lang, prefix in (("WAT", ""), ("C", "c/")):
            rungs = [
                (rung, summaries[prefix + rung])
                for rung in ("compile", "cached", "fresh", "pooled", "floor", "worker")
                if prefix + rung in summaries
            ]
            if rungs:
                groups.append((lang, rungs))
    if "python" in found:
        summaries = {row.key: row.summary() for row in found["python"].rows}
        names = {
            "first_uncached": "compile (node start)",
            "first_cached": "cached (node start)",
            "fresh": "fresh",
            "pooled": "pooled",
            "floor": "floor",
            "http": "HTTP warm",
        }
        rungs = [(label, summaries[key]) for key, label in names.items() if key in summaries]
        if rungs:
            groups.append(("Python", rungs))
    if not groups:
        return []
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 4.8), squeeze=False)
    for ax, (lang, rungs) in zip(axes[0], groups, strict=True):
        _bars(
            ax,
            [label for label, _ in rungs],
            [s["median_us"] for _, s in rungs],
            [s["p99_us"] for _, s in rungs],
        )
        ax.set_title(f"{lang} hello/echo handler", fontsize=10)
        ax.set_ylabel("latency per invocation (us, log)")
    name = _save(fig, out, "startup_ladder.png")
    return [
        (
            "Start-up ladder per language",
            name,
            "Median (bar) and p99 (whisker) of one invocation on each rung, log scale:"
            " compile from scratch, load from the compiled cache, fresh instance, pooled"
            " ready instance, call on an already-made instance (the floor). Python's"
            " compile/cached rungs are a whole node restart plus its first invocation.",
        )
    ]


def cold_warm(cases: list[CaseResult], out: Path) -> list[Figure]:
    """Cold vs warm: the first invocation of a node, fresh instances, pooled, HTTP warm, peers."""
    found = _by_name(cases)
    bars: list[tuple[str, dict[str, Any]]] = []
    if "python" in found:
        s = {row.key: row.summary() for row in found["python"].rows}
        for key, label in (
            ("first_uncached", "Python: first call, node\nwithout compiled cache"),
            ("first_cached", "Python: first call\nafter node start (cold)"),
            ("fresh", "Python: fresh instance\n(in process)"),
            ("pooled", "Python: pooled instance\n(in process, warm)"),
            ("http", "Python: HTTP invoke,\nwarm"),
            ("http_b2b", "Python: HTTP invoke,\nback to back"),
        ):
            if key in s:
                bars.append((label, s[key]))
    if "http" in found:
        s = {row.key: row.summary() for row in found["http"].rows}
        for key, label in (
            ("process", "process per request\n(python handler.py)"),
            ("firebox-py", "firebox-py over HTTP\n(c=1)"),
        ):
            if key in s:
                bars.append((label, s[key]))
    if "startup" in found:
        s = {row.key: row.summary() for row in found["startup"].rows}
        for key, label in (("compile", "WAT: compile + call"), ("pooled", "WAT: pooled call")):
            if key in s:
                bars.append((label, s[key]))
    if not bars:
        return []
    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(bars)), 5))
    _bars(
        ax, [b[0] for b in bars], [b[1]["median_us"] for b in bars], [b[1]["p99_us"] for b in bars]
    )
    ax.set_ylabel("latency (us, log)")
    ax.set_title("Cold vs warm invocations (median, p99 whisker)", fontsize=10)
    name = _save(fig, out, "cold_warm.png")
    return [
        (
            "Cold vs warm",
            name,
            "Cold starts (a node's first invocation, a fresh instance, a process per request)"
            " beside warm ones (a pooled instance, a warm HTTP invoke), log scale.",
        )
    ]


def throughput(cases: list[CaseResult], out: Path) -> list[Figure]:
    """Requests/s against concurrency per HTTP target, for each load generator measured."""
    found = _by_name(cases)
    if "http" not in found:
        return []
    tables = [
        (title, rows)
        for title, rows in found["http"].tables.items()
        if rows and "requests_per_s" in rows[0]
    ]
    if not tables:
        return []
    fig, axes = plt.subplots(1, len(tables), figsize=(6.5 * len(tables), 4.8), squeeze=False)
    for ax, (title, rows) in zip(axes[0], tables, strict=True):
        servers: dict[str, list[tuple[int, float]]] = {}
        for row in rows:
            if row.get("requests_per_s") is not None:
                servers.setdefault(row["server"], []).append(
                    (row["concurrency"], row["requests_per_s"])
                )
        for server, points in servers.items():
            points.sort()
            ax.plot([c for c, _ in points], [r for _, r in points], marker="o", label=server)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent connections")
        ax.set_ylabel("requests/s (log)")
        ax.set_xticks(sorted({row["concurrency"] for row in rows}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
    name = _save(fig, out, "throughput.png")
    return [
        (
            "Throughput vs concurrency",
            name,
            "Successful requests per second at 1, 8 and 64 connections, per target (log"
            " scales). The load generator runs on the same machine.",
        )
    ]


def limits(cases: list[CaseResult], out: Path) -> list[Figure]:
    """Fuel and epoch interruption: the compute loop's median per engine."""
    found = _by_name(cases)
    if "limits" not in found:
        return []
    summaries = [row.summary() for row in found["limits"].rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _bars(
        ax,
        [s["label"] for s in summaries],
        [s["median_us"] for s in summaries],
        [s["p99_us"] for s in summaries],
    )
    ax.set_yscale("linear")
    ax.set_ylabel("one call of the loop (us)")
    ax.set_title("Limits overhead on a compute-heavy handler", fontsize=10)
    name = _save(fig, out, "limits.png")
    return [
        (
            "Limits overhead",
            name,
            "The same summing loop on engines with fuel and/or epoch interruption on;"
            " median bars, p99 whiskers.",
        )
    ]


def scale(cases: list[CaseResult], out: Path) -> list[Figure]:
    """Deploy time, memory and disk per function, and invocation latency, against n."""
    found = _by_name(cases)
    if "scale" not in found or not found["scale"].tables:
        return []
    table = next(iter(found["scale"].tables.values()))
    if not table:
        return []
    latency: dict[tuple[str, int], float] = {}
    for row in found["scale"].rows:
        parts = row.key.split("/")
        if len(parts) == 3 and parts[2] == "warm" and row.samples_ns:
            latency[(parts[0], int(parts[1]))] = row.summary()["median_us"]
    panels = [
        ("deploy median ms", "deploy time (ms)"),
        ("first invoke after deploy ms", "first invocation after deploy (ms)"),
        ("workers PSS KiB/fn", "workers' PSS per function (KiB)"),
        ("disk KiB/fn", "disk per function (KiB)"),
        ("latency", "warm invocation median (us)"),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    variants = sorted({row["variant"] for row in table})
    for ax, (key, title) in zip(axes[0], panels, strict=True):
        for variant in variants:
            points = sorted(
                (row["n"], latency.get((variant, row["n"])) if key == "latency" else row.get(key))
                for row in table
                if row["variant"] == variant
            )
            points = [(n, v) for n, v in points if isinstance(v, int | float) and not math.isnan(v)]
            if points:
                ax.plot([n for n, _ in points], [v for _, v in points], marker="o", label=variant)
        ax.set_xscale("log")
        if key in ("deploy median ms", "first invoke after deploy ms", "latency"):
            ax.set_yscale("log")
        ax.set_xlabel("functions deployed (log)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    name = _save(fig, out, "scale.png")
    return [
        (
            "Scale: functions per node",
            name,
            "Against the number of deployed functions: deploy time, the first invocation"
            " right after a deploy, the workers' PSS and the disk per function, and the warm"
            " invocation latency of a random sample.",
        )
    ]


DRAWERS: tuple[Callable[[list[CaseResult], Path], list[Figure]], ...] = (
    startup_ladder,
    cold_warm,
    throughput,
    limits,
    scale,
    latency_cdfs,
)


def draw_all(cases: list[CaseResult], out: Path) -> tuple[list[Figure], list[str]]:
    """Draw every figure the run has data for; return them and the errors of any that failed."""
    out.mkdir(parents=True, exist_ok=True)
    figures: list[Figure] = []
    errors: list[str] = []
    for draw in DRAWERS:
        try:
            figures += draw(cases, out)
        except Exception:  # a broken figure must not lose the run's numbers
            plt.close("all")
            errors.append(f"{draw.__name__}: {traceback.format_exc(limit=3)}")
    return figures, errors
