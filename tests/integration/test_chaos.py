"""Chaos: three real nodes on PostgreSQL and a Redis of the test's own, behind a small
round-robin client, under a steady mixed workload (sync invokes of a function with
reserved concurrency, async events, a queue mapping, a stream mapping, a schedule), while
nodes are killed with SIGKILL and restarted at random moments and Redis is killed and
restarted once. At the end: every accepted event, message and record was processed,
stream records in order per shard, no schedule tick lost or fired twice, the reserved
concurrency never exceeded (by the function's own clock), and no sync request answered
5xx.

The load lasts CHAOS_SECONDS (30 by default); the whole test takes about two minutes
on a loaded 2-core machine. Redis is the test's own (append-only file, fsync always) so
that restarting it loses nothing acknowledged and disturbs no other test.
"""

from __future__ import annotations

import calendar
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import redis
from firebox.runtime.credentials import Credentials
from firebox.runtime.errors import FireboxError
from firebox.runtime.http.errors import status_of
from firebox.sdk.client import Client

from tests.conftest import Server, ServerFactory, free_port

pytestmark = [pytest.mark.slow, pytest.mark.services]
T = TypeVar("T")

LOAD_S = float(os.environ.get("CHAOS_SECONDS", "30"))
RESERVED = 2
SHARDS = 4
TICK_S = 2

GATE = """
import time

def handler(event, context):
    start = time.time()
    time.sleep(0.2)
    return {"start": start, "end": time.time()}
"""

SINK = """
import base64

def handler(event, context):
    records = event.get("Records") if isinstance(event, dict) else None
    if records:
        for r in records:
            if r.get("eventSource") == "aws:sqs":
                print("msg", r["body"])
            else:
                shard, seq = r["eventID"].split(":", 1)
                print("rec", shard, seq)
        return {"batchItemFailures": []}
    if event.get("detail-type") == "Scheduled Event":
        print("tick", event["time"])
    else:
        print("evt", event["id"])
    return {}
"""


class PrivateRedis:
    """A redis-server of the test's own on a free port, append-only with fsync always."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("FIREBOX_REQUIRE_SERVICES") == "1":
                pytest.fail("redis-server is not installed and FIREBOX_REQUIRE_SERVICES=1")
            pytest.skip("redis-server is not installed")
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.folder), "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=1).ping()
                return
            except redis.RedisError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None


class RoundRobin:
    """Sends each call to the next live node; a node that dies mid-call costs a retry on
    the next one. Remembers every typed error's status, per node and time."""

    def __init__(self, nodes: list[Server]) -> None:
        self.nodes = nodes
        self.next = 0
        self.lock = threading.Lock()
        self.creds: dict[int, Credentials] = {}
        # (what, node, time, status, code, message)
        self.errors: list[tuple[str, int, float, int, str, str]] = []

    def call(self, what: str, fn: Callable[[Client], T]) -> T | FireboxError | None:
        for _ in range(3 * len(self.nodes)):
            with self.lock:
                index = self.next % len(self.nodes)
                self.next += 1
            node = self.nodes[index]
            if node.proc is None:
                continue
            if index not in self.creds:
                self.creds[index] = node.credentials
            try:
                with Client(node.url, self.creds[index], timeout=10) as client:
                    return fn(client)
            except httpx.TransportError:
                time.sleep(0.05)  # the node died under the call: the next one
            except FireboxError as exc:
                self.errors.append(
                    (what, index, time.time(), status_of(exc), exc.code, exc.message[:300])
                )
                return exc
        return None


def logged(client: Client, name: str) -> list[list[str]]:
    """Return the split lines the function printed, in processing order."""
    entries = sorted(client.logs(name, limit=10_000), key=lambda e: (e.ts, e.id))
    assert len(entries) < 10_000, "more invocations than one page of logs holds"
    return [
        line.split()
        for entry in entries
        for line in entry.text.splitlines()
        if line.split() and line.split()[0] in ("evt", "msg", "rec", "tick")
    ]


def most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def _seq(sequence: str) -> tuple[int, int]:
    ms, n = sequence.split("-")
    return int(ms), int(n)


def tick_gaps(ticks: list[str], until: float) -> list[str]:
    """Return the ticks missing between the first one seen and `until` (every TICK_S)."""
    if not ticks:
        return ["no tick at all"]
    have = {calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ")) for t in ticks}
    first = min(have)
    expected = range(first, int(until) - TICK_S, TICK_S)
    return [time.strftime("%H:%M:%SZ", time.gmtime(t)) for t in expected if t not in have]


def _when(events: list[tuple[float, str]]) -> list[str]:
    return [time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 10)} {what}"
            for t, what in events]  # fmt: skip


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    if server.proc is not None:
        server.kill()


