"""Case `glue`: boto3 glue inside a function against the same calls by plain boto3 (bench).

Issue 16's handler, measured: a Python function using unchanged `boto3` reads a ~1 KB
object (`s3.get_object`), writes a transformed copy (`s3.put_object`) and sends a message
(`sqs.send_message`), through its execution role and the grants of one bucket and one
queue. Beside it, in the same run and interleaved in rounds, this process makes the same
three calls with plain boto3 against the same node's S3 and SQS endpoints, and invokes an
empty handler of the same bundle, so the invocation's own cost can be taken out.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firebox.sdk.client import Client, find_credentials

from bench.cases import CaseResult
from bench.measure import Row, interleave, ratio
from bench.nodes import Node, persistent_compiled_dir, running, save_compiled, seed_compiled

TITLE = "boto3 glue in a function (S3 get + put, SQS send) against plain boto3"

BUCKET = "bench-glue"
QUEUE = "bench-glue"
INPUT_KEY = "in/record.txt"
# ~1 KB of text, as a small JSON record or a log line batch would be.
INPUT = b"".join(b"line %04d: the quick brown fox jumps over the lazy dog\n" % i for i in range(20))
OUTPUT = INPUT.upper()
REGION = "us-east-1"
READY_TIMEOUT_S = 10.0

# The handler as a Lambda user writes it: clients at module level (so in the snapshot),
# names from the environment. `calls_ns` is each of the three calls timed inside the guest.
SOURCE = """\
import os
import time

import boto3

s3 = boto3.client("s3")
sqs = boto3.client("sqs")
BUCKET = os.environ["BUCKET"]
QUEUE_URL = os.environ["QUEUE_URL"]


def handler(event, context):
    t0 = time.perf_counter_ns()
    body = s3.get_object(Bucket=BUCKET, Key=event["key"])["Body"].read()
    t1 = time.perf_counter_ns()
    out_key = event["out"]
    put = s3.put_object(Bucket=BUCKET, Key=out_key, Body=body.upper(), ContentType="text/plain")
    t2 = time.perf_counter_ns()
    sent = sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=out_key)
    t3 = time.perf_counter_ns()
    return {"bytes": len(body), "etag": put["ETag"], "message_id": sent["MessageId"],
            "calls_ns": [t1 - t0, t2 - t1, t3 - t2]}


def empty(event, context):
    return {"bytes": 0, "out": event["out"]}
