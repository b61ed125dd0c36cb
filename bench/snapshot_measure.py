"""Measure post-init snapshots against today's instantiate + load, on the pooling engine (bench).

Run: .venv/bin/python -m bench.snapshot_measure [--n 30] [--live 40] [--compilers]

For a hello handler and one whose module-level code takes ~300 ms: deploy-time capture
(phases), snapshot size on disk, fresh instance wall and CPU time (snapshot vs
instantiate + `load`), first `handle`, USS per live instance. `--compilers` also times
the one-time compile of the interpreter on a node with no compiled cache: Cranelift
(speed), Cranelift (none) and Winch, for the full and the split component.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import wasmtime
from firebox.compiler.interpreter import build_interpreter, default_cache_dir
from firebox.compiler.interpreter_split import split_interpreter
from firebox.compiler.python import bundle_python_function
from firebox.runtime.artifacts import ArtifactStore, CompiledCache, sha256
from firebox.runtime.engine import EngineSettings
from firebox.runtime.guest.component import PythonInstance, PythonProgram
from firebox.runtime.guest.engine import EpochTicker, build_engine
from firebox.runtime.guest.function_config import PythonFunctionConfig
from firebox.runtime.guest.protocol import CallContext
from firebox.runtime.guest.wasmtime_raw import winch_strategy
from firebox.runtime.host.log import LogBuffer
from firebox.runtime.snapshot.capture import CaptureEngine
from firebox.runtime.snapshot.reset import load_reset_program
from firebox.runtime.snapshot.store import (
    SnapshotBuilder,
    SnapshotIndex,
    load_snapshot_program,
    store_split,
)

HANDLERS = {
    "hello": "def handler(event, context):\n    return {'hello': 'world'}\n",
    "heavy": (
        "import time, json, hashlib\n"
        "_t = time.monotonic()\n"
        "TABLE = {}\n"
        "while time.monotonic() - _t < 0.3:\n"
        "    TABLE[len(TABLE)] = hashlib.sha256(str(len(TABLE)).encode()).hexdigest()\n"
        "def handler(event, context):\n"
        "    return {'entries': len(TABLE)}\n"
    ),
}
SETTINGS = EngineSettings(pool_slots=128)


class _Sink:
    def write(self, text: str) -> None:
        return None


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def _fresh(make: Callable[[], PythonInstance], n: int) -> dict[str, float]:
    walls, cpus, firsts = [], [], []
    for _ in range(n):
        wall, cpu = time.perf_counter(), time.process_time()
        instance = make()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        started = time.perf_counter()
        instance.call(b"{}", "req", time.monotonic() + 5, 10**9, _Sink())
        firsts.append(time.perf_counter() - started)
        instance.close()
    return {
        "fresh_instance_ms": _median_ms(walls),
        "fresh_instance_cpu_ms": _median_ms(cpus),
        "first_handle_ms": _median_ms(firsts),
    }


def _floor_and_pooled(program: Any, n: int) -> dict[str, float]:
    """Median ms of a call on one kept instance (floor) and of lease + call + release on
    an InstancePool refilled outside the timing (pooled), with the worker's guest API."""
    from firebox.runtime.guest.component import PythonGuestProgram
    from firebox.runtime.limits import Limits
    from firebox.runtime.pool import InstancePool

    guests = PythonGuestProgram(program, Limits(fuel=10**9))
    trash: list[Any] = []
    pool = InstancePool(guests, min_ready=2, max_ready=4, reuse=False)
    pool.reaper = trash.append
    floor = guests.instantiate()
    floors, pooled = [], []
    try:
        for i in range(n + 3):
            ctx = CallContext("req", time.monotonic() + 5, LogBuffer(65536))
            started = time.perf_counter()
            floor.call("handle", b"{}", ctx)
            if i >= 3:
                floors.append(time.perf_counter() - started)
            for inst in trash:
                inst.close()
            trash.clear()
            while pool.deficit() > 0:
                pool.fill_one()
            started = time.perf_counter()
            inst, warm = pool.lease()
            inst.call("handle", b"{}", ctx)
            pool.release(inst)
            if i >= 3 and warm:
                pooled.append(time.perf_counter() - started)
    finally:
        pool.close()
        for inst in trash:
            inst.close()
        floor.close()
    return {"floor_ms": _median_ms(floors), "pooled_ms": _median_ms(pooled)}


