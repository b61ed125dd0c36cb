"""The `python` case's heavy-init and boto3 rows: snapshots where init is expensive (bench).

Measured on one `firebox serve` subprocess beside a native Starlette peer (this module's
`app`, run by uvicorn):

- a **heavy-init** function (module-level code that hashes for ~300 ms) against the
  hello function: deploy over HTTP (its snapshot is captured at deploy), the warm
  invocation, and back-to-back invocations at concurrency 1 (how many were cold);
- **boto3**: `lambda.invoke` of `def handler(e, c): return {'n': sum(range(e['n']))}`
  in the default isolation (a fresh instance per invocation), back to back as a client
  does, against `POST /sum` on the Starlette peer doing the same work through urllib3
  (the HTTP library boto3 itself uses), keep-alive both.

The in-process rows of both functions (snapshot size, fresh instance wall and CPU, USS
per ready instance, against instantiate + `load`) come from `bench.snapshot_measure`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bench.measure import Row, ratio
from bench.nodes import HOST, Node, free_port, running, save_compiled, seed_compiled

HEAVY_SOURCE = """\
import hashlib, time
_started = time.monotonic()
TABLE = {}
while time.monotonic() - _started < 0.3:  # ~300 ms of module-level work, as on Lambda
    TABLE[len(TABLE)] = hashlib.sha256(str(len(TABLE)).encode()).hexdigest()

def handler(event, context):
    return {"entries": len(TABLE), "name": event.get("name")}
"""
HELLO_SOURCE = """\
def handler(event, context):
    return {"entries": 0, "name": event.get("name")}
"""
SUM_SOURCE = """\
def handler(event, context):
    return {"n": sum(range(event["n"]))}
"""
SUM_EVENT = {"n": 1000}
SUM_RESULT = {"n": sum(range(1000))}
EVENT = {"name": "bench"}
READY_TIMEOUT_S = 30.0

# (full, quick) counts.
DEPLOYS = (4, 2)
WARM = (200, 40)
B2B = (300, 60)
BOTO3 = (500, 100)


async def sum_endpoint(request: Request) -> Response:
    """`POST /sum`: what the boto3 row's function does, natively."""
    event = await request.json()
    return JSONResponse({"n": sum(range(event["n"]))})


async def lambda_invoke(request: Request) -> Response:
    """`POST /2015-03-31/functions/{name}/invocations`: Lambda's Invoke route served
    natively by Starlette, doing the same work, so that boto3's own cost (signing,
    botocore's request and response pipeline) is on both sides of the boto3 ratio."""
    event = await request.json()
    return JSONResponse(
        {"n": sum(range(event["n"]))}, headers={"X-Amz-Executed-Version": "$LATEST"}
    )


async def healthz(request: Request) -> Response:
    """Answer 200 once the server is up."""
    return Response("ok")


