"""Case `http`: HTTP end to end, `firebox serve` beside a bare Starlette endpoint (bench).

Both servers run as subprocesses on 127.0.0.1 at the same time and are driven in turns,
phase by phase, with the same payload by one async load generator (httpx), so a noisy
moment on the machine lands on both alike. firebox serves `examples/echo-wat` through
its HTTP trigger `POST /echo`; the bare peer does the same wrapping natively.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.cases import CaseResult
from bench.measure import Row, ratio, summarize_us

TITLE = "HTTP end to end: firebox serve vs a bare Starlette endpoint"

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "echo-wat"
HOST = "127.0.0.1"
PAYLOAD = json.dumps(
    {
        "id": "bench-0001",
        "user": {"name": "Ada Lovelace", "id": 1815},
        "items": [1, 2, 3, 5, 8],
        "note": "hello, firebox",
    },
    separators=(",", ":"),
).encode()
HEADERS = {"content-type": "application/json"}
START_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 10.0
CONCURRENCY = (1, 8, 64)


@dataclass(frozen=True)
class Plan:
    """How much load each phase puts on each server."""

    latency_requests: int  # timed requests at concurrency 1
    warmup_requests: int  # untimed requests before every phase
    duration_s: float  # length of each throughput phase
    max_requests: int  # a throughput phase also stops after this many


FULL = Plan(latency_requests=2000, warmup_requests=200, duration_s=5.0, max_requests=200_000)
QUICK = Plan(latency_requests=200, warmup_requests=30, duration_s=1.5, max_requests=20_000)


@dataclass
class Server:
    """One peer: its command, its URL and its process."""

    name: str
    cmd: list[str]
    url: str
    log: Path
    check: Callable[[Any], bool]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Spawn the server in its own process group (so its workers can be stopped with it)."""
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=REPO,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """Stop the server and every process it started (its process group)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def tail(self) -> str:
        """Return the end of the server's output, for error messages."""
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _firebox_ok(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and body.get("by") == "wat"
        and body.get("wrapped", {}).get("body") == PAYLOAD.decode()
    )


def _bare_ok(body: Any) -> bool:
    return isinstance(body, dict) and body == {"wrapped": json.loads(PAYLOAD), "by": "native"}


async def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            assert server.proc is not None
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.name} exited at start:\n{server.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                response = await client.post(server.url, content=PAYLOAD, headers=HEADERS)
                if response.status_code == 200 and server.check(response.json()):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{server.name} not ready in {START_TIMEOUT_S}s:\n{server.tail()}"
                )
            await asyncio.sleep(0.2)


@dataclass
class Phase:
    """What one load phase saw."""

    latencies_ns: list[int]
    elapsed_s: float
    errors: int

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return len(self.latencies_ns) / self.elapsed_s if self.elapsed_s else 0.0


async def drive(
    server: Server, concurrency: int, *, requests: int, duration_s: float | None
) -> Phase:
    """Send `requests` (or until `duration_s`) with `concurrency` requests in flight.

    Every response is checked (status 200 and the wrapped payload); failures are counted
    as errors and left out of the latencies.
    """
    # One client (one keep-alive connection) per in-flight request: httpx's shared pool
    # slows down sharply with many concurrent requests on one client (measured here:
    # ~90 requests/s at 64 in flight against ~450 at 8), which would measure httpx.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S) for _ in range(concurrency)
    ]
    latencies: list[int] = []
    errors = 0
    sent = 0
    clock = time.perf_counter_ns
    started = time.monotonic()
    end = started + duration_s if duration_s is not None else None

    async def loop(client: httpx.AsyncClient) -> None:
        nonlocal errors, sent
        while sent < requests and (end is None or time.monotonic() < end):
            sent += 1
            t0 = clock()
            try:
                response = await client.post(server.url, content=PAYLOAD, headers=HEADERS)
                good = response.status_code == 200 and server.check(response.json())
            except (httpx.HTTPError, ValueError):
                good = False
            t1 = clock()
            if good:
                latencies.append(t1 - t0)
            else:
                errors += 1

    try:
        await asyncio.gather(*(loop(client) for client in clients))
        elapsed = time.monotonic() - started
    finally:
        for client in clients:
            await client.aclose()
    return Phase(latencies, elapsed, errors)


