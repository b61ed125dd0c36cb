"""`python -m bench [CASE ...] [--quick] [--out DIR]`: run, print and write the report (bench)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.cases import CASES, CaseResult, load_case

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    """Run the chosen cases (all by default); return the process exit status."""
    # `firebox bench` runs this module with `--prog`, the name its users typed.
    given = argv if argv is not None else sys.argv[1:]
    prog = "python -m bench"
    if given[:1] == ["--prog"] and len(given) > 1:
        prog, given = given[1], given[2:]
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__.replace("python -m bench", prog) if __doc__ else None
    )
    parser.add_argument(
        "cases",
        nargs="*",
        metavar="CASE",
        help=f"cases to run (default: all of {', '.join(CASES)})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer iterations: the whole run in well under 2 minutes",
    )
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="implies --quick, with the HTTP case cut to a few requests per phase: checks the"
        " harness end to end (its test), measures nothing worth keeping",
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default: bench/results/<timestamp>/)"
    )
    args = parser.parse_args(given)
    if args.tiny:
        args.quick = True
        os.environ["FIREBOX_BENCH_TINY"] = "1"
    if importlib.util.find_spec("matplotlib") is None:
        # The report's plots need it; say so now rather than after a long run.
        print(
            f"{prog}: matplotlib is not installed; the benchmark report draws its plots with it.\n"
            "  pip install matplotlib (or from a checkout: .venv/bin/pip install -e '.[dev]')",
            file=sys.stderr,
        )
        return 1
    chosen = args.cases or list(CASES)
    unknown = [name for name in chosen if name not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(CASES)}")

    started = datetime.now(UTC)
    out: Path = args.out or RESULTS / started.strftime("%Y%m%dT%H%M%SZ")
    run = {
        "started": started.isoformat(timespec="seconds"),
        "command": " ".join([prog, *(argv if argv is not None else sys.argv[1:])]),
        "machine": report.machine_info(),
        "versions": report.versions(),
        "settings": {
            "cases": chosen,
            "quick": args.quick,
            "tiny": args.tiny,
            "out": str(out),
            "FIREBOX_WORKERS": os.environ.get("FIREBOX_WORKERS", "unset (cpu count)"),
        },
        "duration_s": 0.0,
    }
    print("\n".join(report.header_text(run)))
    t0 = time.monotonic()
    results: list[CaseResult] = []
    for name in chosen:
        print(f"running {name}{' (quick)' if args.quick else ''} ...", flush=True)
        case_started = time.monotonic()
        result = load_case(name)(args.quick)
        result.config["duration_s"] = round(time.monotonic() - case_started, 2)
        results.append(result)
        print("\n".join(report.case_text(result)), flush=True)
    run["duration_s"] = time.monotonic() - t0
    results_path, report_path = report.write(out, run, results)
    print(f"wrote {results_path}, {report_path} and report.md ({run['duration_s']:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