"""

# (full, quick) counts: timed iterations per row, the warm-up per row, rounds.
ITERATIONS = (300, 30)
WARMUP = (20, 5)
ROUNDS = (5, 2)

LABELS = {
    "function": "(a) invoke the glue function, fresh isolation (ready instance waited for)",
    "function_reuse": "(a') invoke the glue function, isolation reuse (one warm instance)",
    "driver": "(b) plain boto3 in this process: the same three calls",
    "empty": "(c) invoke an empty handler of the same bundle, fresh isolation",
    "empty_reuse": "(c') invoke the empty handler, isolation reuse",
    "inside": "(d) the three calls timed inside the handler, fresh isolation",
    "inside_reuse": "(d') the three calls timed inside the handler, isolation reuse",
}
NOTES = {
    "function": "Client.invoke (native API, msgpack, keep-alive) of the handler: get_object ~1 KB,"
    " put_object of its upper-cased copy, send_message; before each call the harness waits"
    " (outside the timing) for a ready instance; asserted warm. The default isolation: every"
    " invocation is a fresh instance from the snapshot, whose boto3 clients fetch the"
    " role's credentials on their first call",
    "function_reuse": "as (a), deployed with isolation = 'reuse' (Lambda's warm environment:"
    " credentials and connections kept between invocations)",
    "driver": "boto3.client('s3'/'sqs') made once with the admin key and the node's URL:"
    " get_object + put_object + send_message, the same bucket, queue and sizes",
    "empty": "Client.invoke of `empty` (same bundle and grants, returns at once): the"
    " invocation's own cost in (a)",
    "empty_reuse": "as (c), isolation = 'reuse': the invocation's own cost in (a')",
    "inside": "time.perf_counter_ns around the three calls in the handler of (a), as the"
    " guest's clock sees it",
    "inside_reuse": "as (d), in the handler of (a')",
}
SPLIT_ROWS = ("inside", "inside_reuse", "driver")
CALLS = ("get_object", "put_object", "send_message")
FUNCTIONS = {
    "function": ("bench-glue", "app.handler", "fresh"),
    "function_reuse": ("bench-glue-reuse", "app.handler", "reuse"),
    "empty": ("bench-glue-empty", "app.empty", "fresh"),
    "empty_reuse": ("bench-glue-empty-reuse", "app.empty", "reuse"),
}


def _bundle(tmp: Path) -> bytes:
    from firebox.compiler.python import bundle_python_function

    folder = Path(tempfile.mkdtemp(dir=tmp))
    (folder / "app.py").write_text(SOURCE)
    return bundle_python_function(folder, "app.handler")


def _manifest(name: str, handler: str, isolation: str, queue_url: str) -> dict[str, Any]:
    return {
        "name": name,
        "runtime": "python3.14",
        "handler": handler,
        "isolation": isolation,
        "timeout": 20,
        "environment": {"BUCKET": BUCKET, "QUEUE_URL": queue_url},
        "capabilities": {"buckets": {BUCKET: "readwrite"}, "queues": [QUEUE]},
    }


def _wait_ready(client: Client, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while client.provisioned(name).get("$LATEST", {}).get("ready", 0) < 1:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} had no ready instance after {READY_TIMEOUT_S}s")
        time.sleep(0.001)


def _aws(node: Node, service: str) -> Any:
    import boto3
    from botocore.config import Config

    creds = find_credentials(node.data_dir)
    return boto3.client(
        service, endpoint_url=node.url, region_name=REGION,
        aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
    )  # fmt: skip


def run(quick: bool) -> CaseResult:
    """Measure the glue function, the empty handler and plain boto3, interleaved."""
    pick = 1 if quick else 0
    if os.environ.get("FIREBOX_BENCH_TINY"):
        iterations, warmup, rounds = 6, 2, 2
    else:
        iterations, warmup, rounds = ITERATIONS[pick], WARMUP[pick], ROUNDS[pick]
    rows = {key: Row(key, LABELS[key], notes=NOTES[key]) for key in LABELS}
    extra: dict[str, Any] = {}
    clock = time.perf_counter_ns
    with tempfile.TemporaryDirectory(prefix="firebox-bench-glue-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        data_dir.mkdir()
        extra["compiled_seeded_files"] = seed_compiled(data_dir)
        with running(Node(data_dir, tmp / "firebox.log")) as node:
            node.wait_healthy()
            s3, sqs = _aws(node, "s3"), _aws(node, "sqs")
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key=INPUT_KEY, Body=INPUT, ContentType="text/plain")
            queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
            code = _bundle(tmp)
            with node.client() as client:
                deploys = extra["deploy_s"] = {}
                for name, handler, isolation in FUNCTIONS.values():
                    t0 = clock()
                    client.deploy(_manifest(name, handler, isolation, queue_url), code)
                    deploys[name] = round((clock() - t0) / 1e9, 2)
                table = _measure(client, s3, sqs, queue_url, rows, iterations, warmup, rounds)
                # What the function wrote is what the driver wrote (checked once, untimed).
                for out in ("out/function.txt", "out/function_reuse.txt", "out/driver.txt"):
                    got = s3.get_object(Bucket=BUCKET, Key=out)["Body"].read()
                    if got != OUTPUT:
                        raise AssertionError(f"{out} holds {got[:60]!r}, not the transformed copy")
        save_compiled(data_dir)

    med = {key: row.summary()["median_us"] for key, row in rows.items()}
    p99 = {key: row.summary()["p99_us"] for key, row in rows.items()}
    ratios: dict[str, tuple[float, str]] = {
        "function/boto3": (ratio(med["function"], med["driver"]), "median (a) / (b)"),
        "function/boto3 p99": (ratio(p99["function"], p99["driver"]), "p99 (a) / (b)"),
        "function reuse/boto3": (
            ratio(med["function_reuse"], med["driver"]), "median (a') / (b)"
        ),
        "function reuse/boto3 p99": (
            ratio(p99["function_reuse"], p99["driver"]), "p99 (a') / (b)"
        ),
        "calls in function/boto3": (
            ratio(med["function"] - med["empty"], med["driver"]),
            "(median (a) - median (c)) / median (b): the three calls' share of an invocation"
            " against the same calls from this process",
        ),
        "calls in function reuse/boto3": (
            ratio(med["function_reuse"] - med["empty_reuse"], med["driver"]),
            "(median (a') - median (c')) / median (b)",
        ),
        "timed inside/boto3": (ratio(med["inside"], med["driver"]), "median (d) / (b)"),
        "timed inside reuse/boto3": (
            ratio(med["inside_reuse"], med["driver"]), "median (d') / (b)"
        ),
        "calls share of invocation": (
            ratio(med["function"] - med["empty"], med["function"]),
            "(median (a) - median (c)) / median (a)",
        ),
    }  # fmt: skip
    return CaseResult(
        name="glue",
        title=TITLE,
        description=(
            "Issue 16's glue handler (boto3 get_object of ~1 KB, put_object of a transformed"
            " copy, send_message; granted one bucket and one queue) invoked warm on one"
            " `firebox serve` subprocess, against the same three calls made by plain boto3"
            " from this process against the node's S3 and SQS endpoints, and an empty handler"
            " of the same bundle; fresh and reuse isolation; interleaved in rounds. Every"
            " answer and the written objects are checked."
        ),
        rows=list(rows.values()),
        ratios=ratios,
        tables={"each call (median ms)": table},
        config={
            "object_bytes": len(INPUT),
            "iterations": iterations,
            "warmup": warmup,
            "rounds": rounds,
            "workers": os.environ.get("FIREBOX_WORKERS", f"{os.cpu_count()} (cpu count)"),
            "persistent_compiled_cache": str(persistent_compiled_dir()),
            **extra,
        },
        peers={
            "firebox serve": {
                "command": "firebox serve --host 127.0.0.1 --port P --data-dir D",
                "client": "firebox.sdk.client.Client (httpx, msgpack) for invocations",
                "functions": {
                    name: f"{handler}, isolation {iso}, provisioned 1"
                    for name, handler, iso in FUNCTIONS.values()
                },
            },
            "plain boto3": {
                "clients": "boto3.client('s3') and boto3.client('sqs') in the bench process,"
                " endpoint_url = the node, the admin key, path-style addressing",
            },
        },
    )


def _measure(
    client: Client,
    s3: Any,
    sqs: Any,
    queue_url: str,
    rows: dict[str, Row],
    iterations: int,
    warmup: int,
    rounds: int,
) -> list[dict[str, Any]]:
    """Run every row interleaved in `rounds`; return the per-call medians table."""
    clock = time.perf_counter_ns
    split: dict[str, list[list[int]]] = {k: [[], [], []] for k in SPLIT_ROWS}

    def invoke(key: str) -> Callable[[Row | None], None]:
        name, _, isolation = FUNCTIONS[key]
        out = f"out/{key}.txt"
        inside = rows[key.replace("function", "inside")] if key.startswith("function") else None

        def once(row: Row | None) -> None:
            if isolation == "fresh":
                _wait_ready(client, name)
            t0 = clock()
            result = client.invoke(name, {"key": INPUT_KEY, "out": out})
            elapsed = clock() - t0
            if result.error:
                raise AssertionError(f"{name} failed: {result.error}")
            payload = result.payload
            if key.startswith("empty"):
                if payload != {"bytes": 0, "out": out}:
                    raise AssertionError(f"{name} answered {payload!r}")
            elif payload.get("bytes") != len(INPUT) or not payload.get("message_id"):
                raise AssertionError(f"{name} answered {payload!r}")
            if row is None:
                return
            if not result.warm:
                raise AssertionError(f"{name}: a timed invocation was a cold start")
            row.samples_ns.append(elapsed)
            if inside is not None:
                calls = [int(ns) for ns in payload["calls_ns"]]
                inside.samples_ns.append(sum(calls))
                for i, ns in enumerate(calls):
                    split[inside.key][i].append(ns)

        return once

    def driver(row: Row | None) -> None:
        t0 = clock()
        body = s3.get_object(Bucket=BUCKET, Key=INPUT_KEY)["Body"].read()
        t1 = clock()
        s3.put_object(
            Bucket=BUCKET, Key="out/driver.txt", Body=body.upper(), ContentType="text/plain"
        )
        t2 = clock()
        sent = sqs.send_message(QueueUrl=queue_url, MessageBody="out/driver.txt")
        t3 = clock()
        if len(body) != len(INPUT) or not sent.get("MessageId"):
            raise AssertionError(f"plain boto3 read {len(body)} bytes, sent {sent!r}")
        if row is not None:
            row.samples_ns.append(t3 - t0)
            for i, ns in enumerate((t1 - t0, t2 - t1, t3 - t2)):
                split["driver"][i].append(ns)

    once: dict[str, Callable[[Row | None], None]] = {
        "function": invoke("function"),
        "function_reuse": invoke("function_reuse"),
        "driver": driver,
        "empty": invoke("empty"),
        "empty_reuse": invoke("empty_reuse"),
    }
    for key, fn in once.items():
        for _ in range(warmup):
            fn(None)
        rows[key].warmup = warmup
    rows["inside"].warmup = rows["inside_reuse"].warmup = warmup

    def chunk(fn: Callable[[Row | None], None]) -> Callable[[Row, int], None]:
        def run_chunk(row: Row, n: int) -> None:
            for _ in range(n):
                fn(row)
            # Keep the queue's depth the same for every round (untimed).
            sqs.purge_queue(QueueUrl=queue_url)

        return run_chunk

    interleave(
        [(rows[key], chunk(fn)) for key, fn in once.items()],
        lambda row: iterations,
        rounds,
    )
    return [
        {"calls": LABELS[key], **{f"{call} median ms": round(_median_ms(samples), 2)
                                  for call, samples in zip(CALLS, split[key], strict=True)}}
        for key in SPLIT_ROWS
    ]  # fmt: skip


def _median_ms(samples: list[int]) -> float:
    return statistics.median(samples) / 1e6 if samples else math.nan
