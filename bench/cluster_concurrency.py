"""Measure what cluster-wide concurrency costs an invocation's admission (bench).

Run: .venv/bin/python -m bench.cluster_concurrency [--redis redis://127.0.0.1:6379/15] [--n 20000]

Times `acquire` + `release` of `runtime/cluster_concurrency.py` against a real Redis:
with the local token cache (a node calling the same function back to back: the slot
lingers and is reused) and without it (linger 0: one Lua round trip per invocation),
next to a bare Redis PING (the floor of any round trip) and the per-node check alone.
Prints the machine and versions; nothing is written.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable

import redis
from firebox.runtime.cluster_concurrency import ClusterConcurrency

from bench.report import machine_info, versions


def per_call_us(fn: Callable[[], object], n: int) -> dict[str, float]:
    """Return the median and p99 of `n` timed calls of `fn`, in microseconds."""
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples) / 1000, 2),
        "p99_us": round(samples[int(len(samples) * 0.99)] / 1000, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    prefix = f"fbxbench:{uuid.uuid4().hex[:8]}:"
    client = redis.Redis.from_url(args.redis)
    results: dict[str, dict[str, float]] = {}

    inflight: dict[str, int] = {}

    def local_only() -> None:  # what admission does per node: a dict read and two writes
        running = inflight.get("f", 0)
        if running < 64:
            inflight["f"] = running + 1
        inflight["f"] -= 1

    results["per-node check only"] = per_call_us(local_only, args.n)
    results["redis PING round trip"] = per_call_us(client.ping, args.n)
    for label, linger in (("cluster, cached slot (linger 0.1 s)", 0.1),
                          ("cluster, no cache (linger 0: take + give back)", 0.0)):  # fmt: skip
        counter = ClusterConcurrency(args.redis, prefix=prefix, linger_s=linger)
        counter.start()

        def one(counter: ClusterConcurrency = counter) -> None:
            assert counter.acquire("f", 64) is None
            counter.release("f")

        one()
        before = counter.round_trips
        results[label] = {**per_call_us(one, args.n),
                          "round_trips_per_call": round((counter.round_trips - before) / args.n, 4)}  # fmt: skip
        counter.stop()
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)
    print(json.dumps({"machine": machine_info(), "versions": versions(),
                      "redis": client.info("server")["redis_version"], "n": args.n,
                      "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
