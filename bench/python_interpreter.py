"""Measure the shared Python interpreter component: build, compile, instantiate, load, call, memory.

Run: .venv/bin/python bench/python_interpreter.py [--rebuild] [--pooling]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import psutil
import wasmtime
from firebox.compiler.interpreter import build_interpreter
from firebox.runtime.errors import MemoryLimitExceeded
from firebox.runtime.guest.component import PythonProgram
from firebox.runtime.guest.function_config import PythonFunctionConfig
from wasmtime.component import Component

HANDLER = """
import json, datetime, decimal, uuid, hashlib
def handler(event, context):
    return {"id": str(uuid.uuid4()), "sum": str(decimal.Decimal("1.1") + 2), "event": event}
"""


class _Sink:
    def write(self, text: str) -> None:
        return None


def _engine(pooling: bool) -> wasmtime.Engine:
    if pooling:
        from firebox.runtime.guest.engine import get_engine

        engine: wasmtime.Engine = get_engine()
        return engine
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.wasm_component_model = True
    engine = wasmtime.Engine(config)

    def tick() -> None:
        while True:
            time.sleep(0.01)
            engine.increment_epoch()

    threading.Thread(target=tick, daemon=True).start()
    return engine


def _bundle() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("main.py", HANDLER)
    return out.getvalue()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rebuild", action="store_true", help="time a build into a fresh cache")
    parser.add_argument("--pooling", action="store_true", help="use firebox.runtime.guest.engine")
    args = parser.parse_args()
    if args.rebuild:
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            path = build_interpreter(Path(tmp))
            print(
                f"build: {time.perf_counter() - started:.1f} s, {path.stat().st_size / 1e6:.1f} MB"
            )
    wasm = build_interpreter()
    print(f"interpreter: {wasm} ({wasm.stat().st_size / 1e6:.1f} MB)")
    engine = _engine(args.pooling)
    started = time.perf_counter()
    component = Component.from_file(engine, str(wasm))
    print(f"compile Component(engine, bytes): {time.perf_counter() - started:.2f} s")
    with tempfile.NamedTemporaryFile(suffix=".cwasm") as tmp:
        tmp.write(component.serialize())
        tmp.flush()
        print(f"serialized: {Path(tmp.name).stat().st_size / 1e6:.1f} MB")
        times = []
        for _ in range(5):
            started = time.perf_counter()
            component = Component.deserialize_file(engine, tmp.name)
            times.append(time.perf_counter() - started)
        print(f"deserialize_file (median of 5): {_ms(statistics.median(times))}")

    bundle = _bundle()
    config = PythonFunctionConfig("bench")
    program = PythonProgram(engine, component, bundle, "main.handler", config)
    inst_t: list[float] = []
    load_t: list[float] = []
    first_t: list[float] = []
    second_t: list[float] = []
    for _ in range(20):
        store = wasmtime.Store(engine)
        store.set_limits(memory_size=128 * 1024 * 1024)
        store.set_wasi(wasmtime.WasiConfig())
        store.set_fuel(10**10)
        store.set_epoch_deadline(1000)
        started = time.perf_counter()
        program._linker.instantiate(store, component)
        inst_t.append(time.perf_counter() - started)
        store.close()
        started = time.perf_counter()
        live = program.instantiate()
        load_t.append(time.perf_counter() - started)
        for bucket in (first_t, second_t):
            started = time.perf_counter()
            live.call(b'{"a": 1}', "r", time.monotonic() + 3, 10**10, _Sink())
            bucket.append(time.perf_counter() - started)
        live.close()
    print(
        f"instantiate (Store + component instance, median of 20): {_ms(statistics.median(inst_t))}"
    )
    print(f"instantiate + load (PythonProgram.instantiate): {_ms(statistics.median(load_t))}")
    med = statistics.median
    print(f"  -> load of a small handler ~ {_ms(med(load_t) - med(inst_t))}")
    print(f"first call: {_ms(med(first_t))}, second call: {_ms(med(second_t))}")

    proc = psutil.Process()
    before = proc.memory_full_info()
    live_instances = []
    for _ in range(20):
        live = program.instantiate()
        live.call(b"{}", "r", time.monotonic() + 3, 10**10, _Sink())
        live_instances.append(live)
    after = proc.memory_full_info()
    print(
        f"20 live instances: USS +{(after.uss - before.uss) / 20 / 2**20:.2f} MiB each,"
        f" RSS +{(after.rss - before.rss) / 20 / 2**20:.2f} MiB each"
    )
    for live in live_instances:
        live.close()

    low, high = 1, 128  # MiB: bisect the smallest memory limit that loads and calls
    while low < high:
        mid = (low + high) // 2
        try:
            probe = PythonProgram(
                engine,
                component,
                bundle,
                "main.handler",
                PythonFunctionConfig("bench", memory_mb=mid),
            ).instantiate()
            probe.call(b"{}", "r", time.monotonic() + 3, 10**10, _Sink())
            probe.close()
            high = mid
        except (MemoryLimitExceeded, Exception):
            low = mid + 1
    print(f"minimum memory limit: {low} MiB")


if __name__ == "__main__":
    main()