def _wrk(server: Server, concurrency: int, duration_s: float, tmp: Path) -> dict[str, Any]:
    """Run wrk against the server; return its requests/s and latency figures as it prints them."""
    script = tmp / "post.lua"
    body = PAYLOAD.decode().replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    wrk = shutil.which("wrk")
    assert wrk is not None
    cmd = [wrk, "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", "--latency"]
    proc = subprocess.run(
        [*cmd, "-s", str(script), server.url],
        capture_output=True,
        text=True,
        timeout=duration_s + 30,
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    p50 = re.search(r"50%\s+(\S+)", proc.stdout)
    p99 = re.search(r"99%\s+(\S+)", proc.stdout)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", proc.stdout)
    return {
        "server": server.name,
        "concurrency": concurrency,
        "requests_per_s": float(found.group(1)) if found else None,
        "p50": p50.group(1) if p50 else None,
        "p99": p99.group(1) if p99 else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


@contextlib.contextmanager
def running(servers: list[Server]) -> Iterator[None]:
    """Start every server, and stop them all however the block ends."""
    try:
        for server in servers:
            server.start()
        yield
    finally:
        for server in servers:
            server.stop()


def run(quick: bool) -> CaseResult:
    """Measure both servers side by side and return latency rows, throughput and ratios."""
    plan = QUICK if quick else FULL
    with tempfile.TemporaryDirectory(prefix="firebox-bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        fb_port, bare_port = free_port(), free_port()
        firebox_bin = str(Path(sys.executable).with_name("firebox"))
        firebox_cmd = (
            [firebox_bin]
            if Path(firebox_bin).exists()
            else [sys.executable, "-m", "firebox.sdk.cli"]
        )
        servers = [
            Server(
                "firebox",
                [
                    *firebox_cmd,
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(fb_port),
                    "--data-dir",
                    str(data_dir),
                    "--deploy",
                    str(EXAMPLE),
                ],
                f"http://{HOST}:{fb_port}/echo",
                tmp / "firebox.log",
                _firebox_ok,
            ),
            Server(
                "bare",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.peers.bare_starlette:app",
                    "--host",
                    HOST,
                    "--port",
                    str(bare_port),
                    "--log-level",
                    "warning",
                ],
                f"http://{HOST}:{bare_port}/echo",
                tmp / "bare.log",
                _bare_ok,
            ),
        ]
        with running(servers):
            result = asyncio.run(_measure(servers, plan))
            if shutil.which("wrk"):
                result.tables["wrk (throughput, requests/s)"] = [
                    _wrk(server, c, plan.duration_s, tmp) for c in CONCURRENCY for server in servers
                ]
    result.config.update(
        {
            "payload_bytes": len(PAYLOAD),
            "payload": PAYLOAD.decode(),
            "plan": plan.__dict__,
            "concurrency": list(CONCURRENCY),
            "load_generator": "httpx.AsyncClient in the bench process, keep-alive,"
            " one client per phase; every response checked",
            "order": "servers run at the same time; each phase runs firebox then bare",
            "wrk": shutil.which("wrk") or "not installed",
        }
    )
    result.peers = {
        "firebox": {
            "command": "firebox serve --host 127.0.0.1 --port P --data-dir TMP --deploy"
            " examples/echo-wat",
            "route": "POST /echo (HTTP trigger, no auth)",
            "work": "build the Lambda function-URL event, dispatch to a worker process,"
            ' guest wraps the event as {"wrapped": <event>, "by": "wat"}',
            "workers": os.environ.get("FIREBOX_WORKERS", f"{os.cpu_count()} (cpu count)"),
            "uvicorn": "uvicorn.run(app, log_level='warning'), default loop and HTTP parser",
        },
        "bare": {
            "command": "python -m uvicorn bench.peers.bare_starlette:app --host 127.0.0.1"
            " --port P --log-level warning",
            "route": "POST /echo",
            "work": 'parse the JSON body, answer {"wrapped": <body>, "by": "native"}',
            "uvicorn": "one process, default loop and HTTP parser",
        },
    }
    return result


async def _measure(servers: list[Server], plan: Plan) -> CaseResult:
    for server in servers:
        await _wait_ready(server)
    rows = {s.name: Row(s.name, f"{s.name}: one request at a time (c=1)") for s in servers}
    throughput: list[dict[str, Any]] = []
    per_c: dict[tuple[str, int], float] = {}
    for server in servers:
        await drive(server, 1, requests=plan.warmup_requests, duration_s=None)
        rows[server.name].warmup = plan.warmup_requests
    # Latency at c=1 in interleaved halves, so drift lands on both servers.
    for _ in range(2):
        for server in servers:
            phase = await drive(server, 1, requests=plan.latency_requests // 2, duration_s=None)
            if phase.errors:
                raise RuntimeError(f"{server.name}: {phase.errors} failed requests")
            rows[server.name].samples_ns.extend(phase.latencies_ns)
    for concurrency in CONCURRENCY:
        for server in servers:
            # Every connection of the phase is opened and used during the warm-up.
            warmup = max(plan.warmup_requests, 5 * concurrency)
            await drive(server, concurrency, requests=warmup, duration_s=None)
            phase = await drive(
                server, concurrency, requests=plan.max_requests, duration_s=plan.duration_s
            )
            summary = summarize_us(phase.latencies_ns)
            per_c[(server.name, concurrency)] = phase.throughput
            throughput.append(
                {
                    "server": server.name,
                    "concurrency": concurrency,
                    "requests_per_s": phase.throughput,
                    "median_us": summary["median_us"],
                    "p99_us": summary["p99_us"],
                    "requests": len(phase.latencies_ns),
                    "errors": phase.errors,
                    "seconds": phase.elapsed_s,
                }
            )
    fb, bare = rows["firebox"].summary(), rows["bare"].summary()
    ratios: dict[str, tuple[float, str]] = {
        "latency firebox/bare (c=1)": (
            ratio(fb["median_us"], bare["median_us"]),
            "median latency at c=1; 1.0 would be the floor",
        ),
        "p99 firebox/bare (c=1)": (ratio(fb["p99_us"], bare["p99_us"]), "p99 latency at c=1"),
    }
    for concurrency in CONCURRENCY:
        ratios[f"throughput firebox/bare (c={concurrency})"] = (
            ratio(per_c[("firebox", concurrency)], per_c[("bare", concurrency)]),
            "requests/s; 1.0 would be the floor",
        )
    return CaseResult(
        name="http",
        title=TITLE,
        description=(
            "Latency rows are single requests at concurrency 1 (median/p99 over"
            f" {plan.latency_requests} per server); the throughput table holds each"
            f" concurrency's requests/s over {plan.duration_s:g} s. The load generator shares"
            " the machine with the servers, so at high concurrency it is part of what is"
            " measured, equally for both."
        ),
        rows=list(rows.values()),
        ratios=ratios,
        tables={"throughput (httpx load generator)": throughput},
    )
