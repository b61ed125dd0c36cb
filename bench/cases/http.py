"""Case `http`: HTTP end to end, `firebox serve` beside its peers (bench).

Every server runs as a subprocess on 127.0.0.1 at the same time and they are driven in
turns, phase by phase, with the same payload by one async load generator (httpx), so a
noisy moment on the machine lands on all alike. Every target does the same work (wrap
the JSON body): firebox serves `examples/echo-wat` (`POST /echo`) and a Python handler
(`POST /echo-py`) through HTTP triggers; the peers are a bare Starlette endpoint (the
front end's floor), a process-per-invocation server (`python handler.py` per request,
the container-style peer) and `wasmtime serve` with a JS wasi:http component (if it can
be installed and built here).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import ssl
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
from bench.nodes import HOST, free_port, save_compiled, seed_compiled

TITLE = "HTTP end to end: firebox serve vs bare Starlette, process-per-request, wasmtime serve"

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "echo-wat"
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
# A node without the compiled Python interpreter compiles it (~20 s, more when loaded).
PYTHON_START_TIMEOUT_S = 300.0
REQUEST_TIMEOUT_S = 30.0
CONCURRENCY = (1, 8, 64)

PYTHON_HANDLER = """\
def handler(event, context):
    return {"wrapped": event, "by": "python"}
"""
PYTHON_MANIFEST = """\
name = "echo-python"
runtime = "python3.14"
handler = "app.handler"
memory = 128
timeout = 10.0

[[triggers]]
type = "http"
route = "/echo-py"
methods = ["POST"]
export = "handle"
"""

# The same echo after ~300 ms of module-level work (its snapshot holds the result).
PYTHON_HEAVY_HANDLER = """\
import hashlib, time
_started = time.monotonic()
TABLE = {}
while time.monotonic() - _started < 0.3:
    TABLE[len(TABLE)] = hashlib.sha256(str(len(TABLE)).encode()).hexdigest()

def handler(event, context):
    return {"wrapped": event, "by": "python"}
"""
PYTHON_HEAVY_MANIFEST = PYTHON_MANIFEST.replace('"echo-python"', '"echo-python-heavy"').replace(
    '"/echo-py"', '"/echo-py-heavy"'
)


@dataclass(frozen=True)
class Plan:
    """How much load each phase puts on each target."""

    latency_requests: int  # timed requests at concurrency 1
    latency_max_s: float  # ... or until this long (the process peer is slow)
    warmup_requests: int  # untimed requests before every phase
    warmup_max_s: float  # ... or until this long
    duration_s: float  # length of each throughput phase
    max_requests: int  # a throughput phase also stops after this many
    wrk: bool  # also run wrk (if installed)
    build_peers: bool  # install/build the wasmtime serve peer if it is missing


FULL = Plan(2000, 8.0, 200, 3.0, 4.0, 200_000, True, True)
QUICK = Plan(200, 2.0, 30, 1.0, 1.0, 20_000, False, False)
# `python -m bench --tiny` (the harness's own test): just enough to fill every table.
TINY = Plan(20, 0.5, 5, 0.3, 0.3, 2_000, False, False)


@dataclass
class Server:
    """One server process: its command, its log and its process."""

    name: str
    cmd: list[str]
    log: Path
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
        # Workers left behind in the group (a node's restarted workers) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def tail(self) -> str:
        """Return the end of the server's output, for error messages."""
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""


@dataclass
class Target:
    """One URL to load (a server may have several), with the check of its answers."""

    name: str
    url: str
    check: Callable[[Any], bool]
    server: Server
    start_timeout_s: float = START_TIMEOUT_S


def _firebox_ok(by: str) -> Callable[[Any], bool]:
    def check(body: Any) -> bool:
        return (
            isinstance(body, dict)
            and body.get("by") == by
            and isinstance(body.get("wrapped"), dict)
            and body["wrapped"].get("body") == PAYLOAD.decode()
        )

    return check


def _wrapped_ok(by: str) -> Callable[[Any], bool]:
    expected = {"wrapped": json.loads(PAYLOAD), "by": by}

    def check(body: Any) -> bool:
        return isinstance(body, dict) and body == expected

    return check


async def _wait_ready(target: Target) -> None:
    deadline = time.monotonic() + target.start_timeout_s
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
        while True:
            proc = target.server.proc
            assert proc is not None
            if proc.poll() is not None:
                raise RuntimeError(f"{target.name} exited at start:\n{target.server.tail()}")
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = await client.post(target.url, content=PAYLOAD, headers=HEADERS)
                if response.status_code == 200 and target.check(response.json()):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{target.name} not ready in {target.start_timeout_s}s:\n{target.server.tail()}"
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


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


