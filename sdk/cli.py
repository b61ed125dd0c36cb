"""The `firebox` command: serve a node, scaffold and develop, deploy, invoke, inspect (SDK layer).

Commands live in the cli_* modules by concern; this one assembles the parser, accepts
the global flags (--endpoint, --json) before or after the command, and turns failures
into one message that says what to do, with an exit code.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from firebox.compiler.errors import CompileError
from firebox.runtime.errors import FireboxError
from firebox.sdk import (
    cli_data,
    cli_dev,
    cli_errors,
    cli_events,
    cli_functions,
    cli_logs,
    cli_serve,
    event_samples,
)
from firebox.sdk.cli_context import CommandFailed, UsageError, client, output, unreachable

#: The optional extras of the package, by the module whose absence means one is missing.
EXTRAS = {"psycopg": "postgres", "psycopg_binary": "postgres", "redis": "redis"}


def version() -> str:
    """Return the installed firebox version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("firebox")
    except PackageNotFoundError:
        return "unknown (not installed)"


# --- access keys (admin only) -------------------------------------------------------------


def cmd_keys(args: argparse.Namespace) -> int:
    with client(args) as c:
        if args.keys_command == "create":
            key = c.create_key(args.description or "")
            return output(args, asdict(key), f"access key id:     {key.access_key_id}\n"
                          f"secret access key: {key.secret_access_key}\n"
                          "(the secret is shown once; store it now)")  # fmt: skip
        if args.keys_command == "ls":
            keys = c.list_keys()
            lines = [f"{'ACCESS KEY ID':24} {'STATE':8} DESCRIPTION"]
            for k in keys:
                state = "admin" if k.admin else ("revoked" if k.revoked_at else "active")
                lines.append(f"{k.access_key_id:24} {state:8} {k.description}")
            return output(args, [asdict(k) for k in keys], "\n".join(lines))
        c.revoke_key(args.key_id)
        return output(args, {"revoked": args.key_id}, f"revoked {args.key_id}")


def _add_keys_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser(
        "keys", parents=[common], help="manage access keys: create | ls | revoke (admin only)",
        description="Issue, list and revoke access keys (SigV4 / bearer); admin key only.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  firebox keys create -m 'CI deploys'\n  firebox keys ls\n"
        "  firebox keys revoke FBX0123456789ABCDEF",
    )  # fmt: skip
    keys_sub = s.add_subparsers(dest="keys_command", required=True, metavar="create|ls|revoke")
    k = keys_sub.add_parser(
        "create", parents=[common], help="issue a new key pair (the secret is shown once)"
    )
    k.add_argument("--description", "-m", help="what the key is for")
    keys_sub.add_parser("ls", parents=[common], help="list keys (no secrets)")
    k = keys_sub.add_parser(
        "revoke", parents=[common], help="revoke a key: it stops working at once"
    )
    k.add_argument("key_id", help="the access key id")
    s.set_defaults(fn=cmd_keys)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark harness: `python -m bench ARGS` from the repository root."""
    repo = Path(__file__).resolve().parents[1]
    if not (repo / "bench" / "__main__.py").exists():
        raise CommandFailed("`firebox bench` runs from a source checkout (bench/ is not installed)")
    os.chdir(repo)
    # `--prog` makes the harness's own --help say `firebox bench`.
    argv = [sys.executable, "-m", "bench", "--prog", "firebox bench", *args.bench_args]
    os.execv(sys.executable, argv)
    return 0  # not reached


def _add_bench_parser(sub: Any) -> None:
    # Every argument (options included) goes to `python -m bench`, `-h` too.
    s = sub.add_parser(
        "bench",
        help="run the benchmark suite (firebox bench --help; see bench/README.md)",
        prefix_chars="\x00",
        add_help=False,
    )
    s.add_argument("bench_args", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_bench)


def _common() -> argparse.ArgumentParser:
    """The global flags, accepted after the command too (SUPPRESS keeps the top level's value)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--endpoint", default=argparse.SUPPRESS, metavar="URL",
                        help="node URL (default: FIREBOX_ENDPOINT or http://127.0.0.1:8080)")  # fmt: skip
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print machine-readable JSON")  # fmt: skip
    return common


EPILOG = """\
first steps:
  ./scripts/start                          # a node on :8080 with examples/ deployed
  firebox new hello && firebox dev hello   # a function, redeployed on every save
  firebox invoke hello --data '{"name": "Ada"}' --log
  firebox logs -f                          # every function's logs as they happen

The CLI talks to FIREBOX_ENDPOINT (default http://127.0.0.1:8080); credentials come from
FIREBOX_ACCESS_KEY_ID / FIREBOX_SECRET_ACCESS_KEY or the node's data dir.
`firebox COMMAND --help` shows each command's options and examples; docs/cli.md has more."""


def parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `firebox` command."""
    p = argparse.ArgumentParser(
        prog="firebox",
        description="Serverless functions on WebAssembly: Lambda's model, millisecond cold starts.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    p.add_argument("--endpoint", metavar="URL",
                   help="node URL (default: FIREBOX_ENDPOINT or http://127.0.0.1:8080)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.add_argument("--version", action="version", version=f"firebox {version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common()
    cli_serve.add_parser(sub, common)
    cli_dev.add_parsers(sub, common)
    cli_functions.add_parsers(sub, common)
    cli_logs.add_parsers(sub, common)
    event_samples.add_parser(sub, common)
    cli_events.add_parsers(sub, common)
    cli_data.add_parsers(sub, common)
    _add_keys_parser(sub, common)
    _add_bench_parser(sub)
    return p


def _missing_extra(exc: ModuleNotFoundError) -> str | None:
    top = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return (
        f"{top} is not installed: this setup needs firebox's [{extra}] extra.\n"
        f"  pip install 'firebox[{extra}]' (from a checkout: .venv/bin/pip install -e '.[{extra}]')"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failure, 2 usage)."""
    args = parser().parse_args(argv)
    try:
        code: int = args.fn(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `firebox ls | head`: the reader left. Say nothing; keep Python's exit-time flush quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except FireboxError as exc:
        advice = cli_errors.hint(exc.code, exc.message)
        print(f"firebox: {exc}" + (f"\nhint: {advice}" if advice else ""), file=sys.stderr)
        return 1
    except (CompileError, CommandFailed) as exc:
        print(f"firebox: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"firebox: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        message = _missing_extra(exc)
        if message is None:
            raise
        print(f"firebox: {message}", file=sys.stderr)
        return 1
    except httpx.TransportError as exc:
        print(f"firebox: {unreachable(args, exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"firebox: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
