"""`firebox new | dev`: scaffold a function, then a live-reload loop around it (SDK layer).

`dev` uses the node at the endpoint, or starts one if nothing answers on a local port;
deploys the folder; invokes its `event.json` (if any) after every deploy; follows the
function's logs; and polls the folder's files (every POLL_S) to redeploy on each save.
Polling costs a few stat calls per tick on a function-sized folder and needs no
dependency; a deploy takes well under a second, so a save shows its result at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from firebox.sdk import cli_errors, templates
from firebox.sdk.cli_context import CommandFailed, endpoint, function_urls
from firebox.sdk.cli_logs import format_entry

POLL_S = 0.2
#: Folders whose changes never need a redeploy.
IGNORED = frozenset({"__pycache__", ".git", ".venv", "venv", ".mypy_cache", ".pytest_cache"})
START_TIMEOUT_S = 180.0


def say(message: str) -> None:
    """Print one line of the dev loop's own output."""
    print(f"[dev] {message}", flush=True)


def cmd_new(args: argparse.Namespace) -> int:
    folder = Path(args.name)
    written = templates.write(folder, args.template)
    print(f"created {folder}/ from the {args.template} template:")
    for path in written:
        print(f"  {path}")
    print(
        f"next:\n  firebox dev {folder}                       # deploy, redeploy on save, follow logs\n"
        f"  firebox invoke {folder.name} --data @{folder / templates.EVENT_FILE}"
    )
    return 0


def snapshot(folder: Path) -> dict[str, float]:
    """Return the modification time of every file under `folder` that a deploy would ship."""
    out: dict[str, float] = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in IGNORED]
        for name in files:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):
                out[path] = os.stat(path).st_mtime_ns
    return out


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def node_at(base: str) -> Iterator[None]:
    """Use the node answering at `base`, or run one there for the loop's lifetime."""
    if _healthy(base):
        say(f"using the node at {base}")
        yield
        return
    parts = urlsplit(base)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        raise CommandFailed(f"no node answers at {base}; start it, or drop --endpoint")
    port = parts.port or 80
    say(f"no node at {base}: starting one (firebox serve --port {port})")
    proc = subprocess.Popen(
        [sys.executable, "-m", "firebox.sdk.cli", "serve", "--port", str(port)],
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(base):
            if proc.poll() is not None:
                raise CommandFailed(f"the node exited (code {proc.returncode}); see above")
            if time.monotonic() > deadline:
                raise CommandFailed(f"the node at {base} did not answer in {START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def deploy_once(client: Any, folder: Path, base: str, announce: bool) -> str | None:
    """Build and deploy `folder`, then run its test event; returns the function's name.

    Build and deploy failures are printed (the loop keeps watching), not raised.
    """
    from firebox.compiler.build import build_function
    from firebox.compiler.errors import CompileError
    from firebox.runtime.errors import FireboxError

    started = time.monotonic()
    try:
        built = build_function(folder)
        fn = client.deploy(built.manifest, built.code)
    except (CompileError, FireboxError) as exc:
        say(f"deploy failed: {exc}")
        advice = cli_errors.hint("", str(exc))
        if advice:
            say(f"hint: {advice}")
        return None
    say(f"deployed {fn.name} (revision {fn.revision}) in {time.monotonic() - started:.2f} s")
    if announce:
        for url in function_urls(base, fn.name, fn.config):
            say(f"  {url}")
    event_file = folder / templates.EVENT_FILE
    if event_file.is_file():
        try:
            event = json.loads(event_file.read_text())
        except ValueError as exc:
            say(f"{event_file} is not valid JSON: {exc}")
            return str(fn.name)
        result = client.invoke(fn.name, event)
        if result.error is not None:
            for line in cli_errors.describe(result.error).splitlines():
                say(line)
        else:
            say(f"{templates.EVENT_FILE} -> {json.dumps(result.payload)}")
    return str(fn.name)


def follow(base: str, name: str, stop: threading.Event) -> None:
    """Print the function's new log records until `stop` is set (a daemon thread)."""
    from firebox.sdk.client import Client

    since = time.time()
    while not stop.is_set():
        try:
            with Client(base) as client:
                for entry in client.follow_logs(name, since=since):
                    since = entry.ts
                    print(format_entry(entry, with_function=False), flush=True)
                    if stop.is_set():
                        return
        except Exception:  # the node restarted, the function was renamed: try again
            time.sleep(1.0)


def cmd_dev(args: argparse.Namespace) -> int:
    from firebox.sdk.client import Client

    folder = Path(args.path)
    if not (folder / "firebox.toml").is_file():
        raise CommandFailed(
            f"{folder} is not a function folder (no firebox.toml there);"
            " `firebox new NAME` makes one"
        )
    base = endpoint(args) if args.port is None else f"http://127.0.0.1:{args.port}"
    with node_at(base), Client(base) as client:
        seen = snapshot(folder)
        name = deploy_once(client, folder, base, announce=True)
        stop = threading.Event()
        logs_for: str | None = None
        say(f"watching {folder} for changes (Ctrl-C to stop)")
        try:
            while True:
                if name and name != logs_for and not args.no_logs:
                    threading.Thread(target=follow, args=(base, name, stop), daemon=True).start()
                    logs_for = name
                time.sleep(POLL_S)
                now = snapshot(folder)
                if now != seen:
                    seen = now
                    changed = deploy_once(client, folder, base, announce=False)
                    name = changed or name
        except KeyboardInterrupt:
            say("stopped")
        finally:
            stop.set()
    return 0


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `new` and `dev` to the `firebox` parser."""
    s = sub.add_parser(
        "new",
        parents=[common],
        help="create a function folder from a template (with a test event)",
        description="Create NAME/ with a firebox.toml, the code and event.json (a test event).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="templates:\n  python       a Lambda handler returning JSON\n"
        "  python-http  an HTTP handler on the trigger route /NAME/*\n"
        "  python-sqs   a queue consumer reporting failed messages\n"
        "  wat          a WebAssembly text module on ABI v1\n\n"
        "examples:\n  firebox new hello\n  firebox new api --template python-http && firebox dev api",
    )
    s.add_argument("name", help="the function's name, and the folder to create")
    s.add_argument(
        "--template", "-t", default="python", choices=list(templates.TEMPLATES),
        help="what kind of function (default python)",
    )  # fmt: skip
    s.set_defaults(fn=cmd_new)

    s = sub.add_parser(
        "dev",
        parents=[common],
        help="deploy a folder, redeploy it on every save, run its event.json, follow its logs",
        description="A live-reload loop: uses the node at the endpoint (or starts one on a local"
        " port), deploys DIR, invokes DIR/event.json after every deploy, prints the URLs and"
        " follows the function's logs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  firebox dev hello\n  firebox dev . --port 9000",
    )
    s.add_argument("path", nargs="?", default=".", help="the function folder (default .)")
    s.add_argument("--port", type=int, help="use (or start) the node on this local port")
    s.add_argument("--no-logs", action="store_true", help="do not follow the function's logs")
    s.set_defaults(fn=cmd_dev)
