"""Case `python`: a hello Python handler from deploy to the warm call, in one run (bench).

`examples/hello-python` (a Lambda handler that logs one line and answers a greeting)
runs on the shared Python interpreter component. Rows: the deploy over HTTP (and the
client's bundling), the first invocation on a freshly started node with and without the
compiled cache, then in this process with firebox's own code: a fresh instance per call,
a pooled ready instance, the floor (one instance called again and again), and finally
the warm invocation over HTTP through the native invoke API.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from firebox.compiler.build import build_function
from firebox.compiler.interpreter import build_interpreter
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.catalog import function_spec
from firebox.runtime.engine import EngineSettings
from firebox.runtime.guest.engine import EpochTicker, build_engine
from firebox.runtime.guest.loading import load_program
from firebox.runtime.guest.protocol import CallContext, GuestInstance
from firebox.runtime.host.log import LogBuffer
from firebox.runtime.manifest import parse_manifest
from firebox.runtime.pool import InstancePool
from firebox.runtime.prepare import Preparer
from firebox.runtime.storage.registry import FunctionRecord
from firebox.sdk.client import Client

from bench import python_heavy, snapshot_measure
from bench.cases import CaseResult
from bench.measure import Row, interleave, ratio
from bench.nodes import Node, persistent_compiled_dir, running, save_compiled, seed_compiled

TITLE = "Python handler: examples/hello-python from deploy to the warm call"

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello-python"
EVENT = {"name": "bench"}
PAYLOAD = json.dumps(EVENT).encode()
EXPECTED_MESSAGE = "Hello, bench!"
CALL_TIMEOUT_S = 3.0
START_TIMEOUT_S = 60.0
# A node with no compiled interpreter compiles it (~20 s here) before it can serve.
COLD_START_TIMEOUT_S = 180.0
READY_TIMEOUT_S = 10.0
FIRST_INVOCATION_TARGET_MS = 20.0

# (full, quick) counts.
DEPLOYS = (20, 4)
RESTARTS_CACHED = (5, 2)
RESTARTS_UNCACHED = (1, 0)
ITERATIONS: dict[str, tuple[int, int]] = {
    "fresh": (300, 30),
    "pooled": (300, 30),
    "floor": (3000, 200),
    "http": (500, 50),
    "http_b2b": (300, 30),
}
WARMUP = {"fresh": (20, 3), "pooled": (20, 3), "floor": (100, 10), "http": (30, 5)}
ROUNDS = (3, 1)
SNAPSHOT_N = (30, 10)  # fresh instances per route (bench.snapshot_measure)
SNAPSHOT_LIVE = (40, 10)  # live instances for USS

LABELS = {
    "bundle": "(1a) client bundling (build_function)",
    "deploy": "(1b) deploy: POST /v1/functions (server side)",
    "healthz_cached": "(2a) node start -> /healthz answers (compiled cache present)",
    "first_cached": "(2b) first invocation after /healthz (compiled cache present)",
    "healthz_uncached": "(3a) node start -> /healthz answers (compiled cache absent)",
    "first_uncached": "(3b) first invocation after /healthz (compiled cache absent)",
    "fresh": "(4) fresh instance in process (instantiate + call + close)",
    "pooled": "(5) pooled ready instance in process (lease + call + release)",
    "floor": "(6) floor: call again on one already-made instance",
    "http": "(7) HTTP native invoke, warm (ready instance waited for)",
    "http_b2b": "(7b) HTTP native invoke, back to back (no wait between calls)",
}
NOTES = {
    "bundle": "firebox.compiler.build.build_function(examples/hello-python): zip + validate",
    "deploy": "Client.deploy(manifest, code) wall time, distinct names, on a running node whose"
    " interpreter is already compiled (the first deploy of the run is a warm-up)",
    "healthz_cached": "Popen(firebox serve) until GET /healthz is 200, data dir with the"
    " function and D/compiled present",
    "first_cached": "the first Client.invoke once /healthz answered; the node loads functions in"
    " the background, so this may include loading the pool",
    "healthz_uncached": "as (2a) with D/compiled deleted and FIREBOX_COMPILED_CACHE an empty dir",
    "first_uncached": "as (2b), the interpreter is compiled again (~20 s) before the call can run",
    "fresh": "load_program(spec).instantiate() + call + close; the component is compiled",
    "pooled": "InstancePool(min_ready=2, max_ready=4).lease() (asserted warm) + call + release;"
    " refilled and discarded instances closed between iterations, outside the timing",
    "floor": "GuestInstance.call on one instance kept across calls",
    "http": "Client.invoke over keep-alive HTTP (msgpack); before each call the harness waits"
    " (outside the timing) until GET .../provisioned shows a ready instance; asserted warm",
    "http_b2b": "Client.invoke again and again with no pause: what a client at c=1 sees;"
    " the cold ones (pool not refilled yet) are counted in the table",
}


def check_hello(payload: Any) -> None:
    """Raise AssertionError unless `payload` is hello-python's answer to EVENT."""
    if not isinstance(payload, dict) or payload.get("message") != EXPECTED_MESSAGE:
        raise AssertionError(f"hello-python answered {payload!r}")


