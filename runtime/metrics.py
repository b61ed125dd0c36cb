"""The node's Prometheus metrics: counters fed by every usage record, gauges read from the
node's parts when scraped, HTTP requests as the front end reports them (metering layer).

Two sources, so the request path pays for one dictionary update and nothing else:

- **events** (an invocation ended or was refused, an HTTP request was answered) update
  prometheus-client counters and histograms as they happen, from the telemetry
  Recorder's usage records and from the front end's `MetricsMiddleware`
  (runtime/http/metrics.py);
- **state** (ready and leased instances, concurrent executions, worker memory,
  restarts, queue depths, async retries) is read when `/metrics` is scraped:
  `NodeMetrics.refresh` gathers what needs the event loop or a thread (worker stats
  over their sockets, queue counts from the backend), then `StateCollector` reports it.

Labels are bounded: function and version names (what is deployed), route templates
(never raw paths; a path no route serves is `unmatched`), methods, statuses, error
types, worker indexes, queue names. Never a request id. docs/metrics.md lists each family.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from firebox.runtime.storage.telemetry import UsageRecord
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from firebox.runtime.node import Node

#: The content type of the text exposition format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds: from a warm WAT call (~50 us) to Lambda's 15-minute maximum.
DURATION_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0, 300.0, 900.0,
)  # fmt: skip
# Seconds: a deploy is a compile (a WAT module: ms; a Python bundle's dependencies: a minute).
DEPLOY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Bytes of linear memory at the end of a call: 64 KiB pages up to the 4 GiB maximum.
MEMORY_BUCKETS = tuple(float(2**n * 1024 * 1024) for n in range(0, 13))
# How long a scrape waits for a worker's or the queue backend's numbers.
REFRESH_TIMEOUT_S = 5.0
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
# The routes that deploy code (their duration is the deploy time, compile included).
DEPLOY_ROUTES = frozenset(
    {
        ("POST", "/v1/functions"),
        ("PUT", "/v1/functions/{name}/code"),
        ("POST", "/2015-03-31/functions"),
        ("PUT", "/2015-03-31/functions/{name}/code"),
    }
)


def split_key(key: str) -> tuple[str, str]:
    """Return (function, version) of a pool key `name:version@hash`."""
    name, _, version = key.partition("@")[0].rpartition(":")
    return name, version


@dataclass
class NodeState:
    """What a scrape reads from the node's parts (filled by `NodeMetrics.refresh`)."""

    workers: list[tuple[int, bool, dict[str, Any]]] = field(default_factory=list)
    queues: dict[str, dict[str, Any]] = field(default_factory=dict)
    inflight: dict[str, int] = field(default_factory=dict)
    restarts: int = 0
    exits: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)
    asynchronous: dict[str, int] = field(default_factory=dict)
    deploy_compiles: int = 0
    deploy_compile_s: float = 0.0
    telemetry_dropped: int = 0


