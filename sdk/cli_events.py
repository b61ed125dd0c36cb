"""`firebox queue | stream | mapping | schedule | events ...`: the event commands (SDK layer)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from firebox.sdk.cli_context import UsageError, client, output

__all__ = ["UsageError", "add_parsers"]


def _client(args: argparse.Namespace) -> Any:
    return client(args)


def _out(args: argparse.Namespace, value: Any, human: str | None = None) -> int:
    return output(args, value, human)


def _mapping_line(m: dict[str, Any]) -> str:
    state = m.get("state") or ("Enabled" if m.get("enabled") else "Disabled")
    return f"{m['id']}  {m['function']} <- {m['source']}  batch {m.get('batch_size', '-')}  {state}"


def _destination(text: str | None) -> dict[str, str] | None:
    if text is None:
        return None
    kind, sep, name = text.partition(":")
    if not sep or kind not in ("queue", "function"):
        raise UsageError(f"a destination is queue:NAME or function:NAME, got {text!r}")
    return {"type": kind, "name": name}


def cmd_queue(args: argparse.Namespace) -> int:
    with _client(args) as client:
        q = client.queues
        if args.action == "create":
            attrs: dict[str, Any] = {}
            if args.visibility is not None:
                attrs["visibility_timeout_s"] = args.visibility
            if args.dlq:
                attrs.update(dead_letter_queue=args.dlq, max_receive_count=args.max_receives)
            return _out(args, q.create(args.name, **attrs), f"created queue {args.name}")
        if args.action == "ls":
            names = q.list()
            return _out(args, names, "\n".join(names))
        if args.action == "stats":
            info = q.get(args.name)
            s = info["stats"]
            return _out(args, info, f"{args.name}: depth {s['depth']}, in flight {s['in_flight']}, delayed {s['delayed']},"
                        f" oldest {s['oldest_age_s']:.1f}s, dead-lettered {s['dead_lettered']}")  # fmt: skip
        if args.action == "send":
            return _out(args, {"message_id": q.send(args.name, args.body, dedup_id=args.dedup_id)},
                        "sent")  # fmt: skip
        if args.action == "receive":
            messages = q.receive(args.name, args.count, None, args.wait)
            if args.delete and messages:
                q.delete_messages(args.name, [m.receipt_handle for m in messages])
            rows = [asdict(m) for m in messages]
            return _out(args, rows, "\n".join(m.body.decode("utf-8", "replace") for m in messages))
        if args.action == "purge":
            q.purge(args.name)
            return _out(args, {"purged": args.name}, f"purged {args.name}")
        q.delete(args.name)
        return _out(args, {"deleted": args.name}, f"deleted queue {args.name}")


def cmd_stream(args: argparse.Namespace) -> int:
    with _client(args) as client:
        s = client.streams
        if args.action == "create":
            return _out(
                args,
                s.create(args.name, args.shards),
                f"created stream {args.name} ({args.shards} shards)",
            )
        if args.action == "ls":
            names = s.list()
            return _out(args, names, "\n".join(names))
        if args.action == "put":
            return _out(args, s.put(args.name, args.key, args.data))
        if args.action == "read":
            records = s.read(args.name, args.key, args.after, args.limit)
            human = "\n".join(
                f"{r.sequence_number} {r.partition_key} {r.data.decode('utf-8', 'replace')}"
                for r in records
            )
            return _out(args, [asdict(r) for r in records], human)
        s.delete(args.name)
        return _out(args, {"deleted": args.name}, f"deleted stream {args.name}")


def cmd_mapping(args: argparse.Namespace) -> int:
    with _client(args) as client:
        m = client.mappings
        if args.action == "create":
            config: dict[str, Any] = {}
            if args.batch_size:
                config["batch_size"] = args.batch_size
            if args.window is not None:
                config["maximum_batching_window_s"] = args.window
            if args.report_failures:
                config["function_response_types"] = ["ReportBatchItemFailures"]
            if args.starting_position:
                config["starting_position"] = args.starting_position
            made = m.create(args.function, args.source, **config)
            return _out(args, made, f"created mapping {_mapping_line(made)}")
        if args.action == "ls":
            found = m.list(args.function)
            return _out(args, found, "\n".join(_mapping_line(x) for x in found))
        if args.action in ("enable", "disable"):
            changed = m.update(args.function, enabled=args.action == "enable")
            return _out(args, changed, _mapping_line(changed))
        if args.action == "get":
            return _out(args, m.get(args.function))
        m.delete(args.function)
        return _out(args, {"deleted": args.function}, f"deleted mapping {args.function}")


def cmd_schedule(args: argparse.Namespace) -> int:
    with _client(args) as client:
        sc = client.schedules
        if args.action == "create":
            options: dict[str, Any] = {"catch_up": args.catch_up}
            if args.payload:
                options["payload"] = json.loads(args.payload)
            return _out(args, sc.create(args.name, args.function, args.expression, **options),
                        f"scheduled {args.function} at {args.expression}")  # fmt: skip
        if args.action == "ls":
            return _out(args, sc.list())
        if args.action == "get":
            return _out(args, sc.get(args.name))
        sc.delete(args.name)
        return _out(args, {"deleted": args.name}, f"deleted schedule {args.name}")


def cmd_events(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.action == "stats":
            metrics = client.events.metrics()
            a = metrics["async"]
            lines = [f"async: accepted {a['accepted']}, succeeded {a['succeeded']}, retries {a['retries']},"
                     f" failed {a['failed']}, expired {a['expired']}, dead-lettered {a['dead_lettered']}"]  # fmt: skip
            for name, s in metrics["queues"].items():
                lines.append(
                    f"queue {name}: depth {s['depth']}, in flight {s['in_flight']}, oldest {s['oldest_age_s']:.1f}s"
                )
            return _out(args, metrics, "\n".join(lines))
        config: dict[str, Any] = {}
        if args.retries is not None:
            config["maximum_retry_attempts"] = args.retries
        if args.max_age is not None:
            config["maximum_event_age_s"] = args.max_age
        for key, value in (("on_success", args.on_success), ("on_failure", args.on_failure)):
            if value:
                config[key] = _destination(value)
        if args.dlq:
            config["dead_letter_queue"] = args.dlq
        if config:
            return _out(args, client.events.put_config(args.function, **config))
        return _out(args, client.events.get_config(args.function))


def _command(sub: Any, common: argparse.ArgumentParser, name: str, help: str, epilog: str) -> Any:
    return sub.add_parser(
        name, parents=[common], help=help, description=help[0].upper() + help[1:] + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog="examples:\n" + epilog,
    )  # fmt: skip


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the event commands to the `firebox` parser."""
    p = _command(sub, common, "queue", "queues: create | ls | stats | send | receive | purge | rm",
                 "  firebox queue create jobs --visibility 30 --dlq jobs-dead\n"
                 "  firebox queue send jobs '{\"job\": 1}'\n"
                 "  firebox queue receive jobs -n 10 --wait 5 --delete\n  firebox queue stats jobs")  # fmt: skip
    p.add_argument("action", choices=["create", "ls", "stats", "send", "receive", "purge", "rm"],
                   help="what to do")  # fmt: skip
    p.add_argument("name", nargs="?", help="the queue")
    p.add_argument("body", nargs="?", help="the message body (send)")
    p.add_argument("--visibility", type=float, help="visibility timeout in seconds (create)")
    p.add_argument("--dlq", help="dead-letter queue (create, with --max-receives)")
    p.add_argument("--max-receives", type=int, default=5,
                   help="receives before a message goes to the DLQ (default 5)")  # fmt: skip
    p.add_argument("--dedup-id", help="deduplication id (send)")
    p.add_argument("-n", "--count", type=int, default=1, help="messages to receive (default 1)")
    p.add_argument("--wait", type=float, default=0.0, help="long-poll seconds (receive)")
    p.add_argument("--delete", action="store_true", help="delete what was received")
    p.set_defaults(fn=cmd_queue)

    p = _command(sub, common, "stream", "streams: create | ls | put | read | rm",
                 "  firebox stream create clicks --shards 2\n"
                 "  firebox stream put clicks user-1 '{\"page\": \"/\"}'\n"
                 "  firebox stream read clicks shardId-000000000000")  # fmt: skip
    p.add_argument("action", choices=["create", "ls", "put", "read", "rm"], help="what to do")
    p.add_argument("name", nargs="?", help="the stream")
    p.add_argument("key", nargs="?", help="partition key (put) or shard id (read)")
    p.add_argument("data", nargs="?", help="the record's data (put)")
    p.add_argument("--shards", type=int, default=1, help="number of shards (create; default 1)")
    p.add_argument("--after", help="read after this sequence number")
    p.add_argument("--limit", type=int, default=100, help="records to read (default 100)")
    p.set_defaults(fn=cmd_stream)

    p = _command(sub, common, "mapping",
                 "event source mappings: create | ls | get | enable | disable | rm",
                 "  firebox mapping create hello-python queue:jobs --batch-size 10\n"
                 "  firebox mapping ls hello-python\n  firebox mapping disable MAPPING-ID")  # fmt: skip
    p.add_argument("action", choices=["create", "ls", "get", "enable", "disable", "rm"],
                   help="what to do")  # fmt: skip
    p.add_argument("function", nargs="?", help="function (create, ls) or mapping id")
    p.add_argument(
        "source", nargs="?", help="queue:NAME, stream:NAME or table:NAME (a table's change stream)"
    )
    p.add_argument("--batch-size", type=int, help="records per invocation")
    p.add_argument("--window", type=float, help="maximum batching window in seconds")
    p.add_argument("--report-failures", action="store_true", help="ReportBatchItemFailures")
    p.add_argument("--starting-position", choices=["TRIM_HORIZON", "LATEST"],
                   help="where a stream mapping starts reading")  # fmt: skip
    p.set_defaults(fn=cmd_mapping)

    p = _command(sub, common, "schedule", "schedules: create | ls | get | rm",
                 '  firebox schedule create every-5-min hello-python "rate(5 minutes)"\n'
                 '  firebox schedule create noon hello-python "cron(0 12 * * ? *)"')  # fmt: skip
    p.add_argument("action", choices=["create", "ls", "get", "rm"], help="what to do")
    p.add_argument("name", nargs="?", help="the schedule")
    p.add_argument("function", nargs="?", help="the function it invokes (create)")
    p.add_argument("expression", nargs="?", help='e.g. "rate(5 minutes)" or "cron(0 12 * * ? *)"')
    p.add_argument("--catch-up", choices=["skip", "once"], default="skip",
                   help="after downtime: skip missed ticks, or run once (default skip)")  # fmt: skip
    p.add_argument("--payload", help="JSON event instead of the scheduled-event payload")
    p.set_defaults(fn=cmd_schedule)

    p = _command(sub, common, "events", "event-invoke config of a function, or event stats",
                 "  firebox events config hello-python --retries 1 --on-failure queue:failed\n"
                 "  firebox events stats")  # fmt: skip
    p.add_argument("action", choices=["config", "stats"], help="what to show or change")
    p.add_argument("function", nargs="?", help="the function (config)")
    p.add_argument("--retries", type=int, help="maximum retry attempts (0-2)")
    p.add_argument("--max-age", type=float, help="maximum event age in seconds")
    p.add_argument("--on-success", help="destination: queue:NAME or function:NAME")
    p.add_argument("--on-failure", help="destination: queue:NAME or function:NAME")
    p.add_argument("--dlq", help="dead-letter queue")
    p.set_defaults(fn=cmd_events)