# --- the case -------------------------------------------------------------------------


def run(quick: bool) -> CaseResult:
    """Measure every row and return them with their ratios."""
    pick = 1 if quick else 0
    rows = {key: Row(key, LABELS[key], notes=NOTES[key]) for key in LABELS}
    tables: dict[str, list[dict[str, Any]]] = {}
    extra: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="firebox-bench-python-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        data_dir.mkdir()
        extra["compiled_seeded_files"] = seed_compiled(data_dir)
        built = build_function(EXAMPLE)
        name = str(built.manifest["name"])
        log = tmp / "firebox.log"

        # (1) deploys, (7) HTTP invocations on one running node.
        with running(Node(data_dir, log)) as node:
            node.wait_healthy()
            with node.client() as client:
                started = time.perf_counter_ns()
                client.deploy(built.manifest, built.code)
                extra["first_deploy_ms"] = (time.perf_counter_ns() - started) / 1e6
                _deploys(client, rows, DEPLOYS[pick])
                _http(client, name, rows, tables, pick)
        save_compiled(data_dir)

        # (2) restarts with the compiled cache present.
        for _ in range(RESTARTS_CACHED[pick]):
            _restart(data_dir, log, name, rows["healthz_cached"], rows["first_cached"], {})
        # (3) restarts with it absent.
        for _ in range(RESTARTS_UNCACHED[pick]):
            shutil.rmtree(data_dir / "compiled", ignore_errors=True)
            empty = Path(tempfile.mkdtemp(dir=tmp, prefix="compiled-"))
            _restart(
                data_dir,
                log,
                name,
                rows["healthz_uncached"],
                rows["first_uncached"],
                {"FIREBOX_COMPILED_CACHE": str(empty)},
                timeout_s=COLD_START_TIMEOUT_S,
            )
        if not RESTARTS_UNCACHED[pick]:
            rows["healthz_uncached"].notes = rows["first_uncached"].notes = (
                "skipped with --quick (recompiling the interpreter takes ~20 s)"
            )

        # (4)-(6) in this process.
        extra.update(_in_process(rows, built.manifest, built.code, tmp, pick))

        # (8)-(10) heavy init and boto3 on another node; the snapshot rows in process.
        heavy_rows, heavy_ratios, heavy_extra = python_heavy.measure(tmp, pick)
        snapshots = snapshot_measure.measure(SNAPSHOT_N[pick], SNAPSHOT_LIVE[pick])

    if not RESTARTS_UNCACHED[pick]:
        del rows["healthz_uncached"], rows["first_uncached"]
    med = {key: row.summary()["median_us"] for key, row in rows.items()}
    p99 = {key: row.summary()["p99_us"] for key, row in rows.items()}
    ratios: dict[str, tuple[float, str]] = {
        "pooled/floor": (ratio(med["pooled"], med["floor"]), "median (5) / (6); target <= 1.2"),
        "pooled/floor p99": (ratio(p99["pooled"], p99["floor"]), "p99 (5) / (6)"),
        "fresh/pooled": (ratio(med["fresh"], med["pooled"]), "median (4) / (5)"),
        "fresh/floor": (ratio(med["fresh"], med["floor"]), "median (4) / (6)"),
        "first invocation ms (cache present)": (
            med["first_cached"] / 1000,
            f"median (2b) in ms; target {FIRST_INVOCATION_TARGET_MS:g} ms",
        ),
        "first invocation / target": (
            ratio(med["first_cached"] / 1000, FIRST_INVOCATION_TARGET_MS),
            f"median (2b) / {FIRST_INVOCATION_TARGET_MS:g} ms; <= 1 meets the target",
        ),
        "http warm/pooled": (ratio(med["http"], med["pooled"]), "median (7) / (5)"),
        "deploy ms": (med["deploy"] / 1000, "median (1b) in ms"),
    }
    ratios.update(heavy_ratios)
    snap = {k: snapshots[k]["snapshot"] for k in ("hello", "heavy")}
    ratios["fresh instance heavy/hello (in process)"] = (
        ratio(snap["heavy"]["fresh_instance_ms"], snap["hello"]["fresh_instance_ms"]),
        "median wall of a fresh instance from each snapshot; target <= 1.5",
    )
    tables["heavy init and boto3: warm and cold replies"] = heavy_extra["table"]
    tables["snapshots in process (bench.snapshot_measure): hello vs 300 ms init"] = [
        _snapshot_row(name, numbers) for name, numbers in snapshots.items()
        if isinstance(numbers, dict)
    ]  # fmt: skip
    if "first_uncached" in med:
        ratios["first invocation uncached/cached"] = (
            ratio(med["first_uncached"], med["first_cached"]),
            "median (3b) / (2b)",
        )
    return CaseResult(
        name="python",
        title=TITLE,
        description=(
            "One Python handler (examples/hello-python, event {'name': 'bench'}) measured from"
            " its deploy to its warm call: rows 1-3 and 7 drive `firebox serve` subprocesses"
            " on 127.0.0.1 with the SDK Client; rows 4-6 run in this process with firebox's"
            " own engine, compiled cache, program loader and pool (interleaved in rounds)."
            " Every answer is checked."
        ),
        rows=[*rows.values(), *heavy_rows],
        ratios=ratios,
        tables=tables,
        config={
            "example": str(EXAMPLE.relative_to(REPO)),
            "bundle_bytes": len(built.code),
            "event": EVENT,
            "deploys": DEPLOYS[pick],
            "restarts_cached": RESTARTS_CACHED[pick],
            "restarts_uncached": RESTARTS_UNCACHED[pick],
            "iterations": {k: v[pick] for k, v in ITERATIONS.items()},
            "warmup": {k: v[pick] for k, v in WARMUP.items()},
            "rounds": ROUNDS[pick],
            "workers": os.environ.get("FIREBOX_WORKERS", f"{os.cpu_count()} (cpu count)"),
            "persistent_compiled_cache": str(persistent_compiled_dir()),
            **extra,
        },
        peers={
            "firebox serve (rows 1-3, 7)": {
                "command": "firebox serve --host 127.0.0.1 --port P --data-dir D",
                "client": "firebox.sdk.client.Client (httpx, msgpack)",
                "function": "hello-python: provisioned 1, isolation fresh",
            },
            "in-process (rows 4-6)": {
                "engine": "build_engine(EngineSettings()) + EpochTicker",
                "program": "firebox.runtime.guest.loading.load_program(function_spec(...))",
                "pool": "InstancePool(min_ready=2, max_ready=4), filled synchronously",
            },
        },
    )