def test_nodes_and_redis_killed_under_load_lose_nothing(
    pg_schema_url: str,
    server_factory: ServerFactory,
    private_redis: PrivateRedis,
    tmp_path: Path,
) -> None:
    env = {
        "FIREBOX_DATABASE_URL": pg_schema_url,
        "FIREBOX_QUEUE_URL": private_redis.url,
        "FIREBOX_REGISTRY_POLL_S": "0.5",
        "FIREBOX_MAPPING_RELOAD_S": "0.5",
        "FIREBOX_MAPPING_POLL_S": "0.2",
        "FIREBOX_SHARD_LEASE_S": "2",
        "FIREBOX_CONCURRENCY_LEASE_S": "2",
        "FIREBOX_ASYNC_VISIBILITY_S": "4",
        "FIREBOX_SCHEDULE_ALLOW_SECONDS": "1",
        "FIREBOX_SCHEDULE_OUTBOX_S": "2",
        "FIREBOX_MAPPING_DRAIN_S": "1",
    }
    nodes = [server_factory(env={**env, "FIREBOX_PREPARE_PYTHON": "1"}).start()]
    nodes += [server_factory(env=env).start() for _ in range(2)]
    for name, source, extra in (("gate", GATE, f"concurrency = {RESERVED}\n"),
                                ("sink", SINK, "timeout = 10\n")):  # fmt: skip
        src = tmp_path / name
        src.mkdir()
        (src / "app.py").write_text(source)
        (src / "firebox.toml").write_text(f'name = "{name}"\nruntime = "python3.14"\n{extra}')
    with nodes[0].client() as admin:
        admin.deploy_path(tmp_path / "gate")
        admin.deploy_path(tmp_path / "sink")
        admin.queues.create("work", visibility_timeout_s=4)
        admin.streams.create("events", shards=SHARDS)
        admin.mappings.create("sink", "queue:work", batch_size=5, maximum_concurrency=2)
        admin.mappings.create("sink", "stream:events", batch_size=20,
                              starting_position="TRIM_HORIZON")  # fmt: skip
        for node in nodes:  # every node has both warm before the clock starts
            with node.client() as c:
                assert c.invoke("gate").ok and c.invoke("sink", {"id": "warm"}).ok
        admin.schedules.create("beat", "sink", f"rate({TICK_S} seconds)")
    rr = RoundRobin(nodes)
    stop = threading.Event()
    accepted: dict[str, list[Any]] = defaultdict(list)
    spans: list[tuple[float, float]] = []
    sync_outcomes: Counter[str] = Counter()

    def sync_load() -> None:
        while not stop.is_set():
            out = rr.call("sync", lambda c: c.invoke("gate"))
            if out is None or isinstance(out, FireboxError):
                sync_outcomes["rejected" if out is not None else "no node"] += 1
                continue
            if out.ok:
                spans.append((out.payload["start"], out.payload["end"]))
                sync_outcomes["ok"] += 1
            else:
                sync_outcomes["function error"] += 1

    def async_load() -> None:
        for n in range(1_000_000):
            if stop.is_set():
                return
            ident = f"e{n}"

            def send(c: Client, ident: str = ident) -> Any:
                return c.invoke("sink", {"id": ident}, invocation_type="Event")

            out = rr.call("async", send)
            if out is not None and not isinstance(out, FireboxError):
                accepted["evt"].append(ident)
            time.sleep(0.05)

    def queue_load() -> None:
        for n in range(0, 5_000_000, 5):
            if stop.is_set():
                return
            bodies: list[bytes | str] = [f"m{n + i}" for i in range(5)]

            def send(c: Client, bodies: list[bytes | str] = bodies) -> Any:
                return c.queues.send_batch("work", bodies)

            out = rr.call("queue", send)
            if out is not None and not isinstance(out, FireboxError):
                accepted["msg"] += bodies
            time.sleep(0.1)

    def stream_load() -> None:
        for n in range(0, 10_000_000, 10):
            if stop.is_set():
                return
            batch: list[tuple[str, bytes | str]] = [
                (f"key-{(n + i) % 16}", f"r{n + i}") for i in range(10)
            ]

            def put(c: Client, batch: list[tuple[str, bytes | str]] = batch) -> Any:
                return c.streams.put_batch("events", batch)

            out = rr.call("stream", put)
            if out is not None and not isinstance(out, FireboxError):
                accepted["rec"] += [(r["shard_id"], r["sequence_number"]) for r in out]
            time.sleep(0.1)

    events: list[tuple[float, str]] = []  # what the chaos did, for a failure's message
    loaders = [threading.Thread(target=f, daemon=True)
               for f in (sync_load, sync_load, sync_load, sync_load, async_load, queue_load,
                         stream_load)]  # fmt: skip
    rng = random.Random(int(os.environ.get("CHAOS_SEED", "18")))
    kills, redis_restarts = 0, 0
    started = time.time()
    for t in loaders:
        t.start()
    redis_at = rng.uniform(0.35, 0.6) * LOAD_S
    # At least three node kills and the Redis restart, however slow the machine is.
    while time.time() - started < LOAD_S or kills < 3 or redis_restarts == 0:
        assert time.time() - started < 4 * LOAD_S, f"chaos too slow: {_when(events)}"
        time.sleep(rng.uniform(0.5, 2.0))
        if redis_restarts == 0 and (time.time() - started > redis_at or kills >= 3):
            private_redis.kill()
            events.append((time.time(), "redis killed"))
            time.sleep(rng.uniform(0.5, 2.0))
            private_redis.start()
            events.append((time.time(), "redis back"))
            redis_restarts += 1
            continue
        victim = rng.randrange(len(nodes))
        assert nodes[victim].proc is not None
        nodes[victim].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        nodes[victim].proc.wait(10)  # type: ignore[union-attr]
        nodes[victim].proc = None
        kills += 1
        events.append((time.time(), f"node {victim} killed"))
        time.sleep(rng.uniform(0.5, 3.0))
        nodes[victim].start()
        events.append((time.time(), f"node {victim} back"))
    stop.set()
    for t in loaders:
        t.join(30)
    load_end = time.time()

    # Drain: everything accepted is processed within a bound.
    with nodes[0].client() as c:
        deadline = time.monotonic() + 90
        while True:
            lines = logged(c, "sink")
            seen: dict[str, Counter[Any]] = {k: Counter() for k in ("evt", "msg", "rec", "tick")}
            for parts in lines:
                key = parts[1] if parts[0] != "rec" else (parts[1], parts[2])
                seen[parts[0]][key] += 1
            missing = {
                "evt": [e for e in accepted["evt"] if e not in seen["evt"]],
                "msg": [m for m in accepted["msg"] if m not in seen["msg"]],
                "rec": [r for r in accepted["rec"] if r not in seen["rec"]],
            }
            missing["tick"] = tick_gaps(list(seen["tick"]), load_end)
            if not any(missing.values()):
                break
            assert time.monotonic() < deadline, (
                f"never processed: { {k: v[:10] for k, v in missing.items()} };"
                f" chaos: {_when(events)}"
            )
            time.sleep(1.0)

    # Stream records: in order per shard (a replayed batch starts again from its
    # checkpoint, so the first time each record is seen follows the sequence).
    wanted = set(accepted["rec"])
    for shard in {s for s, _ in wanted}:
        order = [p[2] for p in lines if p[0] == "rec" and p[1] == shard and (shard, p[2]) in wanted]
        first_seen = list(dict.fromkeys(order))
        assert first_seen == sorted(first_seen, key=_seq), f"{shard} out of order"
    # Ticks: every tick from the first to the end of the load fired, exactly once.
    ticks = sorted(seen["tick"])
    assert not tick_gaps(ticks, load_end)
    assert all(n == 1 for n in seen["tick"].values()), f"a tick fired twice: {seen['tick']}"
    # Reserved concurrency: never more than RESERVED at once, by the function's clock.
    peak = most_at_once(spans)
    assert peak <= RESERVED
    # No sync request was answered 5xx (throttles are 429; a dead node answers nothing).
    fives = [e for e in rr.errors if e[0] == "sync" and e[3] >= 500]
    tracebacks = [
        text[text.index("unexpected error") :][:4000]
        for n in nodes
        for log in n.data_dir.parent.glob("server-*.log")
        if fives and "unexpected error" in (text := log.read_text(errors="replace"))
    ]
    assert not fives, f"{fives[:5]}; chaos: {_when(events)}; {tracebacks}"
    counts = {
        "events": len(accepted["evt"]), "messages": len(accepted["msg"]),
        "records": len(accepted["rec"]), "ticks": len(ticks), "kills": kills,
        "redis_restarts": redis_restarts, "max_concurrency": peak,
        "sync": dict(sync_outcomes),
        "duplicates": {k: sum(n - 1 for n in seen[k].values()) for k in ("evt", "msg", "rec")},
    }  # fmt: skip
    print("chaos:", counts)
    assert kills >= 3 and redis_restarts == 1
    assert sync_outcomes["ok"] > 0 and peak == RESERVED
