"""`firebox logs | usage`: what functions printed and what they used (SDK layer)."""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import asdict
from typing import Any

from firebox.sdk.cli_context import UsageError, client, output


def since(text: str | None) -> float | None:
    """Parse `10m`, `2h`, `1d`, `30s` (ago) or a Unix timestamp into a timestamp."""
    if not text:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text)
    if match:
        seconds = float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return time.time() - seconds
    try:
        return float(text)
    except ValueError:
        raise UsageError(
            f"cannot read the time {text!r}; use 10m, 2h, 1d or a Unix timestamp"
        ) from None


def stamp(ts: float) -> str:
    """Return a record's time as logs show it: UTC, to the millisecond."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def format_entry(entry: Any, *, with_function: bool) -> str:
    """Return one invocation's log with the record's time (and function) before each line."""
    prefix = stamp(entry.ts) + (f" {entry.function}" if with_function else "")
    return "\n".join(f"{prefix}  {line}" for line in entry.text.rstrip("\n").split("\n"))


def print_entry(args: argparse.Namespace, entry: Any, *, with_function: bool) -> None:
    """Print one log record (JSON with --json)."""
    if args.json:
        print(json.dumps(asdict(entry)), flush=True)
    else:
        print(format_entry(entry, with_function=with_function), flush=True)


def cmd_logs(args: argparse.Namespace) -> int:
    query = {
        "since": since(args.since),
        "request_id": args.request_id,
        "version": args.version,
        "limit": args.limit,
    }
    with_function = args.name is None
    with client(args) as c:
        if args.follow:
            try:
                for entry in c.follow_logs(args.name, **query):
                    print_entry(args, entry, with_function=with_function)
            except KeyboardInterrupt:
                return 0
            return 0
        for entry in c.logs(args.name, **query):
            print_entry(args, entry, with_function=with_function)
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    with client(args) as c:
        usage = c.usage(args.name, since(args.since), None)
    lines = [
        f"{'FUNCTION':24} {'CALLS':>7} {'ERRORS':>6} {'THROTTLED':>9} {'COLD':>5} {'GB-S':>10} {'P50 MS':>8} {'P99 MS':>8}"
    ]
    for name, row in usage["functions"].items():
        lines.append(
            f"{name:24} {row['invocations']:>7} {row['errors']:>6} {row['throttles']:>9} {row['cold_starts']:>5}"
            f" {row['gb_seconds']:>10.6f} {row['duration_ms']['p50']:>8.2f} {row['duration_ms']['p99']:>8.2f}"
        )
    return output(args, usage, "\n".join(lines))


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `logs` and `usage` to the `firebox` parser."""
    s = sub.add_parser(
        "logs",
        parents=[common],
        help="show logs (one function's or all), or follow them as they happen",
        description="Show invocation logs (START, what the function printed, END, REPORT),"
        " each line prefixed with the record's UTC time.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  firebox logs hello-python --since 10m\n"
        "  firebox logs hello-python -f --since 1s   # only what happens from now on\n"
        "  firebox logs -f                           # every function, with its name",
    )
    s.add_argument("name", nargs="?", help="the function (default: every function)")
    s.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    s.add_argument("--since", help="start of the window: 10m, 2h, 1d or a Unix timestamp")
    s.add_argument("--request-id", help="only this invocation's log")
    s.add_argument("--version", help="only this version's invocations ($LATEST, 1, 2 ...)")
    s.add_argument("--limit", type=int, default=100, help="at most this many records (newest)")
    s.set_defaults(fn=cmd_logs)

    s = sub.add_parser(
        "usage",
        parents=[common],
        help="invocations, errors, throttles, GB-seconds, p50/p99 per function",
        description="Usage per function over a window.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  firebox usage\n  firebox usage hello-python --since 1d",
    )
    s.add_argument("name", nargs="?", help="the function (default: every function)")
    s.add_argument(
        "--since", default="1h", help="window start: 10m, 2h, 1d or a Unix timestamp (default 1h)"
    )
    s.set_defaults(fn=cmd_usage)