def _snapshot_row(name: str, numbers: dict[str, Any]) -> dict[str, Any]:
    snap, today = numbers["snapshot"], numbers["today_instantiate_load"]
    return {
        "handler": name,
        "capture + compile s": numbers["deploy_s"],
        "memory MiB": numbers["memory_mib"],
        "snapshot MB (wasm / compiled)": (
            f"{numbers['snapshot_wasm_mb']} / {numbers['snapshot_cwasm_mb']}"
        ),
        "fresh ms (wall / CPU)": f"{snap['fresh_instance_ms']} / {snap['fresh_instance_cpu_ms']}",
        "first handle ms": snap["first_handle_ms"],
        "pooled ms": snap["pooled_ms"],
        "floor ms": snap["floor_ms"],
        "USS MiB per ready instance": snap["uss_per_live_instance_mib"],
        "instance CPU ms per call, new / reset in place (recycle)": (
            f"{snap.get('new_per_call_cpu_ms')} / {snap.get('reset_per_call_cpu_ms')}"
            f" ({snap.get('recycle_cpu_ms')})"
        ),
        "without snapshot: fresh ms (wall / CPU)": (
            f"{today['fresh_instance_ms']} / {today['fresh_instance_cpu_ms']}"
        ),
        "without snapshot: USS MiB": today["uss_per_live_instance_mib"],
    }