async def drive(
    target: Target, concurrency: int, *, requests: int, duration_s: float | None
) -> Phase:
    """Send `requests` (or until `duration_s`) with `concurrency` requests in flight.

    Every response is checked (status 200 and the wrapped payload); failures are counted
    as errors and left out of the latencies.
    """
    # One client (one keep-alive connection) per in-flight request: httpx's shared pool
    # slows down sharply with many concurrent requests on one client (measured here:
    # ~90 requests/s at 64 in flight against ~450 at 8), which would measure httpx.
    # The URLs are plain http, but every httpx client builds an SSL context (~20-40 ms
    # here) unless given one: share one, or 64 clients take seconds to make.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S, verify=_ssl_context())
        for _ in range(concurrency)
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
                response = await client.post(target.url, content=PAYLOAD, headers=HEADERS)
                good = response.status_code == 200 and target.check(response.json())
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


def _wrk(target: Target, concurrency: int, duration_s: float, tmp: Path) -> dict[str, Any]:
    """Run wrk against a target; return its requests/s and latency figures as it prints them."""
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
        [*cmd, "-s", str(script), target.url],
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
    )
    found = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    # The latency distribution lines ("     50%    2.12ms"), not the "+/- Stdev" column.
    p50 = re.search(r"^\s*50%\s+(\S+)", proc.stdout, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+(\S+)", proc.stdout, re.MULTILINE)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", proc.stdout)
    errors = re.search(r"Socket errors:.*", proc.stdout)
    return {
        "server": target.name,
        "concurrency": concurrency,
        "requests_per_s": float(found.group(1)) if found else None,
        "p50": p50.group(1) if p50 else None,
        "p99": p99.group(1) if p99 else None,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
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


def _firebox_cmd() -> list[str]:
    firebox_bin = str(Path(sys.executable).with_name("firebox"))
    return (
        [firebox_bin] if Path(firebox_bin).exists() else [sys.executable, "-m", "firebox.sdk.cli"]
    )


def _uvicorn(app: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def _wasmtime_peer(plan: Plan) -> tuple[list[str], int, dict[str, Any]] | str:
    """The wasmtime serve command, its port and its configuration, or why it cannot run."""
    from bench.peers import wasmtime_serve

    try:
        binary = wasmtime_serve.find_wasmtime(install=plan.build_peers)
        cwasm, info = wasmtime_serve.build_component(binary, install=plan.build_peers)
    except wasmtime_serve.Unavailable as exc:
        return str(exc)
    port = free_port()
    info = {
        "command": "wasmtime serve --allow-precompiled --addr 127.0.0.1:P hello.cwasm",
        "wasmtime": wasmtime_serve.version(binary),
        "binary": binary,
        "work": "a fresh component instance per request (wasmtime serve's model, pooling"
        ' allocator); JS reads the body and answers `{"wrapped":<body>,"by":"js"}`',
        **info,
    }
    return wasmtime_serve.serve_command(binary, cwasm, HOST, port), port, info


def run(quick: bool) -> CaseResult:
    """Measure every target side by side and return latency rows, throughput and ratios."""

    plan = QUICK if quick else FULL
    if os.environ.get("FIREBOX_BENCH_TINY"):
        plan = TINY
    peers: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="firebox-bench-http-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        data_dir.mkdir()
        seeded = seed_compiled(data_dir)
        py_fn = tmp / "echo-python"
        py_fn.mkdir()
        (py_fn / "app.py").write_text(PYTHON_HANDLER)
        (py_fn / "firebox.toml").write_text(PYTHON_MANIFEST)
        heavy_fn = tmp / "echo-python-heavy"
        heavy_fn.mkdir()
        (heavy_fn / "app.py").write_text(PYTHON_HEAVY_HANDLER)
        (heavy_fn / "firebox.toml").write_text(PYTHON_HEAVY_MANIFEST)
        fb_port, bare_port, proc_port = free_port(), free_port(), free_port()
        fb = Server(
            "firebox",
            [
                *_firebox_cmd(),
                "serve",
                "--host",
                HOST,
                "--port",
                str(fb_port),
                "--data-dir",
                str(data_dir),
                "--deploy",
                str(EXAMPLE),
                "--deploy",
                str(py_fn),
                "--deploy",
                str(heavy_fn),
            ],
            tmp / "firebox.log",
            # Execution slots for the 64-connection phase: admission counts real slots
            # (workers x threads), and one function may take three quarters of them.
            {"FIREBOX_WORKER_THREADS": os.environ.get("FIREBOX_WORKER_THREADS", "48")},
        )
        bare = Server(
            "bare", _uvicorn("bench.peers.bare_starlette:app", bare_port), tmp / "bare.log"
        )
        process = Server(
            "process",
            _uvicorn("bench.peers.process_per_request:app", proc_port),
            tmp / "process.log",
        )
        servers = [fb, bare, process]
        targets = [
            Target("firebox-wat", f"http://{HOST}:{fb_port}/echo", _firebox_ok("wat"), fb),
            Target(
                "firebox-py",
                f"http://{HOST}:{fb_port}/echo-py",
                _firebox_ok("python"),
                fb,
                PYTHON_START_TIMEOUT_S,
            ),
            Target(
                "firebox-py-heavy",
                f"http://{HOST}:{fb_port}/echo-py-heavy",
                _firebox_ok("python"),
                fb,
                PYTHON_START_TIMEOUT_S,
            ),
            Target("bare", f"http://{HOST}:{bare_port}/echo", _wrapped_ok("native"), bare),
            Target("process", f"http://{HOST}:{proc_port}/echo", _wrapped_ok("process"), process),
        ]
        wasmtime_peer = _wasmtime_peer(plan)
        if isinstance(wasmtime_peer, str):
            skipped["wasmtime-serve"] = wasmtime_peer
        else:
            cmd, port, info = wasmtime_peer
            wt = Server("wasmtime-serve", cmd, tmp / "wasmtime.log")
            servers.append(wt)
            targets.append(
                Target("wasmtime-serve", f"http://{HOST}:{port}/echo", _wrapped_ok("js"), wt)
            )
            peers["wasmtime-serve"] = info
        with running(servers):
            result = asyncio.run(_measure(targets, plan, skipped))
            if plan.wrk and shutil.which("wrk"):
                result.tables["wrk (throughput, requests/s)"] = [
                    _wrk(t, c, plan.duration_s, tmp) for c in CONCURRENCY for t in targets
                ]
        save_compiled(data_dir)
    result.config.update(
        {
            "payload_bytes": len(PAYLOAD),
            "payload": PAYLOAD.decode(),
            "plan": plan.__dict__,
            "concurrency": list(CONCURRENCY),
            "load_generator": "httpx.AsyncClient in the bench process, one keep-alive client"
            " per in-flight request; every response checked",
            "order": "servers run at the same time; each phase runs every target in turn",
            "wrk": (shutil.which("wrk") or "not installed") if plan.wrk else "not run with --quick",
            "compiled_interpreter_seeded_files": seeded,
            "not_run": skipped,
        }
    )
    result.peers = {
        "firebox-wat": {
            "command": "firebox serve --host 127.0.0.1 --port P --data-dir TMP --deploy"
            " examples/echo-wat --deploy TMP/echo-python",
            "route": "POST /echo (HTTP trigger, no auth)",
            "work": "build the Lambda function-URL event, dispatch to a worker process,"
            ' guest wraps the event as {"wrapped": <event>, "by": "wat"}',
            "workers": os.environ.get("FIREBOX_WORKERS", f"{os.cpu_count()} (cpu count)"),
            "worker_threads": os.environ.get("FIREBOX_WORKER_THREADS", "48"),
            "uvicorn": "runtime/http/server.py: uvloop and httptools (with firebox's header"
            " deadline and header bound) when installed, as they are with firebox",
        },
        "firebox-py": {
            "command": "the same node",
            "route": "POST /echo-py (HTTP trigger, no auth)",
            "work": "as firebox-wat, on the shared Python interpreter component: "
            + PYTHON_HANDLER.strip().replace("\n", " "),
            "function": "provisioned 1 (default), isolation fresh",
        },
        "firebox-py-heavy": {
            "command": "the same node",
            "route": "POST /echo-py-heavy (HTTP trigger, no auth)",
            "work": "as firebox-py, after ~300 ms of module-level hashing at init (in the"
            " version's snapshot)",
            "function": "provisioned 1 (default), isolation fresh",
        },
        "bare": {
            "command": "python -m uvicorn bench.peers.bare_starlette:app --host 127.0.0.1"
            " --port P --log-level warning",
            "route": "POST /echo",
            "work": 'parse the JSON body, answer {"wrapped": <body>, "by": "native"}',
            "uvicorn": "one process, uvicorn's defaults: uvloop and httptools when installed"
            " (they are, with firebox), else asyncio and h11",
        },
        "process": {
            "command": "python -m uvicorn bench.peers.process_per_request:app --host 127.0.0.1"
            " --port P --log-level warning",
            "route": "POST /echo",
            "work": "per request: start `python bench/peers/handler.py` (asyncio subprocess),"
            ' body on stdin, answer its stdout {"wrapped": <body>, "by": "process"}',
        },
        **peers,
    }
    if skipped:
        result.peers.update({name: {"not run": why} for name, why in skipped.items()})
    return result


async def _measure(targets: list[Target], plan: Plan, skipped: dict[str, str]) -> CaseResult:
    for target in targets:
        await _wait_ready(target)
    rows = {t.name: Row(t.name, f"{t.name}: one request at a time (c=1)") for t in targets}
    throughput: list[dict[str, Any]] = []
    per_c: dict[tuple[str, int], float] = {}
    for target in targets:
        await drive(target, 1, requests=plan.warmup_requests, duration_s=plan.warmup_max_s)
        rows[target.name].warmup = plan.warmup_requests
    # Latency at c=1 in interleaved halves, so drift lands on every target.
    for _ in range(2):
        for target in targets:
            phase = await drive(
                target, 1, requests=plan.latency_requests // 2, duration_s=plan.latency_max_s / 2
            )
            if phase.errors:
                raise RuntimeError(f"{target.name}: {phase.errors} failed requests")
            rows[target.name].samples_ns.extend(phase.latencies_ns)
    for concurrency in CONCURRENCY:
        for target in targets:
            # Every connection of the phase is opened and used during the warm-up.
            warmup = max(plan.warmup_requests, 5 * concurrency)
            await drive(target, concurrency, requests=warmup, duration_s=plan.warmup_max_s)
            phase = await drive(
                target, concurrency, requests=plan.max_requests, duration_s=plan.duration_s
            )
            summary = summarize_us(phase.latencies_ns)
            per_c[(target.name, concurrency)] = phase.throughput
            throughput.append(
                {
                    "server": target.name,
                    "concurrency": concurrency,
                    "requests_per_s": phase.throughput,
                    "median_us": summary["median_us"],
                    "p99_us": summary["p99_us"],
                    "requests": len(phase.latencies_ns),
                    "errors": phase.errors,
                    "seconds": phase.elapsed_s,
                }
            )
    med = {name: row.summary()["median_us"] for name, row in rows.items()}
    p99 = {name: row.summary()["p99_us"] for name, row in rows.items()}
    ratios: dict[str, tuple[float, str]] = {}

    def add(name: str, num: str, den: str, meaning: str) -> None:
        if num in med and den in med:
            ratios[name] = (ratio(med[num], med[den]), meaning)

    add("latency firebox-wat/bare (c=1)", "firebox-wat", "bare", "median at c=1; 1.0 = the floor")
    add("latency firebox-py/bare (c=1)", "firebox-py", "bare", "median at c=1; 1.0 = the floor")
    add(
        "latency firebox-py-heavy/firebox-py (c=1)",
        "firebox-py-heavy",
        "firebox-py",
        "median at c=1: 300 ms of module-level init against none; target <= 1.5",
    )
    if "firebox-wat" in p99 and "bare" in p99:
        ratios["p99 firebox-wat/bare (c=1)"] = (
            ratio(p99["firebox-wat"], p99["bare"]),
            "p99 latency at c=1",
        )
    add(
        "latency process/firebox-py (c=1)",
        "process",
        "firebox-py",
        "median at c=1: how much slower a process per invocation is",
    )
    add(
        "latency process/firebox-wat (c=1)",
        "process",
        "firebox-wat",
        "median at c=1",
    )
    add(
        "latency firebox-wat/wasmtime-serve (c=1)",
        "firebox-wat",
        "wasmtime-serve",
        "median at c=1; < 1 means firebox is faster",
    )
    for concurrency in CONCURRENCY:
        for name in ("firebox-wat", "firebox-py", "firebox-py-heavy"):
            ratios[f"throughput {name}/bare (c={concurrency})"] = (
                ratio(per_c[(name, concurrency)], per_c[("bare", concurrency)]),
                "requests/s; 1.0 would be the floor",
            )
        if ("wasmtime-serve", concurrency) in per_c:
            ratios[f"throughput firebox-wat/wasmtime-serve (c={concurrency})"] = (
                ratio(per_c[("firebox-wat", concurrency)], per_c[("wasmtime-serve", concurrency)]),
                "requests/s; > 1 means firebox serves more",
            )
        ratios[f"throughput firebox-py/process (c={concurrency})"] = (
            ratio(per_c[("firebox-py", concurrency)], per_c[("process", concurrency)]),
            "requests/s",
        )
    description = (
        "Latency rows are single requests at concurrency 1 (median/p99 over up to"
        f" {plan.latency_requests} per target, at most {plan.latency_max_s:g} s each); the"
        " throughput table holds each concurrency's requests/s over"
        f" {plan.duration_s:g} s. The load generator shares the machine with the servers,"
        " so at high concurrency it is part of what is measured, equally for all."
    )
    if skipped:
        description += " Not run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + "."
    return CaseResult(
        name="http",
        title=TITLE,
        description=description,
        rows=list(rows.values()),
        ratios=ratios,
        tables={"throughput (httpx load generator)": throughput},
    )
