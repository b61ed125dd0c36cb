"""`firebox deploy | update | publish | alias | invoke | ls | get | rm | config`: functions (SDK layer)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from firebox.sdk import cli_errors
from firebox.sdk.cli_context import (
    CommandFailed,
    UsageError,
    client,
    endpoint,
    function_urls,
    output,
)

EXAMPLES = argparse.RawDescriptionHelpFormatter


def _progress(message: str) -> Any:
    """A spinner on slow steps when stderr is a terminal (rich), else nothing."""
    import contextlib

    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(message)


def build(path: Path) -> Any:
    """Build a function folder or .wat/.wasm file; raises CommandFailed if it is not there."""
    from firebox.compiler.build import build_function

    if not path.exists():
        raise CommandFailed(
            f"{path} does not exist: give a function folder (with a firebox.toml) or a"
            " .wat/.wasm file (`firebox new NAME` makes a folder)"
        )
    with _progress(f"Building {path}..."):
        return build_function(path)


def describe(fn: Any) -> str:
    """Return the human description of a function version."""
    cfg = fn.config
    return (
        f"{fn.name} ({fn.runtime}, version {fn.version}, revision {fn.revision})\n"
        f"  memory {cfg['memory']} MB, timeout {cfg['timeout']} s, concurrency {cfg['concurrency']},"
        f" provisioned {cfg['provisioned']}, isolation {cfg['isolation']}\n"
        f"  digest {fn.digest[:16]}  {cfg.get('description') or ''}"
    )


def urls_block(args: argparse.Namespace, fn: Any) -> str:
    """Return the indented list of a function's URLs."""
    return "\n".join(f"  {url}" for url in function_urls(endpoint(args), fn.name, fn.config))


def cmd_deploy(args: argparse.Namespace) -> int:
    built = build(args.path)
    with (
        client(args) as c,
        _progress(f"Uploading {built.manifest.get('name')} ({len(built.code)} bytes)..."),
    ):
        fn = c.deploy(built.manifest, built.code)
    human = f"deployed {fn.name} (revision {fn.revision}, {fn.runtime})\n{urls_block(args, fn)}"
    return output(args, asdict(fn), human)


def cmd_update(args: argparse.Namespace) -> int:
    built = build(args.path)
    with client(args) as c, _progress("Uploading..."):
        fn = c.update_code(args.name, built.code)
    return output(args, asdict(fn), f"updated the code of {fn.name} (revision {fn.revision})")


def cmd_publish(args: argparse.Namespace) -> int:
    with client(args) as c:
        before = {v.version for v in c.versions(args.name)}
        fn = c.publish(args.name, args.description or "")
    if fn.version in before:
        human = (
            f"{fn.name}: $LATEST has the same code and configuration as version {fn.version};"
            " no new version\n  (change the code with `firebox deploy` or the configuration"
            " with `firebox config set`, then publish again)"
        )
    else:
        human = f"published {fn.name} version {fn.version}"
    return output(args, {**asdict(fn), "new": fn.version not in before}, human)


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
    with client(args) as c:
        if args.action == "ls":
            aliases = c.aliases(args.name)
            lines = [f"{'ALIAS':20} {'VERSION':>8}  ROUTING"]
            lines += [f"{a.name:20} {a.version:>8}  {a.routing or ''}" for a in aliases]
            return output(args, [asdict(a) for a in aliases], "\n".join(lines))
        if args.alias is None:
            raise UsageError("name the alias")
        if args.action == "delete":
            c.delete_alias(args.name, args.alias)
            return output(args, {"deleted": args.alias}, f"deleted alias {args.alias}")
        routing = {} if args.no_route else _weights(args.route)
        if args.action == "create":
            if args.version is None:
                raise UsageError("alias create needs --version")
            alias = c.create_alias(args.name, args.alias, args.version, routing, args.description)
        else:
            alias = c.update_alias(args.name, args.alias, args.version, routing, args.description)
    human = f"alias {alias.name} -> version {alias.version} {alias.routing or ''}".rstrip()
    return output(args, asdict(alias), human)