app = Starlette(
    routes=[
        Route("/sum", sum_endpoint, methods=["POST"]),
        Route("/2015-03-31/functions/{name}/invocations", lambda_invoke, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
)


def _manifest(name: str) -> dict[str, Any]:
    return {"name": name, "runtime": "python3.14", "handler": "app.handler", "memory": 128}


def _bundle(source: str, tmp: Path) -> bytes:
    from firebox.compiler.python import bundle_python_function

    folder = Path(tempfile.mkdtemp(dir=tmp))
    (folder / "app.py").write_text(source)
    return bundle_python_function(folder, "app.handler")


def _wait_ready(client: Any, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while client.provisioned(name).get("$LATEST", {}).get("ready", 0) < 1:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} had no ready instance after {READY_TIMEOUT_S}s")
        time.sleep(0.001)


def _start_peer(port: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "uvicorn", "bench.python_heavy:app", "--host", HOST,
           "--port", str(port), "--log-level", "warning"]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def measure(tmp: Path, pick: int) -> tuple[list[Row], dict[str, tuple[float, str]], dict[str, Any]]:
    """Return (rows, ratios, tables and config) of the heavy-init and boto3 measurements."""
    import boto3
    import urllib3
    from botocore.config import Config
    from firebox.sdk.client import find_credentials

    rows = {
        "deploy_hello": Row("deploy_hello", "(8a) deploy over HTTP, hello (snapshot captured)"),
        "deploy_heavy": Row("deploy_heavy", "(8b) deploy over HTTP, 300 ms module-level init"),
        "warm_hello": Row("warm_hello", "(9a) HTTP invoke, warm (ready instance), hello"),
        "warm_heavy": Row("warm_heavy", "(9b) HTTP invoke, warm (ready instance), heavy init"),
        "b2b_heavy": Row("b2b_heavy", "(9c) HTTP invoke back to back (c=1), heavy init"),
        "boto3": Row("boto3", "(10a) boto3 lambda.invoke back to back, sum(range(n)), fresh"),
        "native": Row("native", "(10b) urllib3 POST /sum on bare Starlette, same work"),
        "native_boto3": Row(
            "native_boto3", "(10c) boto3 lambda.invoke of Lambda's Invoke route on bare Starlette"
        ),
    }
    data_dir = tmp / "heavy-data"
    data_dir.mkdir()
    seed_compiled(data_dir)
    clock = time.perf_counter_ns
    counts = {"warm_heavy": [0, 0], "b2b_heavy": [0, 0], "boto3": [0, 0]}
    port = free_port()
    with ExitStack() as stack:
        node = stack.enter_context(running(Node(data_dir, tmp / "heavy-firebox.log")))
        peer = _start_peer(port, tmp / "heavy-peer.log")
        stack.callback(peer.wait, 10)
        stack.callback(peer.terminate)
        node.wait_healthy()
        client = stack.enter_context(node.client())
        codes = {"hello": _bundle(HELLO_SOURCE, tmp), "heavy": _bundle(HEAVY_SOURCE, tmp)}
        client.deploy(_manifest("warm-up"), codes["hello"])  # the interpreter's one-time set-up
        for i in range(DEPLOYS[pick]):
            for kind, code in codes.items():
                t0 = clock()
                client.deploy(_manifest(f"{kind}-{i}"), code)
                rows[f"deploy_{kind}"].samples_ns.append(clock() - t0)
        for kind in ("hello", "heavy"):
            name = f"{kind}-0"
            for i in range(WARM[pick]):
                _wait_ready(client, name)
                t0 = clock()
                result = client.invoke(name, EVENT)
                elapsed = clock() - t0
                if result.error or result.payload.get("name") != "bench":
                    raise AssertionError(f"{name}: {result.error or result.payload}")
                if kind == "heavy" and result.payload["entries"] < 100:
                    raise AssertionError(f"{name}: its module-level table is missing")
                if i >= WARM[pick] // 10:  # the first tenth warms up
                    rows[f"warm_{kind}"].samples_ns.append(elapsed)
                    if kind == "heavy":
                        counts["warm_heavy"][0 if result.warm else 1] += 1
        for _ in range(B2B[pick]):
            t0 = clock()
            result = client.invoke("heavy-0", EVENT)
            rows["b2b_heavy"].samples_ns.append(clock() - t0)
            counts["b2b_heavy"][0 if result.warm else 1] += 1

        # boto3 against the native endpoint, interleaved in halves.
        client.deploy(_manifest("sum"), _bundle(SUM_SOURCE, tmp))
        creds = find_credentials(data_dir)
        lam = boto3.client(
            "lambda", endpoint_url=node.url, region_name="us-east-1",
            aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
            config=Config(retries={"max_attempts": 0}),
        )  # fmt: skip
        # The same client, the same call, against Lambda's route served natively.
        native_lam = boto3.client(
            "lambda", endpoint_url=f"http://{HOST}:{port}", region_name="us-east-1",
            aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
            config=Config(retries={"max_attempts": 0}),
        )  # fmt: skip
        http = urllib3.PoolManager()
        body = json.dumps(SUM_EVENT).encode()
        peer_url = f"http://{HOST}:{port}/sum"
        deadline = time.monotonic() + 30
        while True:
            try:
                if http.request("GET", f"http://{HOST}:{port}/healthz").status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the Starlette peer did not start")
            time.sleep(0.05)
        _wait_ready(client, "sum")

        def boto3_once(record: bool) -> None:
            t0 = clock()
            reply = lam.invoke(FunctionName="sum", Payload=body)
            payload = json.loads(reply["Payload"].read())
            elapsed = clock() - t0
            if payload != SUM_RESULT or reply.get("FunctionError"):
                raise AssertionError(f"sum answered {payload!r}")
            if record:
                rows["boto3"].samples_ns.append(elapsed)

        def native_once(record: bool) -> None:
            t0 = clock()
            reply = http.request("POST", peer_url, body=body,
                                 headers={"content-type": "application/json"})  # fmt: skip
            elapsed = clock() - t0
            if json.loads(reply.data) != SUM_RESULT:
                raise AssertionError(f"/sum answered {reply.data!r}")
            if record:
                rows["native"].samples_ns.append(elapsed)

        def native_boto3_once(record: bool) -> None:
            t0 = clock()
            reply = native_lam.invoke(FunctionName="sum", Payload=body)
            payload = json.loads(reply["Payload"].read())
            elapsed = clock() - t0
            if payload != SUM_RESULT:
                raise AssertionError(f"the native Invoke route answered {payload!r}")
            if record:
                rows["native_boto3"].samples_ns.append(elapsed)

        sides = (boto3_once, native_once, native_boto3_once)
        for fn in sides:
            for _ in range(max(10, BOTO3[pick] // 10)):
                fn(False)
        since = time.time()
        for _ in range(2):
            for fn in sides:
                for _ in range(BOTO3[pick] // 2):
                    fn(True)
        counts["boto3"] = _cold_counts(client, "sum", since, len(rows["boto3"].samples_ns))
    save_compiled(data_dir)

    med = {key: row.summary()["median_us"] for key, row in rows.items()}
    ratios = {
        "boto3 warm invoke / native Starlette through boto3": (
            ratio(med["boto3"], med["native_boto3"]), "median (10a) / (10c); target <= 1.5"
        ),
        "boto3 warm invoke / native Starlette through urllib3": (
            ratio(med["boto3"], med["native"]), "median (10a) / (10b): boto3's own cost on one side"
        ),
        "warm invoke heavy/hello": (
            ratio(med["warm_heavy"], med["warm_hello"]), "median (9b) / (9a); target <= 1.5"
        ),
        "deploy heavy ms": (med["deploy_heavy"] / 1000, "median (8b) in ms; target < 2000"),
        "deploy heavy/hello": (ratio(med["deploy_heavy"], med["deploy_hello"]), "(8b) / (8a)"),
    }  # fmt: skip
    table = [
        {"row": rows[key].label, "warm": warm, "cold": cold,
         "cold %": 100.0 * cold / (warm + cold) if warm + cold else 0.0}
        for key, (warm, cold) in counts.items()
    ]  # fmt: skip
    return list(rows.values()), ratios, {"table": table}


def _cold_counts(client: Any, name: str, since: float, expected: int) -> list[int]:
    """Return [warm, cold] of a function's invocations since `since`, from its usage
    summary (the node writes usage records in batches: wait until all are there)."""
    deadline = time.monotonic() + 10
    while True:
        summary = client.usage(name, since=since)
        entry = summary.get(name) or summary.get("functions", {}).get(name) or {}
        if entry.get("invocations", 0) >= expected or time.monotonic() > deadline:
            cold = int(entry.get("cold_starts", 0))
            return [int(entry.get("invocations", 0)) - cold, cold]
        time.sleep(0.2)
