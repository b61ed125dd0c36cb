"""Measure how fast events and results cross the Python guest's component boundary (bench).

Run: .venv/bin/python -m bench.python_payloads [--sizes 65536,1048576,6000000] [--n 5]

In process, on a snapshot of each handler (the serving path): the round trip of a JSON
event of each size into a handler that returns None (event in), one that returns its
event (in and out) and one that returns a result of that size (out), against the
guest's own cost of the same work (`json.loads`/`json.dumps` of the same text, timed
inside the guest), so that `boundary_ms` = round trip - guest work is what the host and
the component boundary add. Two event shapes: one long string (decoding is a copy) and
a list of small objects (decoding builds ~size/40 Python objects).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from firebox.compiler.interpreter import build_interpreter, default_cache_dir
from firebox.compiler.interpreter_split import split_interpreter
from firebox.compiler.python import bundle_python_function
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.engine import EngineSettings
from firebox.runtime.guest.component import PythonInstance
from firebox.runtime.guest.engine import EpochTicker, build_engine
from firebox.runtime.guest.function_config import PythonFunctionConfig
from firebox.runtime.snapshot.capture import CaptureEngine
from firebox.runtime.snapshot.store import (
    SnapshotBuilder,
    SnapshotIndex,
    load_snapshot_program,
    store_split,
)

SOURCE = """\
import json, time

def handler(event, context):
    mode = context.client_context.custom.get("mode") if context.client_context else "in"
    if mode == "in":
        return None
    if mode == "echo":
        return event
    if mode == "out":
        return "x" * event["n"]
    if mode == "guest":  # the guest's own work on the same text, timed inside the guest
        text = event["text"]
        started = time.perf_counter()
        value = json.loads(text)
        loaded = time.perf_counter()
        json.dumps(value).encode()
        return [loaded - started, time.perf_counter() - loaded]
"""
SETTINGS = EngineSettings(pool_slots=16)
FUEL = 10**11


class _Sink:
    def write(self, text: str) -> None:
        return None


def _event(shape: str, size: int) -> bytes:
    if shape == "string":
        return json.dumps("x" * max(0, size - 2)).encode()
    item = {"id": 12345, "name": "abcdefgh", "ok": True}
    count = max(1, size // len(json.dumps(item)))
    return json.dumps([item] * count).encode()


def _call(instance: PythonInstance, event: bytes, mode: str) -> tuple[float, bytes]:
    context = json.dumps({"custom": {"mode": mode}})
    started = time.perf_counter()
    output = instance.call(
        event, "req", time.monotonic() + 600, FUEL, _Sink(), client_context=context
    )
    return time.perf_counter() - started, output


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def measure(sizes: list[int], n: int) -> dict[str, Any]:
    """Return {shape: {size: {mode: ms}}} for the current interpreter's boundary."""
    split = split_interpreter(build_interpreter())
    cache_root = default_cache_dir() / "bench-compiled"
    serving = build_engine(SETTINGS)
    ticker = EpochTicker(serving)
    cache = CompiledCache(cache_root, SETTINGS)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        artifacts = ArtifactStore(data)
        digests = store_split(artifacts, split)
        builder = SnapshotBuilder(
            CaptureEngine(split, cache_root), serving, SETTINGS.fingerprint(), artifacts,
            cache, SnapshotIndex(data),
        )  # fmt: skip
        (data / "main.py").write_text(SOURCE)
        bundle = artifacts.put(bundle_python_function(data, "main.handler"))
        config = PythonFunctionConfig(function_name="payloads", memory_mb=1024)
        ref = builder.ensure(bundle, "main.handler", config)
        program = load_snapshot_program(
            serving, artifacts, cache, digests, ref.digest, config, bundle
        )
        instance = program.instantiate()
        try:
            for shape in ("string", "objects"):
                for size in sizes:
                    event = _event(shape, size)
                    row: dict[str, float] = {}
                    guest = [json.loads(_call(instance, json.dumps(
                        {"text": event.decode()}).encode(), "guest")[1]) for _ in range(n)]  # fmt: skip
                    loads = statistics.median(g[0] for g in guest)
                    dumps = statistics.median(g[1] for g in guest)
                    row["guest_json_loads_ms"] = _ms(loads)
                    row["guest_json_dumps_ms"] = _ms(dumps)
                    for mode in ("in", "echo"):
                        total = statistics.median(_call(instance, event, mode)[0] for _ in range(n))
                        work = loads + (dumps if mode == "echo" else 0.0)
                        row[f"{mode}_total_ms"] = _ms(total)
                        row[f"{mode}_boundary_ms"] = _ms(total - work)
                    if shape == "string":
                        out = json.dumps({"n": size}).encode()
                        total = statistics.median(_call(instance, out, "out")[0] for _ in range(n))
                        row["out_total_ms"] = _ms(total)
                    results.setdefault(shape, {})[str(size)] = row
                    print(json.dumps({shape: {size: row}}), flush=True)
        finally:
            instance.close()
            ticker.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="65536,1048576,6000000")
    parser.add_argument("--n", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(json.dumps(measure(sizes, args.n), indent=2))


if __name__ == "__main__":
    main()