def _deploys(client: Client, rows: dict[str, Row], count: int) -> None:
    clock = time.perf_counter_ns
    for i in range(count):
        t0 = clock()
        built = build_function(EXAMPLE)
        t1 = clock()
        manifest = {**built.manifest, "name": f"hello-python-{i}"}
        fn = client.deploy(manifest, built.code)
        t2 = clock()
        if fn.name != manifest["name"]:
            raise AssertionError(f"deployed {fn.name}, not {manifest['name']}")
        rows["bundle"].samples_ns.append(t1 - t0)
        rows["deploy"].samples_ns.append(t2 - t1)


def _wait_ready(client: Client, name: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        status = client.provisioned(name).get("$LATEST", {})
        if status.get("ready", 0) >= 1:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} had no ready instance after {READY_TIMEOUT_S}s")
        time.sleep(0.001)


def _http(
    client: Client,
    name: str,
    rows: dict[str, Row],
    tables: dict[str, list[dict[str, Any]]],
    pick: int,
) -> None:
    clock = time.perf_counter_ns
    counts = {"http": [0, 0], "http_b2b": [0, 0]}  # warm, cold

    def once(key: str, wait: bool, record: bool) -> None:
        if wait:
            _wait_ready(client, name)
        t0 = clock()
        result = client.invoke(name, EVENT)
        t1 = clock()
        if result.error:
            raise AssertionError(f"{name} failed: {result.error}")
        check_hello(result.payload)
        if not record:
            return
        counts[key][0 if result.warm else 1] += 1
        rows[key].samples_ns.append(t1 - t0)

    for _ in range(WARMUP["http"][pick]):
        once("http", True, False)
    rows["http"].warmup = WARMUP["http"][pick]
    for _ in range(ITERATIONS["http"][pick]):
        once("http", True, True)
    for _ in range(ITERATIONS["http_b2b"][pick]):
        once("http_b2b", False, True)
    if counts["http"][1]:
        raise AssertionError(f"{counts['http'][1]} warm-path invocations were cold starts")
    tables["HTTP invocations: warm and cold replies"] = [
        {"row": LABELS[key], "warm": warm, "cold": cold, "cold %": 100.0 * cold / (warm + cold)}
        for key, (warm, cold) in counts.items()
    ]