class StateCollector(Collector):
    """Reports the state last read by `NodeMetrics.refresh` as metric families."""

    def __init__(self) -> None:
        self.state = NodeState()

    def collect(self) -> Iterable[Metric]:
        """Yield the gauges and counters of the node's state."""
        return list(self._families(self.state))

    def _families(self, s: NodeState) -> Iterator[Metric]:
        fv = ["function", "version"]
        running = GaugeMetricFamily(
            "firebox_concurrent_executions",
            "Invocations running now on this node, per function.",
            labels=["function"],
        )
        for name, count in sorted(s.inflight.items()):
            running.add_metric([name], count)
        yield running

        instances = GaugeMetricFamily(
            "firebox_instances",
            "Instances per function version: ready (made ahead of demand) or leased (running).",
            labels=[*fv, "state"],
        )
        target = GaugeMetricFamily(
            "firebox_pool_target_instances",
            "How many ready instances each pool aims to keep.",
            labels=fv,
        )
        inits = SummaryMetricFamily(
            "firebox_instance_init_seconds",
            "Time to make an instance (cold leases and pool refills), summed over workers.",
            labels=fv,
        )
        pools: dict[tuple[str, str], dict[str, float]] = {}
        for _, _, stats in s.workers:
            for key, pool in stats.get("pools", {}).items():
                into = pools.setdefault(split_key(key), {})
                for k in ("ready", "leased", "target", "inits", "init_s"):
                    into[k] = into.get(k, 0) + float(pool.get(k, 0))
        for labels, pool in sorted(pools.items()):
            instances.add_metric([*labels, "ready"], pool["ready"])
            instances.add_metric([*labels, "leased"], pool["leased"])
            target.add_metric(list(labels), pool["target"])
            inits.add_metric(list(labels), count_value=int(pool["inits"]), sum_value=pool["init_s"])
        yield instances
        yield target
        yield inits

        up = GaugeMetricFamily("firebox_worker_up", "1 while the worker runs.", labels=["worker"])
        rss = GaugeMetricFamily(
            "firebox_worker_rss_bytes", "Resident memory of each worker.", labels=["worker"]
        )
        uss = GaugeMetricFamily(
            "firebox_worker_uss_bytes",
            "Memory unique to each worker (freed if it exits).",
            labels=["worker"],
        )
        hits = CounterMetricFamily(
            "firebox_compiled_cache_hits",
            "Compiled artifacts a worker loaded from the cache.",
            labels=["worker"],
        )
        misses = CounterMetricFamily(
            "firebox_compiled_cache_misses",
            "Artifacts a worker had to compile.",
            labels=["worker"],
        )
        for index, alive, stats in s.workers:
            worker = str(index)
            up.add_metric([worker], 1 if alive else 0)
            if stats:
                rss.add_metric([worker], stats.get("rss", 0))
                uss.add_metric([worker], stats.get("uss", 0))
                hits.add_metric([worker], stats.get("cache", {}).get("hits", 0))
                misses.add_metric([worker], stats.get("cache", {}).get("misses", 0))
        yield from (up, rss, uss, hits, misses)

        yield CounterMetricFamily(
            "firebox_worker_restarts", "Worker processes replaced after an exit.", s.restarts
        )
        exits = CounterMetricFamily(
            "firebox_worker_exits",
            "Worker exits by reason: deadline (killed, not answering past a deadline),"
            " stuck (recycled: too many threads stuck in host calls), exited (on its own).",
            labels=["reason"],
        )
        for reason in sorted({"deadline", "stuck", "exited", *s.exits}):
            exits.add_metric([reason], s.exits.get(reason, 0))
        yield exits
        lost = CounterMetricFamily(
            "firebox_worker_lost_invocations",
            "Invocations whose worker died before answering: resent (had not started, sent"
            " to another worker once), failed (had started, or too late: WorkerLost).",
            labels=["outcome"],
        )
        for outcome in ("resent", "failed"):
            lost.add_metric([outcome], s.lost.get(outcome, 0))
        yield lost
        yield CounterMetricFamily(
            "firebox_deploy_compiles",
            "Artifacts this node compiled at deploy (compiled-cache misses).",
            s.deploy_compiles,
        )
        compiles = SummaryMetricFamily(
            "firebox_compile_seconds",
            "Time spent compiling wasm (compiled-cache misses), at deploy or in a worker.",
            labels=["where"],
        )
        compiles.add_metric(["deploy"], count_value=s.deploy_compiles, sum_value=s.deploy_compile_s)
        cache = [stats.get("cache", {}) for _, _, stats in s.workers]
        compiles.add_metric(
            ["worker"],
            count_value=int(sum(c.get("misses", 0) for c in cache)),
            sum_value=float(sum(c.get("compile_s", 0.0) for c in cache)),
        )
        yield compiles
        yield CounterMetricFamily(
            "firebox_telemetry_dropped",
            "Invocation records dropped because the telemetry buffer was full.",
            s.telemetry_dropped,
        )

        messages = GaugeMetricFamily(
            "firebox_queue_messages",
            "Messages per queue: visible, in_flight (received, not deleted), delayed.",
            labels=["queue", "state"],
        )
        oldest = GaugeMetricFamily(
            "firebox_queue_oldest_message_age_seconds",
            "Age of the oldest message of each queue (0 when empty).",
            labels=["queue"],
        )
        dead = CounterMetricFamily(
            "firebox_queue_dead_lettered",
            "Messages moved to the queue's dead-letter queue.",
            labels=["queue"],
        )
        sent = CounterMetricFamily("firebox_queue_sent", "Messages sent.", labels=["queue"])
        for name, q in sorted(s.queues.items()):
            messages.add_metric([name, "visible"], q["depth"])
            messages.add_metric([name, "in_flight"], q["in_flight"])
            messages.add_metric([name, "delayed"], q["delayed"])
            oldest.add_metric([name], q["oldest_age_s"])
            dead.add_metric([name], q["dead_lettered"])
            sent.add_metric([name], q["sent"])
        yield from (messages, oldest, dead, sent)

        events = CounterMetricFamily(
            "firebox_async_events",
            "Async (Event) invocations by what happened to them on this node.",
            labels=["result"],
        )
        for result, count in sorted(s.asynchronous.items()):
            if result != "in_flight":
                events.add_metric([result], count)
        yield events
        yield GaugeMetricFamily(
            "firebox_async_in_flight",
            "Async invocations being delivered now.",
            s.asynchronous.get("in_flight", 0),
        )


