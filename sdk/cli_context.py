"""What every `firebox` command shares: the node it talks to, how it prints, how it fails (SDK layer)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from firebox.runtime import config


class UsageError(Exception):
    """A mistake in the command line the parser could not catch (exit code 2)."""


class CommandFailed(Exception):
    """A command could not do its job for a reason it explains (a missing folder...; exit 1)."""


def endpoint(args: argparse.Namespace) -> str:
    """Return the node URL a command talks to: --endpoint, FIREBOX_ENDPOINT, the default."""
    url: str = getattr(args, "endpoint", None) or config.FIREBOX_ENDPOINT.get()
    return url.rstrip("/")


def client(args: argparse.Namespace, *, use_msgpack: bool = True) -> Any:
    """Return a `Client` of the node the command talks to."""
    from firebox.sdk.client import Client

    return Client(endpoint(args), use_msgpack=use_msgpack)


def _json_default(value: object) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def output(args: argparse.Namespace, value: Any, human: str | None = None) -> int:
    """Print `value` as JSON with --json (or when there is no human form), else `human`."""
    if getattr(args, "json", False) or human is None:
        print(json.dumps(value, indent=2, default=_json_default))
    else:
        print(human)
    return 0


def note(message: str) -> None:
    """Print a progress or status line for the user on stderr."""
    print(f"firebox: {message}", file=sys.stderr, flush=True)


def unreachable(args: argparse.Namespace, exc: BaseException) -> str:
    """Return what to tell a user whose node does not answer."""
    return (
        f"cannot reach the node at {endpoint(args)} ({exc}).\n"
        "  Start one with ./scripts/start (or `firebox serve`, or `firebox dev DIR`), or point\n"
        "  the CLI at a running node: export FIREBOX_ENDPOINT=http://HOST:PORT (or --endpoint)."
    )


def function_urls(base: str, name: str, config: dict[str, Any]) -> list[str]:
    """Return the URLs that run a function: its invoke URL, then each HTTP trigger's."""
    urls = [f"POST {base}/v1/functions/{name}/invoke"]
    for trigger in config.get("triggers") or []:
        methods = ",".join(trigger.get("methods") or ["ANY"])
        urls.append(f"{methods} {base}{trigger.get('route', '')}")
    return urls