def _restart(
    data_dir: Path,
    log: Path,
    name: str,
    healthz_row: Row,
    first_row: Row,
    env: dict[str, str],
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    with running(Node(data_dir, log, env=env)) as node:
        healthz_row.samples_ns.append(node.wait_healthy())
        with node.client(timeout=timeout_s) as client:
            t0 = time.perf_counter_ns()
            result = client.invoke(name, EVENT)
            t1 = time.perf_counter_ns()
            if result.error:
                raise AssertionError(f"{name} failed after a restart: {result.error}")
            check_hello(result.payload)
            first_row.samples_ns.append(t1 - t0)


def _in_process(
    rows: dict[str, Row], manifest: dict[str, Any], code: bytes, tmp: Path, pick: int
) -> dict[str, Any]:
    root = tmp / "inproc"
    artifacts = ArtifactStore(root)
    interpreter = build_interpreter()
    digest = artifacts.put(interpreter.read_bytes())
    bundle_digest = artifacts.put(code)
    config = parse_manifest(manifest)
    settings = EngineSettings()
    record = FunctionRecord(config.name, "python", digest, bundle_digest, config.to_dict())
    spec = function_spec(record, snapshots=settings.fingerprint())
    engine = build_engine(settings)
    ticker = EpochTicker(engine)
    # The data dir's cache of the first node holds the compiled interpreter (same
    # fingerprint: the slot count is not part of it).
    seed_compiled(root)
    cache = CompiledCache(root, settings)
    # The node's deploy path: capture the version's post-init snapshot (once).
    t0 = time.perf_counter()
    ref = Preparer(settings, root, artifacts, None).snapshot(spec)
    capture_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    program = load_program(spec, engine, artifacts, cache)
    load_s = time.perf_counter() - t0
    trash: list[GuestInstance] = []
    pool = InstancePool(program, min_ready=2, max_ready=4, reuse=False)
    pool.reaper = trash.append
    floor = program.instantiate()
    clock = time.perf_counter_ns

    def ctx() -> CallContext:
        return CallContext(
            uuid.uuid4().hex, time.monotonic() + CALL_TIMEOUT_S, LogBuffer(64 * 1024)
        )

    def check(out: bytes) -> None:
        check_hello(json.loads(out))

    def fresh_once(row: Row | None) -> None:
        c = ctx()
        t0 = clock()
        inst = program.instantiate()
        out, _ = inst.call("handle", PAYLOAD, c)
        inst.close()
        t1 = clock()
        check(out)
        if row is not None:
            row.samples_ns.append(t1 - t0)

    def refill() -> None:
        for inst in trash:
            inst.close()
        trash.clear()
        while pool.deficit() > 0:
            pool.fill_one()

    def pooled_once(row: Row | None) -> None:
        refill()
        c = ctx()
        t0 = clock()
        inst, warm = pool.lease()
        out, _ = inst.call("handle", PAYLOAD, c)
        pool.release(inst)
        t1 = clock()
        if not warm:
            raise AssertionError("the pool had no ready instance: this was a cold start")
        check(out)
        if row is not None:
            row.samples_ns.append(t1 - t0)

    def floor_once(row: Row | None) -> None:
        c = ctx()
        t0 = clock()
        out, _ = floor.call("handle", PAYLOAD, c)
        t1 = clock()
        check(out)
        if row is not None:
            row.samples_ns.append(t1 - t0)

    once: dict[str, Callable[[Row | None], None]] = {
        "fresh": fresh_once,
        "pooled": pooled_once,
        "floor": floor_once,
    }

    def runner(fn: Callable[[Row | None], None]) -> Callable[[Row, int], None]:
        def chunk(row: Row, n: int) -> None:
            for _ in range(n):
                fn(row)

        return chunk

    try:
        for key, fn in once.items():
            gc.collect()
            for _ in range(WARMUP[key][pick]):
                fn(None)
            rows[key].warmup = WARMUP[key][pick]
        interleave(
            [(rows[key], runner(fn)) for key, fn in once.items()],
            lambda row: ITERATIONS[row.key][pick],
            ROUNDS[pick],
        )
    finally:
        refill()
        pool.close()
        for inst in trash:
            inst.close()
        floor.close()
        ticker.stop()
    return {
        "in_process_load_program_ms": round(load_s * 1000, 2),
        "in_process_snapshot_capture_ms": round(capture_s * 1000, 2),
        "snapshot_bytes_on_disk": artifacts.path(ref.digest).stat().st_size if ref else 0,
        "snapshot_memory_bytes": ref.memory_bytes if ref else 0,
        "in_process_cache": asdict(cache.stats),
        "engine_settings": asdict(settings),
        "spec": spec.to_wire(),
    }