class NodeMetrics:
    """Every metric of one node, in a registry of its own (two nodes in one process never mix)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=False)
        fv = ["function", "version"]
        self.invocations = Counter(
            "firebox_invocations",
            "Invocations by outcome (ok, error, throttled) and error type.",
            [*fv, "outcome", "error_type"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "firebox_invocation_duration_seconds",
            "Time from dispatch to result of invocations that ran (cold starts included).",
            fv,
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.cold_starts = Counter(
            "firebox_cold_starts",
            "Invocations that found no ready instance and made one on the request path.",
            fv,
            registry=self.registry,
        )
        self.throttles = Counter(
            "firebox_throttles",
            "Invocations refused by the function's concurrency cap (429).",
            fv,
            registry=self.registry,
        )
        self.fuel = Counter(
            "firebox_fuel_consumed",
            "Wasm fuel (CPU budget units) burnt by invocations.",
            fv,
            registry=self.registry,
        )
        self.memory = Histogram(
            "firebox_invocation_memory_bytes",
            "Linear memory at the end of a call (core modules report it).",
            fv,
            buckets=MEMORY_BUCKETS,
            registry=self.registry,
        )
        self.http = Counter(
            "firebox_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "firebox_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.deploys = Histogram(
            "firebox_deploy_duration_seconds",
            "Time to deploy code (upload, validation, compile) by API and status class.",
            ["route", "status"],
            buckets=DEPLOY_BUCKETS,
            registry=self.registry,
        )
        self.state = StateCollector()
        self.registry.register(self.state)
        node.recorder.listeners.append(self.observe)

    def observe(self, record: UsageRecord) -> None:
        """Count one invocation that ran or was refused (a Recorder listener)."""
        labels = (record.function, record.version)
        self.invocations.labels(*labels, record.outcome, record.error_type or "").inc()
        if record.outcome == "throttled":
            self.throttles.labels(*labels).inc()
            return
        if record.billed_ms == 0:
            return  # refused before it ran (payload too large): no duration to count
        self.duration.labels(*labels).observe(record.duration_ms / 1000)
        if record.cold:
            self.cold_starts.labels(*labels).inc()
        if record.fuel:
            self.fuel.labels(*labels).inc(record.fuel)
        if record.peak_memory_bytes:
            self.memory.labels(*labels).observe(record.peak_memory_bytes)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered HTTP request."""
        method = method if method in METHODS else "OTHER"
        self.http.labels(route, method, str(status)).inc()
        self.http_duration.labels(route, method).observe(seconds)
        if (method, route) in DEPLOY_ROUTES:
            self.deploys.labels(route, f"{status // 100}xx").observe(seconds)

    async def refresh(self) -> None:
        """Read the node's state for the next scrape (worker stats, queue counts)."""
        node = self.node
        supervisor = node.supervisor

        async def worker_stats(worker: Any) -> dict[str, Any]:
            if not worker.alive:
                return {}
            try:
                reply: dict[str, Any] = await worker.request({"op": "stats"}, REFRESH_TIMEOUT_S)
            except Exception:  # exited or stuck mid-scrape: reported as down, not an error
                return {}
            return reply

        replies = await asyncio.gather(*(worker_stats(w) for w in supervisor.workers))
        state = NodeState(
            workers=[
                (w.index, bool(w.alive and r), r)
                for w, r in zip(supervisor.workers, replies, strict=True)
            ],
            inflight=dict(node.admission.inflight),
            restarts=supervisor.restarts,
            exits=dict(supervisor.exits),
            lost=dict(supervisor.lost),
            asynchronous=asdict(node.async_invoker.stats),
            deploy_compiles=node.prepare.compiles,
            deploy_compile_s=node.prepare.compile_seconds,
            telemetry_dropped=node.recorder.dropped,
        )
        with contextlib.suppress(Exception):  # the queue backend is down: no queue numbers
            state.queues = await asyncio.wait_for(
                node.run_blocking(self._queue_stats), REFRESH_TIMEOUT_S
            )
        self.state.state = state

    def _queue_stats(self) -> dict[str, dict[str, Any]]:
        queues = self.node.queues
        return {name: asdict(queues.stats(name)) for name in queues.list_queues()}

    async def exposition(self) -> bytes:
        """Return every metric in Prometheus' text format, the node's state read just now."""
        await self.refresh()
        return generate_latest(self.registry)
