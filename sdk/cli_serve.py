"""`firebox serve`: run a node, saying "serving" only once its port answers (SDK layer)."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
from firebox.sdk.cli_context import CommandFailed, function_urls, note

#: How long `serve` waits for its own /healthz before saying it did not come up.
READY_TIMEOUT_S = 300.0


def bind(host: str, port: int) -> socket.socket:
    """Return a socket listening on `host:port` (connections wait in its backlog until the
    node serves). Raises CommandFailed, with the --port hint, if the port is taken.

    Listening before the node starts (not in uvicorn, after the seconds of start-up) makes
    a busy port fail at once, and no other process can take the port in between.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose `proto` says TCP,
    # and without it a response written in two parts waits ~40 ms for the client's
    # delayed ACK (every request measured 44 ms instead of ~2).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as exc:
        sock.close()
        busy = exc.errno == errno.EADDRINUSE
        other = port + 1 if port < 65535 else 8081
        raise CommandFailed(
            f"cannot listen on {host}:{port}: "
            + ("the port is already in use (another node?)" if busy else str(exc.strerror))
            + f"\n  pick another port: --port {other}, and point the CLI at it:"
            f" export FIREBOX_ENDPOINT=http://{host}:{other}"
        ) from None
    return sock


def is_collection(path: Path) -> bool:
    """A folder of functions (like examples/) rather than one function's folder."""
    return path.is_dir() and not (path / "firebox.toml").exists()


def ready_lines(base: str, deployed: list[tuple[str, dict[str, Any]]], started: float) -> str:
    """Return the ready message: the URL, then every deployed function's URLs."""
    lines = [f"ready in {time.monotonic() - started:.1f} s: serving on {base}"]
    for name, config in deployed:
        lines.append(f"  {name}")
        lines += [f"    {url}" for url in function_urls(base, name, config)]
    if base != "http://127.0.0.1:8080":
        lines.append(f"  point the CLI here: export FIREBOX_ENDPOINT={base}")
    return "\n".join(lines)


def cmd_serve(args: argparse.Namespace) -> int:
    started = time.monotonic()
    # Everything the node and its workers write (databases, WAL files, artifacts, logs)
    # is private to the node's user, whatever umask it was started with.
    os.umask(0o077)
    sock = bind(args.host, args.port)
    import logging

    import uvicorn
    from firebox.compiler.build import build_function
    from firebox.compiler.errors import CompileError
    from firebox.runtime.config import NodeConfig
    from firebox.runtime.credentials import credentials_path
    from firebox.runtime.errors import FireboxError
    from firebox.runtime.http.app import create_app
    from firebox.runtime.http.server import server_config
    from firebox.runtime.node import Node

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # the ready check's own requests
    config = NodeConfig.from_env(args.data_dir)
    # The node's own API, as its workers reach it (boto3 in functions: host/aws.py).
    port = sock.getsockname()[1]
    local = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    local = "[::1]" if local == "::" else (f"[{local}]" if ":" in local else local)
    config = dataclasses.replace(config, api_url=f"http://{local}:{port}")
    node = Node(config)
    where = (
        "the environment"
        if not node.generated_credentials and not credentials_path(config.data_dir).exists()
        else str(credentials_path(config.data_dir))
    )
    if node.generated_credentials:
        note(f"generated admin credentials in {where}")
    note(
        f"data dir {config.data_dir}; admin key id {node.credentials.access_key_id}"
        f" (credentials: {where})"
    )
    deployed: list[tuple[str, dict[str, Any]]] = []

    async def deploy_bundled(node: Node) -> None:
        for path in args.deploy:
            items = sorted(Path(path).iterdir()) if is_collection(Path(path)) else [Path(path)]
            for item in items:
                try:
                    built = build_function(item)
                    fn = await node.deploy(built.manifest, built.code)
                    deployed.append((fn.name, dict(built.manifest)))
                    note(f"deployed {fn.name} from {item}")
                except (CompileError, FireboxError) as exc:
                    note(f"skipped {item}: {exc}")

    app = create_app(node, deploy_bundled if args.deploy else None)
    server = uvicorn.Server(server_config(app, args.host, args.port))
    host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{'127.0.0.1' if args.host == '0.0.0.0' else host}:{args.port}"
    note(
        f"starting on {base} (the first start also builds the Python interpreter: a minute or two)"
    )
    watcher = threading.Thread(
        target=_announce, args=(server, base, deployed, started), daemon=True
    )
    watcher.start()
    server.run(sockets=[sock])
    if not server.started:
        note("the node did not start (see the messages above)")
        return 1
    return 0


def _announce(
    server: Any, base: str, deployed: list[tuple[str, dict[str, Any]]], started: float
) -> None:
    """Print the ready lines once the node's own /healthz answers."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and not server.should_exit:
        if server.started:
            try:
                if httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200:
                    print(
                        f"firebox: {ready_lines(base, deployed, started)}",
                        file=sys.stderr,
                        flush=True,
                    )
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.05)


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `firebox serve` to the `firebox` parser."""
    s = sub.add_parser(
        "serve",
        parents=[common],
        help="run a node (embedded: everything in the data dir)",
        description="Run a node in the foreground. It prints `ready` with its URLs once the"
        " port answers; a port already in use fails at once.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  firebox serve --deploy examples\n"
        "  firebox serve --port 9000 &  export FIREBOX_ENDPOINT=http://127.0.0.1:9000",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    s.add_argument("--data-dir", help="default: FIREBOX_DATA_DIR or ~/.local/share/firebox")
    s.add_argument("--deploy", action="append", default=[], metavar="PATH",
                   help="deploy a function folder (or a folder of them) at start; repeatable")  # fmt: skip
    s.set_defaults(fn=cmd_serve)
