"""`firebox tables ... | buckets ... | secrets ...`: seed and inspect the data functions
are granted (SDK layer)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from firebox.sdk.cli_context import UsageError, client, output

__all__ = ["add_parsers"]


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [name for name in names if getattr(args, name) is None]
    if missing:
        raise UsageError(f"`firebox {args.command} {args.action}` needs {', '.join(missing)}")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text  # a bare word is a string value


def cmd_tables(args: argparse.Namespace) -> int:
    with client(args) as c:
        t = c.tables
        if args.action == "ls":
            tables = t.list()
            return output(
                args, tables, "\n".join(f"{x['name']}  {x['items']} items" for x in tables)
            )
        _need(args, "table")
        if args.action == "query":
            page = t.query(args.table, args.key or "", limit=args.limit, cursor=args.cursor)
            lines = [f"{i['key']}  {json.dumps(i['value'])}" for i in page["items"]]
            if page.get("cursor"):
                lines.append(f"(more: --cursor {page['cursor']})")
            return output(args, page, "\n".join(lines))
        _need(args, "key")
        if args.action == "get":
            item = t.get(args.table, args.key)
            return output(args, item, json.dumps(item["value"], indent=2))
        if args.action == "put":
            _need(args, "value")
            item = t.put(args.table, args.key, _value(args.value), ttl=args.ttl)
            return output(args, item, f"put {args.table}/{args.key} (version {item['version']})")
        t.delete(args.table, args.key)
        return output(args, {"deleted": args.key}, f"deleted {args.table}/{args.key}")


def cmd_buckets(args: argparse.Namespace) -> int:
    with client(args) as c:
        b = c.buckets
        if args.action == "ls":
            found = b.list()
            return output(args, found, "\n".join(
                f"{x['name']}  {x['objects']} objects  {x['bytes']} bytes" for x in found))  # fmt: skip
        _need(args, "bucket")
        if args.action == "objects":
            page = b.objects(args.bucket, args.key or "", limit=args.limit, cursor=args.cursor)
            lines = [f"{o['key']}  {o['size']}  {o['content_type']}" for o in page["objects"]]
            if page.get("cursor"):
                lines.append(f"(more: --cursor {page['cursor']})")
            return output(args, page, "\n".join(lines))
        _need(args, "key")
        if args.action == "put":
            _need(args, "file")
            data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
            info = b.put(args.bucket, args.key, data, args.content_type)
            return output(args, info, f"put {args.bucket}/{args.key} ({info['size']} bytes)")
        if args.action == "get":
            data = b.get(args.bucket, args.key)
            if args.file and args.file != "-":
                Path(args.file).write_bytes(data)
                return output(args, {"written": args.file, "size": len(data)}, f"wrote {args.file}")
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
            return 0
        if args.action == "head":
            info = b.head(args.bucket, args.key)
            if info is None:
                raise UsageError(f"no object {args.key!r} in bucket {args.bucket!r}")
            return output(
                args, info, f"{info['size']} bytes  {info['content_type']}  {info['etag']}"
            )
        b.delete(args.bucket, args.key)
        return output(args, {"deleted": args.key}, f"deleted {args.bucket}/{args.key}")


def cmd_secrets(args: argparse.Namespace) -> int:
    with client(args) as c:
        s = c.secrets
        if args.action == "ls":
            found = s.list()
            return output(args, found, "\n".join(f"{x['name']}  v{x['version']}" for x in found))
        _need(args, "name")
        if args.action == "set":
            # From stdin by default, so the value stays out of shell history and `ps`.
            value = args.value if args.value is not None else sys.stdin.read().rstrip("\n")
            info = s.set(args.name, value)
            return output(args, info, f"set secret {args.name} (version {info['version']})")
        s.delete(args.name)
        return output(args, {"deleted": args.name}, f"deleted secret {args.name}")


def _command(sub: Any, common: argparse.ArgumentParser, name: str, help: str, epilog: str) -> Any:
    return sub.add_parser(
        name, parents=[common], help=help, description=help[0].upper() + help[1:] + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n" + epilog,
    )  # fmt: skip


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `tables` and `buckets` to the `firebox` parser."""
    p = _command(sub, common, "tables", "key-value tables: ls | query | get | put | rm",
                 "  firebox tables put orders o-1 '{\"total\": 12}' --ttl 3600\n"
                 "  firebox tables get orders o-1\n  firebox tables query orders o- --limit 10")  # fmt: skip
    p.add_argument("action", choices=["ls", "query", "get", "put", "rm"], help="what to do")
    p.add_argument("table", nargs="?", help="the table")
    p.add_argument("key", nargs="?", help="the item's key (the prefix for query)")
    p.add_argument("value", nargs="?", help="the value, JSON (put; a bare word is a string)")
    p.add_argument("--ttl", type=float, help="seconds until the item expires (put)")
    p.add_argument("--limit", type=int, help="items per page (query; default 100)")
    p.add_argument("--cursor", help="resume after this key (query)")
    p.set_defaults(fn=cmd_tables)

    p = _command(sub, common, "buckets", "blob buckets: ls | objects | put | get | head | rm",
                 "  firebox buckets put media a/report.csv report.csv --content-type text/csv\n"
                 "  firebox buckets get media a/report.csv out.csv\n"
                 "  firebox buckets objects media a/")  # fmt: skip
    p.add_argument("action", choices=["ls", "objects", "put", "get", "head", "rm"],
                   help="what to do")  # fmt: skip
    p.add_argument("bucket", nargs="?", help="the bucket")
    p.add_argument("key", nargs="?", help="the object's key (the prefix for objects)")
    p.add_argument("file", nargs="?", help="file to upload or write ('-': stdin/stdout)")
    p.add_argument("--content-type", help="the object's content type (put)")
    p.add_argument("--limit", type=int, help="objects per page (objects; default 100)")
    p.add_argument("--cursor", help="resume after this key (objects)")
    p.set_defaults(fn=cmd_buckets)

    p = _command(sub, common, "secrets", "secrets: ls | set | rm (values are never shown)",
                 "  echo -n sk_live_... | firebox secrets set STRIPE_KEY\n"
                 "  firebox secrets ls\n  firebox secrets rm STRIPE_KEY")  # fmt: skip
    p.add_argument("action", choices=["ls", "set", "rm"], help="what to do")
    p.add_argument("name", nargs="?", help="the secret")
    p.add_argument("value", nargs="?", help="the value (set; default: read from stdin)")
    p.set_defaults(fn=cmd_secrets)