def _per_call_cpu(program: Any, reset: Any, n: int) -> dict[str, float]:
    """Median CPU ms of one invocation's instance work with fresh isolation, both ways,
    interleaved: a new instance per call from the snapshot on the serving engine
    (instantiate + call + close) and one instance reset in place (call + recycle);
    empty when this platform cannot reset in place (`reset` is None)."""
    if reset is None:
        return {}
    kept = reset.instantiate()
    fresh, recycled, recycle_only = [], [], []
    try:
        for _ in range(n):
            cpu = time.thread_time()
            instance = program.instantiate()
            instance.call(b"{}", "req", time.monotonic() + 5, 10**9, _Sink())
            instance.close()
            fresh.append(time.thread_time() - cpu)
            cpu = time.thread_time()
            kept.call(b"{}", "req", time.monotonic() + 5, 10**9, _Sink())
            between = time.thread_time()
            if not kept.recycle():
                raise AssertionError("an instance that answered normally was not recycled")
            recycled.append(time.thread_time() - cpu)
            recycle_only.append(time.thread_time() - between)
    finally:
        kept.close()
    return {
        "new_per_call_cpu_ms": _median_ms(fresh),
        "reset_per_call_cpu_ms": _median_ms(recycled),
        "recycle_cpu_ms": _median_ms(recycle_only),
    }


def _uss_per_instance(make: Callable[[], PythonInstance], live: int) -> float:
    process = psutil.Process()
    gc.collect()
    before = process.memory_full_info().uss
    held = []
    for _ in range(live):
        instance = make()
        instance.call(b"{}", "req", time.monotonic() + 5, 10**9, _Sink())
        held.append(instance)
    after = process.memory_full_info().uss
    for instance in held:
        instance.close()
    return float(round((after - before) / live / 2**20, 2))


