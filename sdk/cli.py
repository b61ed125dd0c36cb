"""The `firebox` command: serve a node, deploy, invoke, list, inspect, delete (SDK layer)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from firebox.compiler.errors import CompileError
from firebox.runtime.errors import FireboxError


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

    return Client(args.endpoint)


def cmd_deploy(args: argparse.Namespace) -> int:
    with _client(args) as client:
        fn = client.deploy_path(args.path)
    _print(args, fn, f"deployed {fn['name']} (revision {fn['revision']}, {fn['runtime']})")
    return 0


def cmd_invoke(args: argparse.Namespace) -> int:
    try:
        event = json.loads(args.data) if args.data is not None else {}
    except json.JSONDecodeError as exc:
        print(f"firebox: --data is not valid JSON: {exc}", file=sys.stderr)
        return 2
    with _client(args) as client:
        result = client.invoke(args.name, event, export=args.export, tail=args.log)
    if args.log and result.log:
        print(result.log.rstrip("\n"), file=sys.stderr)
    if result.error is not None:
        _print(args, result.error.to_dict(), f"error: {result.error.code}: {result.error.message}")
        return 1
    payload = result.payload
    _print(
        args,
        payload,
        json.dumps(payload)
        if not isinstance(payload, bytes)
        else payload.decode("utf-8", "replace"),
    )
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    with _client(args) as client:
        functions = client.list()
    lines = [f"{'NAME':24} {'RUNTIME':8} {'REV':>4} {'MEMORY':>7} {'TIMEOUT':>8}"]
    for fn in functions:
        cfg = fn["config"]
        lines.append(
            f"{fn['name']:24} {fn['runtime']:8} {fn['revision']:>4} {cfg['memory']:>5}MB {cfg['timeout']:>7}s"
        )
    _print(args, functions, "\n".join(lines))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        fn = client.get(args.name)
    _print(args, fn, json.dumps(fn, indent=2))
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with _client(args) as client:
        client.delete(args.name)
    _print(args, {"deleted": args.name}, f"deleted {args.name}")
    return 0


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

    s = sub.add_parser("invoke", help="invoke a function and print its result")
    s.add_argument("name")
    s.add_argument("--data", "-d", help="the event, as JSON (default {})")
    s.add_argument("--export", help="the export to call (default: the function's handler)")
    s.add_argument("--log", action="store_true", help="print the invocation's log tail to stderr")
    s.set_defaults(fn=cmd_invoke)

    s = sub.add_parser("ls", help="list functions")
    s.set_defaults(fn=cmd_ls)
    s = sub.add_parser("get", help="show one function")
    s.add_argument("name")
    s.set_defaults(fn=cmd_get)
    s = sub.add_parser("rm", help="delete a function")
    s.add_argument("name")
    s.set_defaults(fn=cmd_rm)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failure, 2 usage)."""
    args = parser().parse_args(argv)
    try:
        code: int = args.fn(args)
    except (FireboxError, CompileError) as exc:
        print(f"firebox: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"firebox: cannot reach the node: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
