"""The `firebox` command: serve a node, deploy, invoke, list, inspect, delete (SDK layer)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from firebox.compiler.errors import CompileError
from firebox.runtime.errors import FireboxError
from firebox.sdk.cli_events import UsageError


def _print(args: argparse.Namespace, value: Any, human: str) -> None:
    if args.json:
        print(json.dumps(value, indent=2, default=str))
    else:
        print(human)


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn
    from firebox.compiler.build import build_function
    from firebox.runtime.config import NodeConfig
    from firebox.runtime.credentials import credentials_path
    from firebox.runtime.http.app import create_app
    from firebox.runtime.node import Node

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = NodeConfig.from_env(args.data_dir)
    node = Node(config)
    where = (
        "the environment"
        if not node.generated_credentials and not credentials_path(config.data_dir).exists()
        else str(credentials_path(config.data_dir))
    )
    if node.generated_credentials:
        print(f"firebox: generated admin credentials in {where}", file=sys.stderr)
    print(
        f"firebox: data dir {config.data_dir}; admin key id {node.credentials.access_key_id}"
        f" (credentials: {where})",
        file=sys.stderr,
    )

    async def deploy_bundled(node: Node) -> None:
        for path in args.deploy:
            for item in (
                sorted(Path(path).iterdir()) if _is_collection(Path(path)) else [Path(path)]
            ):
                try:
                    built = build_function(item)
                    fn = await node.deploy(built.manifest, built.code)
                    print(f"firebox: deployed {fn.name} from {item}", file=sys.stderr)
                except (CompileError, FireboxError) as exc:
                    print(f"firebox: skipped {item}: {exc}", file=sys.stderr)

    app = create_app(node, deploy_bundled if args.deploy else None)
    print(f"firebox: serving on http://{args.host}:{args.port}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _is_collection(path: Path) -> bool:
    """A folder of functions (like examples/) rather than one function's folder."""
    return path.is_dir() and not (path / "firebox.toml").exists()


def _client(args: argparse.Namespace) -> Any:
    from firebox.sdk.client import Client

    return Client(args.endpoint, use_msgpack=True)


def _progress(message: str) -> Any:
    """A spinner on slow steps when stderr is a terminal (rich), else nothing."""
    import contextlib

    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def _since(text: str | None) -> float | None:
    """Parse `10m`, `2h`, `1d`, `30s` (ago) or a Unix timestamp into a timestamp."""
    import re
    import time

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


def _describe(fn: Any) -> str:
    cfg = fn.config
    return (
        f"{fn.name} ({fn.runtime}, version {fn.version}, revision {fn.revision})\n"
        f"  memory {cfg['memory']} MB, timeout {cfg['timeout']} s, concurrency {cfg['concurrency']},"
        f" provisioned {cfg['provisioned']}, isolation {cfg['isolation']}\n"
        f"  digest {fn.digest[:16]}  {cfg.get('description') or ''}"
    )


def cmd_deploy(args: argparse.Namespace) -> int:
    from firebox.compiler.build import build_function

    with _progress(f"Building {args.path}..."):
        built = build_function(args.path)
    for note in built.notes:
        print(f"note: {note}", file=sys.stderr)
    with (
        _client(args) as client,
        _progress(f"Uploading {built.manifest.get('name')} ({len(built.code)} bytes)..."),
    ):
        fn = client.deploy(built.manifest, built.code)
    _print(args, asdict(fn), f"deployed {fn.name} (revision {fn.revision}, {fn.runtime})")
    return 0


def cmd_update(args: argparse.Namespace) -> int:
    from firebox.compiler.build import build_function

    with _progress(f"Building {args.path}..."):
        built = build_function(args.path)
    for note in built.notes:
        print(f"note: {note}", file=sys.stderr)
    with _client(args) as client, _progress("Uploading..."):
        fn = client.update_code(args.name, built.code)
    _print(args, asdict(fn), f"updated the code of {fn.name} (revision {fn.revision})")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    with _client(args) as client:
        fn = client.publish(args.name, args.description or "")
    _print(args, asdict(fn), f"published {fn.name} version {fn.version}")
    return 0