def read_data(text: str | None) -> Any:
    """Return the event --data names: JSON text, `@FILE` (a JSON file) or `@-` (stdin)."""
    if text is None:
        return {}
    source = "--data"
    if text.startswith("@"):
        name = text[1:]
        source = "stdin" if name == "-" else name
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text()
        except OSError as exc:
            raise CommandFailed(f"cannot read the event from {name}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"the event ({source}) is not valid JSON: {exc}") from None


def cmd_invoke(args: argparse.Namespace) -> int:
    event = read_data(args.data)
    with client(args) as c:
        result = c.invoke(
            args.name, event, qualifier=args.qualifier, export=args.export, tail=args.log,
            invocation_type=args.type,
        )  # fmt: skip
    if args.log and result.log:
        print(result.log.rstrip("\n"), file=sys.stderr)
    if result.error is not None:
        if args.json:
            output(args, result.error.to_dict())
        else:
            print(cli_errors.describe(result.error), file=sys.stderr)
        return 1
    if args.type == "DryRun":
        return output(args, {"status": result.status_code, "version": result.version},
                      f"DryRun: {args.name} would run version {result.version}")  # fmt: skip
    if args.type == "Event":
        return output(args, {"request_id": result.request_id, "status": result.status_code},
                      f"Event: accepted (request {result.request_id})")  # fmt: skip
    payload = result.payload
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else json.dumps(payload)
    return output(args, payload, text)


def cmd_ls(args: argparse.Namespace) -> int:
    with client(args) as c:
        functions = c.list()
    lines = [f"{'NAME':24} {'RUNTIME':8} {'REV':>4} {'MEMORY':>7} {'TIMEOUT':>8}"]
    for fn in functions:
        cfg = fn.config
        lines.append(
            f"{fn.name:24} {fn.runtime:8} {fn.revision:>4} {cfg['memory']:>5}MB {cfg['timeout']:>7}s"
        )
    return output(args, [asdict(f) for f in functions], "\n".join(lines))


def cmd_get(args: argparse.Namespace) -> int:
    with client(args) as c:
        fn = c.get(args.name)
    extra = fn.extra
    human = describe(fn)
    if extra.get("versions"):
        human += "\n  versions: " + ", ".join(v["version"] for v in extra["versions"])
    if extra.get("aliases"):
        human += "\n  aliases: " + ", ".join(
            f"{a['name']}->{a['version']}" for a in extra["aliases"]
        )
    if "pool" in extra:
        human += f"\n  ready instances: {extra['pool']['ready']}"
    triggers = fn.config.get("triggers") or []
    human += "\n  triggers: " + (
        ", ".join(f"http {','.join(t['methods'])} {t['route']}" for t in triggers) or "none"
    )
    human += "\n  URLs:\n" + "\n".join(f"  {line}" for line in urls_block(args, fn).splitlines())
    return output(args, asdict(fn), human)


def cmd_rm(args: argparse.Namespace) -> int:
    with client(args) as c:
        c.delete(args.name)
    return output(args, {"deleted": args.name}, f"deleted {args.name}")


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
    with client(args) as c:
        if args.env:
            env = dict(c.get(args.name).config.get("environment", {}))
            for item in args.env:
                key, sep, value = item.partition("=")
                if not sep:
                    raise UsageError(f"--env takes KEY=VALUE, got {item!r}")
                env[key] = value
            changes["environment"] = env
        fn = c.update_config(args.name, **changes)
    return output(args, asdict(fn), describe(fn))


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the function commands to the `firebox` parser."""

    def command(name: str, help: str, epilog: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(  # type: ignore[no-any-return]
            name, parents=[common], help=help, description=help[0].upper() + help[1:] + ".",
            epilog="examples:\n" + epilog, formatter_class=EXAMPLES, **kw,
        )  # fmt: skip

    s = command("deploy", "build and upload a function (a folder or a .wat/.wasm file)",
                "  firebox deploy examples/hello-python\n  firebox deploy ./guest.wat")  # fmt: skip
    s.add_argument("path", type=Path, help="function folder with a firebox.toml, or .wat/.wasm")
    s.set_defaults(fn=cmd_deploy)

    s = command("update", "replace a function's code, keeping its configuration",
                "  firebox update hello-python examples/hello-python")  # fmt: skip
    s.add_argument("name", help="the function")
    s.add_argument("path", type=Path, help="function folder or .wat/.wasm file to build")
    s.set_defaults(fn=cmd_update)

    s = command("publish", "publish $LATEST as an immutable numbered version",
                '  firebox publish hello-python -m "first release"')  # fmt: skip
    s.add_argument("name", help="the function")
    s.add_argument("--description", "-m", help="what this version is")
    s.set_defaults(fn=cmd_publish)

    s = command("alias", "manage aliases: create | update | delete | ls",
                "  firebox alias create hello-python live --version 1\n"
                "  firebox alias update hello-python live --route 2=0.1   # 10% to version 2\n"
                "  firebox alias update hello-python live --version 2 --no-route\n"
                "  firebox alias ls hello-python")  # fmt: skip
    s.add_argument("action", choices=["create", "update", "delete", "ls"], help="what to do")
    s.add_argument("name", help="the function")
    s.add_argument("alias", nargs="?", help="the alias (all but ls)")
    s.add_argument("--version", "-v", help="the version the alias points at")
    s.add_argument("--route", action="append", default=[], metavar="VERSION=WEIGHT",
                   help="send a share of the traffic to another version (repeatable)")  # fmt: skip
    s.add_argument("--no-route", action="store_true", help="remove weighted routing")
    s.add_argument("--description", help="what the alias is for")
    s.set_defaults(fn=cmd_alias)

    s = command("invoke", "invoke a function and print its result",
                "  firebox invoke hello-python --data '{\"name\": \"Ada\"}' --log\n"
                "  firebox event sqs --body hi | firebox invoke worker --data @-\n"
                "  firebox invoke hello-python:live --data @event.json\n"
                "  firebox invoke hello-python --type Event   # run later, print the request id")  # fmt: skip
    s.add_argument("name", help="NAME or NAME:QUALIFIER (version number or alias)")
    s.add_argument("--data", "-d", metavar="JSON|@FILE|@-",
                   help="the event: JSON text, @FILE to read a file, @- to read stdin (default {})")  # fmt: skip
    s.add_argument("--qualifier", "-q", help="version number or alias")
    s.add_argument("--export", help="the export to call (default: the function's handler)")
    s.add_argument("--type", default="RequestResponse",
                   choices=["RequestResponse", "Event", "DryRun"],
                   help="RequestResponse waits for the result; Event queues it; DryRun only checks")  # fmt: skip
    s.add_argument("--log", action="store_true", help="print the invocation's log tail to stderr")
    s.set_defaults(fn=cmd_invoke)

    s = command("ls", "list functions", "  firebox ls\n  firebox ls --json | jq '.[].name'")
    s.set_defaults(fn=cmd_ls)
    s = command("get", "show one function: configuration, versions, aliases, triggers, URLs",
                "  firebox get hello-python")  # fmt: skip
    s.add_argument("name", help="the function")
    s.set_defaults(fn=cmd_get)
    s = command(
        "rm", "delete a function with its versions and aliases", "  firebox rm hello-python"
    )
    s.add_argument("name", help="the function")
    s.set_defaults(fn=cmd_rm)

    s = command("config", "change configuration without redeploying code",
                "  firebox config set hello-python memory=256 timeout=5 --env GREETING=Hi")  # fmt: skip
    config_sub = s.add_subparsers(dest="config_command", required=True, metavar="set")
    c = config_sub.add_parser(
        "set", parents=[common], help="set KEY=VALUE (memory=256 timeout=10 concurrency=5 ...)",
        description="Change $LATEST's configuration. Values are read as JSON when they parse.",
    )  # fmt: skip
    c.add_argument("name", help="the function")
    c.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                   help="memory, timeout, fuel, concurrency, provisioned, isolation, description, ...")  # fmt: skip
    c.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="set an environment variable, keeping the others (repeatable)")  # fmt: skip
    c.set_defaults(fn=cmd_config_set)