def measure(n: int, live: int) -> dict[str, Any]:
    """Return the numbers of both handlers, both routes."""
    interpreter = build_interpreter()
    split = split_interpreter(interpreter)
    cache_root = default_cache_dir() / "bench-compiled"
    serving = build_engine(SETTINGS)
    EpochTicker(serving)
    cache = CompiledCache(cache_root, SETTINGS)
    started = time.perf_counter()
    capture_engine = CaptureEngine(split, cache_root)
    capture_engine_s = time.perf_counter() - started
    full = cache.load_component(serving, sha256(interpreter.read_bytes()), interpreter)
    results: dict[str, Any] = {"capture_engine_ready_s": round(capture_engine_s, 2)}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        artifacts = ArtifactStore(data)
        digests = store_split(artifacts, split)
        # The split component is compiled once for this engine, kept across runs.
        local_cache = cache
        builder = SnapshotBuilder(
            capture_engine, serving, SETTINGS.fingerprint(), artifacts, local_cache,
            SnapshotIndex(data),
        )  # fmt: skip
        for name, source in HANDLERS.items():
            folder = data / name
            folder.mkdir()
            (folder / "main.py").write_text(source)
            bundle = bundle_python_function(folder, "main.handler")
            bundle_digest = artifacts.put(bundle)
            config = PythonFunctionConfig(function_name=name)
            started = time.perf_counter()
            ref = builder.ensure(bundle_digest, "main.handler", config)
            deploy_s = time.perf_counter() - started
            capture = builder.last_capture
            assert capture is not None
            program = load_snapshot_program(
                serving, artifacts, local_cache, digests, ref.digest, config, bundle_digest
            )
            reset_program = load_reset_program(
                artifacts, data, digests.component, digests.main_module, digests.import_name,
                ref.digest, config, bundle,
            )  # fmt: skip
            compiled = local_cache.path(ref.digest, "module")
            today = PythonProgram(serving, full, bundle, "main.handler", config)
            results[name] = {
                "deploy_s": round(deploy_s, 3),
                "capture_phases_ms": {k: round(v * 1000, 1) for k, v in capture.seconds.items()},
                "memory_mib": round(ref.memory_bytes / 2**20, 1),
                "snapshot_wasm_mb": round(artifacts.path(ref.digest).stat().st_size / 1e6, 1),
                "snapshot_cwasm_mb": round(compiled.stat().st_size / 1e6, 1),
                "snapshot": {
                    **_fresh(program.instantiate, n),
                    **_floor_and_pooled(program, n),
                    "uss_per_live_instance_mib": _uss_per_instance(program.instantiate, live),
                    **_per_call_cpu(program, reset_program, n),
                },
                "today_instantiate_load": {
                    **_fresh(today.instantiate, max(3, n // 5)),
                    "uss_per_live_instance_mib": _uss_per_instance(today.instantiate, live // 2),
                },
            }
            print(json.dumps({name: results[name]}), flush=True)
    return results


def _compile_once(wasm: bytes, strategy: str) -> float:
    engine = _engine(strategy)
    started = time.perf_counter()
    wasmtime.component.Component(engine, wasm)
    return round(time.perf_counter() - started, 2)


def compilers() -> dict[str, Any]:
    """Return the one-time compile time of both interpreter forms per compiler."""
    interpreter = build_interpreter()
    split = split_interpreter(interpreter)
    out: dict[str, Any] = {}
    for label, path in (("full", interpreter), ("split", split.component)):
        wasm = path.read_bytes()
        for strategy in ("speed", "none", "winch"):
            out[f"{label}/{strategy}_s"] = _compile_once(wasm, strategy)
            print(json.dumps({f"{label}/{strategy}_s": out[f"{label}/{strategy}_s"]}), flush=True)
    return out


def _engine(strategy: str) -> wasmtime.Engine:
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.wasm_component_model = True
    if strategy == "winch":
        winch_strategy(config)
    else:
        config.cranelift_opt_level = strategy
    engine = wasmtime.Engine(config)
    EpochTicker(engine)
    return engine


def run_speed() -> dict[str, Any]:
    """Return how fast guest Python runs per compiler: the heavy handler's init work done
    in its 300 ms (hash-table entries), and a warm `handle` of the hello handler."""
    interpreter = build_interpreter()
    wasm = interpreter.read_bytes()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bundles = {}
        for name, source in HANDLERS.items():
            (Path(tmp) / name).mkdir()
            (Path(tmp) / name / "main.py").write_text(source)
            bundles[name] = bundle_python_function(Path(tmp) / name, "main.handler")
        for strategy in ("speed", "winch"):
            engine = _engine(strategy)
            component = wasmtime.component.Component(engine, wasm)
            config = PythonFunctionConfig(function_name="speed")
            heavy = PythonProgram(engine, component, bundles["heavy"], "main.handler", config)
            instance = heavy.instantiate()
            entries = json.loads(instance.call(b"{}", "r", time.monotonic() + 5, 10**9, _Sink()))
            instance.close()
            hello = PythonProgram(engine, component, bundles["hello"], "main.handler", config)
            instance = hello.instantiate()
            warm = []
            for _ in range(50):
                started = time.perf_counter()
                instance.call(b"{}", "r", time.monotonic() + 5, 10**9, _Sink())
                warm.append(time.perf_counter() - started)
            instance.close()
            out[strategy] = {
                "init_work_in_300ms": entries["entries"],
                "warm_handle_ms": _median_ms(warm),
            }
            print(json.dumps({strategy: out[strategy]}), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=30, help="fresh instances per route")
    parser.add_argument("--live", type=int, default=40, help="live instances for USS")
    parser.add_argument("--compilers", action="store_true", help="also time one-time compiles")
    parser.add_argument("--speed", action="store_true", help="only: guest speed per compiler")
    args = parser.parse_args()
    if args.speed:
        print(json.dumps(run_speed(), indent=2))
        return
    results = {"routes": measure(args.n, args.live)}
    if args.compilers:
        results["compilers"] = compilers()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