def _weights(items: list[str]) -> dict[str, float] | None:
    if not items:
        return None
    out = {}
    for item in items:
        version, sep, weight = item.partition("=")
        try:
            out[version] = float(weight)
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"--route takes VERSION=WEIGHT (e.g. 3=0.1), got {item!r}")
    return out


def cmd_alias(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.action == "ls":
            aliases = client.aliases(args.name)
            lines = [f"{'ALIAS':20} {'VERSION':>8}  ROUTING"]
            lines += [f"{a.name:20} {a.version:>8}  {a.routing or ''}" for a in aliases]
            _print(args, [asdict(a) for a in aliases], "\n".join(lines))
            return 0
        if args.alias is None:
            raise UsageError("name the alias")
        if args.action == "delete":
            client.delete_alias(args.name, args.alias)
            _print(args, {"deleted": args.alias}, f"deleted alias {args.alias}")
            return 0
        routing = {} if args.no_route else _weights(args.route)
        if args.action == "create":
            if args.version is None:
                raise UsageError("alias create needs --version")
            alias = client.create_alias(
                args.name, args.alias, args.version, routing, args.description
            )
        else:
            alias = client.update_alias(
                args.name, args.alias, args.version, routing, args.description
            )
    _print(
        args,
        asdict(alias),
        f"alias {alias.name} -> version {alias.version} {alias.routing or ''}".rstrip(),
    )
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    try:
        event = json.loads(args.data) if args.data is not None else {}
    except json.JSONDecodeError as exc:
        print(f"firebox: --data is not valid JSON: {exc}", file=sys.stderr)
        return 2
    with _client(args) as client:
        result = client.invoke(
            args.name, event, qualifier=args.qualifier, export=args.export, tail=args.log,
            invocation_type=args.type,
        )  # fmt: skip
    if args.log and result.log:
        print(result.log.rstrip("\n"), file=sys.stderr)
    if result.error is not None:
        _print(args, result.error.to_dict(), f"error: {result.error.code}: {result.error.message}")
        return 1
    if args.type == "DryRun":
        _print(args, {"status": result.status_code, "version": result.version},
               f"DryRun: {args.name} would run version {result.version}")  # fmt: skip
        return 0
    if args.type == "Event":
        _print(args, {"request_id": result.request_id, "status": result.status_code},
               f"Event: accepted (request {result.request_id})")  # fmt: skip
        return 0
    payload = result.payload
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else json.dumps(payload)
    _print(args, payload, text)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    query = {
        "since": _since(args.since),
        "request_id": args.request_id,
        "version": args.version,
        "limit": args.limit,
    }
    with _client(args) as client:
        if args.follow:
            try:
                for entry in client.follow_logs(args.name, **query):
                    _print_log(args, entry)
            except KeyboardInterrupt:
                return 0
            return 0
        for entry in client.logs(args.name, **query):
            _print_log(args, entry)
    return 0


def _print_log(args: argparse.Namespace, entry: Any) -> None:
    if args.json:
        print(json.dumps(asdict(entry)), flush=True)
    else:
        print(entry.text.rstrip("\n"), flush=True)


def cmd_usage(args: argparse.Namespace) -> int:
    with _client(args) as client:
        usage = client.usage(args.name, _since(args.since), None)
    lines = [
        f"{'FUNCTION':24} {'CALLS':>7} {'ERRORS':>6} {'THROTTLED':>9} {'COLD':>5} {'GB-S':>10} {'P50 MS':>8} {'P99 MS':>8}"
    ]
    for name, row in usage["functions"].items():
        lines.append(
            f"{name:24} {row['invocations']:>7} {row['errors']:>6} {row['throttles']:>9} {row['cold_starts']:>5}"
            f" {row['gb_seconds']:>10.6f} {row['duration_ms']['p50']:>8.2f} {row['duration_ms']['p99']:>8.2f}"
        )
    _print(args, usage, "\n".join(lines))
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with _client(args) as client:
        functions = client.list()
    lines = [f"{'NAME':24} {'RUNTIME':8} {'REV':>4} {'MEMORY':>7} {'TIMEOUT':>8}"]
    for fn in functions:
        cfg = fn.config
        lines.append(
            f"{fn.name:24} {fn.runtime:8} {fn.revision:>4} {cfg['memory']:>5}MB {cfg['timeout']:>7}s"
        )
    _print(args, [asdict(f) for f in functions], "\n".join(lines))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        fn = client.get(args.name)
    extra = fn.extra
    human = _describe(fn)
    if extra.get("versions"):
        human += "\n  versions: " + ", ".join(v["version"] for v in extra["versions"])
    if extra.get("aliases"):
        human += "\n  aliases: " + ", ".join(
            f"{a['name']}->{a['version']}" for a in extra["aliases"]
        )
    if "pool" in extra:
        human += f"\n  ready instances: {extra['pool']['ready']}"
    _print(args, asdict(fn), human)
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete(args.name)
    _print(args, {"deleted": args.name}, f"deleted {args.name}")
    return 0


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def cmd_config_set(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"settings are KEY=VALUE (e.g. memory=256), got {item!r}")
        changes[key] = _value(value)
    with _client(args) as client:
        if args.env:
            env = dict(client.get(args.name).config.get("environment", {}))
            for item in args.env:
                key, sep, value = item.partition("=")
                if not sep:
                    raise UsageError(f"--env takes KEY=VALUE, got {item!r}")
                env[key] = value
            changes["environment"] = env
        fn = client.update_config(args.name, **changes)
    _print(args, asdict(fn), _describe(fn))
    return 0


# --- access keys (admin only) -------------------------------------------------------------


def cmd_keys(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.keys_command == "create":
            key = client.create_key(args.description or "")
            _print(args, asdict(key), f"access key id:     {key.access_key_id}\n"
                   f"secret access key: {key.secret_access_key}\n"
                   "(the secret is shown once; store it now)")  # fmt: skip
        elif args.keys_command == "ls":
            keys = client.list_keys()
            lines = [f"{'ACCESS KEY ID':24} {'STATE':8} DESCRIPTION"]
            for k in keys:
                state = "admin" if k.admin else ("revoked" if k.revoked_at else "active")
                lines.append(f"{k.access_key_id:24} {state:8} {k.description}")
            _print(args, [asdict(k) for k in keys], "\n".join(lines))
        else:
            client.revoke_key(args.key_id)
            _print(args, {"revoked": args.key_id}, f"revoked {args.key_id}")
    return 0


def _add_keys_parser(sub: Any) -> None:
    s = sub.add_parser("keys", help="manage access keys: create | ls | revoke (admin only)")
    keys_sub = s.add_subparsers(dest="keys_command", required=True)
    k = keys_sub.add_parser("create", help="issue a new key pair (the secret is shown once)")
    k.add_argument("--description", "-m")
    keys_sub.add_parser("ls", help="list keys (no secrets)")
    k = keys_sub.add_parser("revoke", help="revoke a key: it stops working at once")
    k.add_argument("key_id")
    s.set_defaults(fn=cmd_keys)


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the benchmark harness: `python -m bench ARGS` from the repository root."""
    import os

    repo = Path(__file__).resolve().parents[1]
    if not (repo / "bench" / "__main__.py").exists():
        raise UsageError("`firebox bench` runs from a source checkout (bench/ is not installed)")
    os.chdir(repo)
    os.execv(sys.executable, [sys.executable, "-m", "bench", *args.bench_args])
    return 0  # not reached


def _add_bench_parser(sub: Any) -> None:
    # Every argument (options included) goes to `python -m bench`, `-h` too.
    s = sub.add_parser(
        "bench",
        help="run the benchmark suite (python -m bench ...; see bench/README.md)",
        prefix_chars="\x00",
        add_help=False,
    )
    s.add_argument("bench_args", nargs=argparse.REMAINDER)
    s.set_defaults(fn=cmd_bench)


def parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `firebox` command."""
    p = argparse.ArgumentParser(prog="firebox", description="Serverless functions on WebAssembly.")
    p.add_argument(
        "--endpoint", help="node URL (default: FIREBOX_ENDPOINT or http://127.0.0.1:8080)"
    )
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run a node (embedded: everything in the data dir)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--data-dir", help="default: FIREBOX_DATA_DIR or ~/.local/share/firebox")
    s.add_argument(
        "--deploy",
        action="append",
        default=[],
        metavar="PATH",
        help="deploy a function folder (or a folder of them) at start; repeatable",
    )
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("deploy", help="build and upload a function (folder or .wat/.wasm)")
    s.add_argument("path", type=Path)
    s.set_defaults(fn=cmd_deploy)

    s = sub.add_parser("update", help="replace a function's code, keeping its configuration")
    s.add_argument("name")
    s.add_argument("path", type=Path)
    s.set_defaults(fn=cmd_update)

    s = sub.add_parser("publish", help="publish $LATEST as an immutable version")
    s.add_argument("name")
    s.add_argument("--description", "-m")
    s.set_defaults(fn=cmd_publish)

    s = sub.add_parser("alias", help="manage aliases: create | update | delete | ls")
    s.add_argument("action", choices=["create", "update", "delete", "ls"])
    s.add_argument("name", help="the function")
    s.add_argument("alias", nargs="?")
    s.add_argument("--version", "-v")
    s.add_argument(
        "--route",
        action="append",
        default=[],
        metavar="VERSION=WEIGHT",
        help="send a share of the traffic to another version (repeatable)",
    )
    s.add_argument("--no-route", action="store_true", help="remove weighted routing")
    s.add_argument("--description")
    s.set_defaults(fn=cmd_alias)

    s = sub.add_parser("invoke", help="invoke a function and print its result")
    s.add_argument("name", help="NAME or NAME:QUALIFIER (version number or alias)")
    s.add_argument("--data", "-d", help="the event, as JSON (default {})")
    s.add_argument("--qualifier", "-q", help="version number or alias")
    s.add_argument("--export", help="the export to call (default: the function's handler)")
    s.add_argument(
        "--type", default="RequestResponse", choices=["RequestResponse", "Event", "DryRun"]
    )
    s.add_argument("--log", action="store_true", help="print the invocation's log tail to stderr")
    s.set_defaults(fn=cmd_invoke)

    s = sub.add_parser("logs", help="show a function's logs (or follow them)")
    s.add_argument("name")
    s.add_argument("--follow", "-f", action="store_true")
    s.add_argument("--since", help="10m, 2h, 1d or a Unix timestamp")
    s.add_argument("--request-id")
    s.add_argument("--version")
    s.add_argument("--limit", type=int, default=100)
    s.set_defaults(fn=cmd_logs)

    s = sub.add_parser("usage", help="invocations, errors, throttles, GB-seconds, p50/p99")
    s.add_argument("name", nargs="?")
    s.add_argument(
        "--since", default="1h", help="window start: 10m, 2h, 1d or a Unix timestamp (default 1h)"
    )
    s.set_defaults(fn=cmd_usage)

    s = sub.add_parser("ls", help="list functions")
    s.set_defaults(fn=cmd_ls)
    s = sub.add_parser("get", help="show one function")
    s.add_argument("name")
    s.set_defaults(fn=cmd_get)
    s = sub.add_parser("rm", help="delete a function with its versions and aliases")
    s.add_argument("name")
    s.set_defaults(fn=cmd_rm)

    s = sub.add_parser("config", help="change configuration without redeploying code")
    config_sub = s.add_subparsers(dest="config_command", required=True)
    c = config_sub.add_parser("set", help="set KEY=VALUE (memory=256 timeout=10 concurrency=5 ...)")
    c.add_argument("name")
    c.add_argument("settings", nargs="*", metavar="KEY=VALUE")
    c.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set an environment variable",
    )
    c.set_defaults(fn=cmd_config_set)
    from firebox.sdk.cli_events import add_parsers

    add_parsers(sub)
    _add_keys_parser(sub)
    _add_bench_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failure, 2 usage)."""
    args = parser().parse_args(argv)
    try:
        code: int = args.fn(args)
    except (FireboxError, CompileError) as exc:
        print(f"firebox: {exc}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"firebox: {exc}", file=sys.stderr)
        return 2
    except (OSError, httpx.TransportError) as exc:
        print(f"firebox: cannot reach the node: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
