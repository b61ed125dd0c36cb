"""Case `startup`: the ladder from compiling a guest to calling a ready instance (bench).

Every rung uses firebox's own code on the same WAT echo guest (ABI v1) and the same
~100-byte JSON payload: compile from scratch, load from the compiled cache, a fresh
instance per call, a pooled ready instance, the floor (one instance called again and
again), and the whole dispatch through a real worker process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import wasmtime
from firebox.runtime.artifacts import ArtifactStore, CompiledCache, compile_module
from firebox.runtime.config import NodeConfig
from firebox.runtime.engine import EngineSettings
from firebox.runtime.guest.core import CoreInstance, CoreProgram
from firebox.runtime.guest.engine import EpochTicker, build_engine
from firebox.runtime.guest.protocol import CallContext
from firebox.runtime.host.log import LogBuffer
from firebox.runtime.limits import Limits
from firebox.runtime.pool import InstancePool, PoolFiller
from firebox.runtime.specs import FunctionSpec, InvokeRequest
from firebox.runtime.supervisor import Supervisor

from bench.cases import CaseResult
from bench.measure import Row, interleave, ratio

TITLE = "Startup ladder: WAT echo guest (ABI v1)"

GUEST = Path(__file__).resolve().parents[2] / "tests" / "guests" / "echo.wat"
C_GUEST = Path(__file__).resolve().parents[1] / "guests" / "echo.c"
C_FLAGS = ["--target=wasm32-wasi", "-O2", "-nostartfiles", "-Wl,--no-entry"]
C_RUNGS = ("compile", "cached", "fresh", "pooled", "floor")
EXPORT = "handle"
# One payload for every rung, about 100 bytes of JSON, as a small API request would be.
PAYLOAD = json.dumps(
    {
        "id": "bench-0001",
        "user": {"name": "Ada Lovelace", "id": 1815},
        "items": [1, 2, 3, 5, 8],
        "note": "hello, firebox",
    },
    separators=(",", ":"),
).encode()
# A ready instance must show up within this long after the filler is poked.
READY_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 3.0

# (full, quick) iteration counts per row; warm-up is a tenth of full, at least 5.
ITERATIONS: dict[str, tuple[int, int]] = {
    "compile": (500, 100),
    "cached": (2000, 150),
    "fresh": (5000, 300),
    "pooled": (5000, 300),
    "floor": (20000, 1000),
    "worker": (3000, 200),
}
ROUNDS = (5, 2)

LABELS = {
    "compile": "(a) compile from scratch + instantiate + call",
    "cached": "(b) load from compiled cache + instantiate + call",
    "fresh": "(c) fresh instance per invocation (instantiate + call + close)",
    "pooled": "(d) pooled ready instance (lease + call + release)",
    "floor": "(e) floor: call again on one already-made instance",
    "worker": "(f) via worker process (Supervisor.invoke, pooled)",
}
NOTES = {
    "compile": "compile_module + CoreProgram (linker, instantiate_pre) + instantiate + call"
    " + close",
    "cached": "CompiledCache.load_module (deserialize_file, mmap) + CoreProgram + instantiate"
    " + call + close",
    "fresh": "CoreProgram.instantiate + call + close; the module is already compiled",
    "pooled": "InstancePool.lease (asserted warm) + call + release (which closes the instance,"
    " isolation fresh); a PoolFiller refills between iterations, outside the timing",
    "floor": "CoreInstance.call on one instance kept across calls (isolation reuse)",
    "worker": "asyncio Supervisor.invoke round trip to 1 worker process (msgpack over a"
    " socketpair), pooled instance asserted warm; refilled between iterations",
}


def _ctx() -> CallContext:
    return CallContext("bench", time.monotonic() + CALL_TIMEOUT_S, LogBuffer(64 * 1024))


def _check(output: bytes) -> None:
    if output != PAYLOAD:
        raise AssertionError(f"the echo guest returned {output[:80]!r}, not the payload")


def _wait_ready(pool: InstancePool, filler: PoolFiller) -> None:
    filler.poke()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while pool.snapshot().ready < 1:
        if time.monotonic() > deadline:
            raise AssertionError(f"the pool had no ready instance after {READY_TIMEOUT_S}s")
        time.sleep(0.0002)


def build_c(out: Path) -> tuple[bytes | None, str]:
    """Compile the C echo guest with clang for wasm32-wasi; return (wasm, how) or (None, why)."""
    clang = shutil.which("clang")
    if clang is None:
        return None, "clang is not installed (Debian: clang lld wasi-libc libclang-rt-dev-wasm32)"
    target = out / "echo-c.wasm"
    try:
        proc = subprocess.run(
            [clang, *C_FLAGS, "-o", str(target), str(C_GUEST)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"clang failed: {exc}"
    if proc.returncode != 0 or not target.exists():
        return None, f"clang --target=wasm32-wasi failed: {proc.stderr.strip()[-300:]}"
    version = subprocess.run([clang, "--version"], capture_output=True, text=True).stdout
    return target.read_bytes(), f"{version.splitlines()[0]}: clang {' '.join(C_FLAGS)}"


def run(quick: bool) -> CaseResult:
    """Measure every rung of the ladder and return the rows and their ratios."""
    pick = 1 if quick else 0
    counts = {key: value[pick] for key, value in ITERATIONS.items()}
    warmups = {
        key: max(5, value[0] // 10 if not quick else value[1] // 10)
        for key, value in ITERATIONS.items()
    }
    settings = EngineSettings()
    limits = Limits()
    wasm = bytes(wasmtime.wat2wasm(GUEST.read_text()))
    rows = {key: Row(key, LABELS[key], notes=NOTES[key]) for key in LABELS}

    with tempfile.TemporaryDirectory(prefix="firebox-bench-") as tmp:
        root = Path(tmp)
        store = ArtifactStore(root)
        digest = store.put(wasm)
        wasm_path = store.path(digest)
        _in_process(
            rows, counts, warmups, ROUNDS[pick], settings, limits, wasm, root, digest, wasm_path
        )
        asyncio.run(
            _via_worker(
                rows["worker"], counts["worker"], warmups["worker"], settings, limits, root, digest
            )
        )
        c_wasm, c_how = build_c(root)
        if c_wasm is not None:
            c_rows = {
                key: Row(f"c/{key}", "C: " + LABELS[key], notes=NOTES[key]) for key in C_RUNGS
            }
            c_digest = store.put(c_wasm)
            _in_process(
                c_rows,
                counts,
                warmups,
                ROUNDS[pick],
                settings,
                limits,
                c_wasm,
                root,
                c_digest,
                store.path(c_digest),
            )
            rows.update({f"c/{key}": row for key, row in c_rows.items()})

    med = {key: row.summary()["median_us"] for key, row in rows.items()}
    p99 = {key: row.summary()["p99_us"] for key, row in rows.items()}
    return CaseResult(
        name="startup",
        title=TITLE,
        description=(
            "Each row is one invocation of the same echo guest with the same payload,"
            " measured in this process with firebox's own engine, cache, guest and pool code"
            " (rows a-e, interleaved in rounds), then through a real worker process (row f);"
            " then rows a-e again for the same echo guest written in C (clang, wasm32-wasi),"
            " when clang is installed. The Python rungs are in the `python` case."
        ),
        rows=list(rows.values()),
        ratios={
            "pooled/floor": (ratio(med["pooled"], med["floor"]), "median (d) / (e); target <= 1.2"),
            "fresh/floor": (ratio(med["fresh"], med["floor"]), "median (c) / (e)"),
            "pooled/floor p99": (ratio(p99["pooled"], p99["floor"]), "p99 (d) / (e)"),
            "cached/compile": (ratio(med["cached"], med["compile"]), "median (b) / (a)"),
            "worker/pooled": (ratio(med["worker"], med["pooled"]), "median (f) / (d)"),
            "worker/floor": (ratio(med["worker"], med["floor"]), "median (f) / (e)"),
            **(
                {
                    "C pooled/floor": (
                        ratio(med["c/pooled"], med["c/floor"]),
                        "C guest: median (d) / (e)",
                    ),
                    "C fresh/floor": (
                        ratio(med["c/fresh"], med["c/floor"]),
                        "C guest: median (c) / (e)",
                    ),
                    "C fresh / WAT fresh": (
                        ratio(med["c/fresh"], med["fresh"]),
                        "median (c) of the C guest / of the WAT guest",
                    ),
                }
                if "c/fresh" in med
                else {}
            ),
        },
        config={
            "guest": str(GUEST.relative_to(GUEST.parents[2])),
            "wasm_bytes": len(wasm),
            "c_guest": str(C_GUEST.relative_to(C_GUEST.parents[2])),
            "c_build": c_how,
            "c_wasm_bytes": len(c_wasm) if c_wasm is not None else None,
            "export": EXPORT,
            "payload_bytes": len(PAYLOAD),
            "payload": PAYLOAD.decode(),
            "engine_settings": asdict(settings),
            "limits": limits.to_dict(),
            "iterations": counts,
            "warmup": warmups,
            "rounds": ROUNDS[pick],
            "clock": "time.perf_counter_ns",
            "gc": "enabled (collected before each row's warm-up)",
        },
        peers={
            "in-process (rows a-e)": {
                "engine": "firebox.runtime.guest.engine.build_engine + EpochTicker",
                "cache": "CompiledCache in a temp dir",
                "pool": "InstancePool(min_ready=1, max_ready=1, reuse=False) + PoolFiller",
            },
            "worker process (row f)": {
                "supervisor": "Supervisor(NodeConfig(workers=1))",
                "spec": {"provisioned": 1, "concurrency": 8, "isolation": "fresh"},
            },
        },
    )


def _in_process(
    rows: dict[str, Row],
    counts: dict[str, int],
    warmups: dict[str, int],
    rounds: int,
    settings: EngineSettings,
    limits: Limits,
    wasm: bytes,
    root: Path,
    digest: str,
    wasm_path: Path,
) -> None:
    engine = build_engine(settings)
    ticker = EpochTicker(engine)
    cache = CompiledCache(root, settings)
    cache.load_module(engine, digest, wasm_path)  # the miss that fills the cache
    program = CoreProgram(engine, compile_module(engine, wasm), limits)
    pool = InstancePool(program, min_ready=1, max_ready=1, reuse=False)
    filler = PoolFiller()
    filler.add("echo", pool)
    floor: CoreInstance = program.instantiate()
    clock = time.perf_counter_ns

    def compile_once(row: Row | None) -> None:
        ctx = _ctx()
        t0 = clock()
        prog = CoreProgram(engine, compile_module(engine, wasm), limits)
        inst = prog.instantiate()
        out, _ = inst.call(EXPORT, PAYLOAD, ctx)
        inst.close()
        t1 = clock()
        _check(out)
        if row is not None:
            row.samples_ns.append(t1 - t0)

    def cached_once(row: Row | None) -> None:
        ctx = _ctx()
        t0 = clock()
        prog = CoreProgram(engine, cache.load_module(engine, digest, wasm_path), limits)
        inst = prog.instantiate()
        out, _ = inst.call(EXPORT, PAYLOAD, ctx)
        inst.close()
        t1 = clock()
        _check(out)
        if row is not None:
            row.samples_ns.append(t1 - t0)

    def fresh_once(row: Row | None) -> None:
        ctx = _ctx()
        t0 = clock()
        inst = program.instantiate()
        out, _ = inst.call(EXPORT, PAYLOAD, ctx)
        inst.close()
        t1 = clock()
        _check(out)
        if row is not None:
            row.samples_ns.append(t1 - t0)

    def pooled_once(row: Row | None) -> None:
        _wait_ready(pool, filler)
        ctx = _ctx()
        t0 = clock()
        inst, warm = pool.lease()
        out, _ = inst.call(EXPORT, PAYLOAD, ctx)
        pool.release(inst)
        t1 = clock()
        if not warm:
            raise AssertionError("the pool had no ready instance: this was a cold start")
        _check(out)
        if row is not None:
            row.samples_ns.append(t1 - t0)

    def floor_once(row: Row | None) -> None:
        ctx = _ctx()
        t0 = clock()
        out, _ = floor.call(EXPORT, PAYLOAD, ctx)
        t1 = clock()
        _check(out)
        if row is not None:
            row.samples_ns.append(t1 - t0)

    once: dict[str, Callable[[Row | None], None]] = {
        "compile": compile_once,
        "cached": cached_once,
        "fresh": fresh_once,
        "pooled": pooled_once,
        "floor": floor_once,
    }

    def runner(fn: Callable[[Row | None], None]) -> Callable[[Row, int], None]:
        def run_chunk(row: Row, n: int) -> None:
            for _ in range(n):
                fn(row)

        return run_chunk

    try:
        for key, fn in once.items():
            gc.collect()
            for _ in range(warmups[key]):
                fn(None)
            rows[key].warmup = warmups[key]
        hits = cache.stats.hits
        interleave(
            [(rows[key], runner(fn)) for key, fn in once.items()],
            lambda row: counts[row.key.split("/")[-1]],
            rounds,
        )
        if cache.stats.hits - hits != counts["cached"] or cache.stats.misses != 1:
            raise AssertionError(f"row (b) did not always hit the compiled cache: {cache.stats}")
    finally:
        filler.stop()
        pool.close()
        floor.close()
        ticker.stop()


async def _via_worker(
    row: Row,
    count: int,
    warmup: int,
    settings: EngineSettings,
    limits: Limits,
    root: Path,
    digest: str,
) -> None:
    key = "echo:$LATEST"
    spec = FunctionSpec(
        name="echo",
        version="$LATEST",
        kind="module",
        digest=digest,
        handler="",
        export=EXPORT,
        limits=limits,
        provisioned=1,
        concurrency=8,
        isolation="fresh",
    )
    sup = Supervisor(NodeConfig(data_dir=root, workers=1), settings)
    await sup.start()
    try:
        await sup.load(key, spec)
        clock = time.perf_counter_ns

        async def wait_ready() -> None:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                stats = await sup.stats()
                if stats and stats[0]["pools"][key]["ready"] >= 1:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError("the worker's pool had no ready instance in time")
                await asyncio.sleep(0.0002)

        async def once(record: bool) -> None:
            await wait_ready()
            request = InvokeRequest(
                key=key,
                request_id="r",
                payload=PAYLOAD,
                export=EXPORT,
                limits=dataclasses.replace(limits, timeout_s=CALL_TIMEOUT_S),
                name="echo",
                version="$LATEST",
                spec=spec,
            )
            t0 = clock()
            reply = await sup.invoke(request)
            t1 = clock()
            if not reply.ok:
                raise AssertionError(f"the worker answered an error: {reply.error}")
            if not reply.warm:
                raise AssertionError("the worker's pool had no ready instance: a cold start")
            _check(reply.output)
            if record:
                row.samples_ns.append(t1 - t0)

        gc.collect()
        for _ in range(warmup):
            await once(False)
        row.warmup = warmup
        for _ in range(count):
            await once(True)
    finally:
        await sup.stop()
