"""Case `scale`: 1, 100 and 1,000 deployed functions on one node (bench).

For each variant (WAT echo modules and hello-python bundles, each with identical code
and with distinct code per function) one `firebox serve` with FIREBOX_WORKERS=2 gets
functions deployed one after the other; at each checkpoint n the case records the
deploy times since the previous checkpoint, the data dir's growth, the RSS and USS of
the node and of its workers (psutil), and invocation latencies on a random sample.
Artifacts are content-addressed: identical code is stored (and compiled) once, so the
identical-code variants show the per-function overhead and the distinct ones the cost
of code that differs per function.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
from firebox.compiler.build import build_function
from firebox.runtime.errors import FireboxError
from firebox.sdk.client import Client

from bench.cases import CaseResult
from bench.cases.python import EVENT, EXAMPLE, check_hello
from bench.measure import Row, ratio
from bench.nodes import Node, running, save_compiled, seed_compiled

TITLE = "Scale: 1, 100 and 1,000 deployed functions on one node"

REPO = Path(__file__).resolve().parents[2]
ECHO_WAT = REPO / "tests" / "guests" / "echo.wat"
WORKERS = 2
CHECKPOINTS = ((1, 100, 1000), (1, 10))
SAMPLE = (50, 10)  # functions invoked per checkpoint
REPEATS = (3, 2)  # warm invocations of each sampled function
# Stop a variant at the checkpoint reached once it has run this long.
# Deploying stops when a variant's budget is spent (the numbers are then measured at the
# n that fitted): four variants must keep the whole suite under 15 minutes on 2 cores.
VARIANT_BUDGET_S = (75.0, 60.0)
POOLS_READY_TIMEOUT_S = 180.0
WARMUP_FUNCTIONS = 4
WAT_PAYLOAD = b'{"bench": "scale"}'


@dataclass(frozen=True)
class Variant:
    """What gets deployed n times."""

    key: str
    kind: str  # "wat" or "python"
    distinct: bool
    # The distinct-code variants only show what differs per function (disk, a compile
    # per WAT deploy): they stop at 100 so a full run stays within ~30 minutes.
    max_n: int = 1000

    @property
    def label(self) -> str:
        code = "distinct code" if self.distinct else "identical code"
        what = "WAT echo (tests/guests/echo.wat)" if self.kind == "wat" else "hello-python"
        return f"{what}, {code}"


VARIANTS = (
    Variant("wat", "wat", False),
    Variant("wat-distinct", "wat", True, max_n=100),
    Variant("python", "python", False),
    Variant("python-distinct", "python", True, max_n=100),
)


class Maker:
    """Builds the i-th function of a variant: (manifest, code)."""

    def __init__(self, variant: Variant, tmp: Path) -> None:
        self.variant = variant
        if variant.kind == "wat":
            self.wat = ECHO_WAT.read_text().rstrip()
            self.wat_code = build_function(ECHO_WAT).code
        else:
            self.folder = tmp / "hello-src"
            shutil.copytree(EXAMPLE, self.folder)
            self.source = (self.folder / "app.py").read_text()
            self.hello = build_function(self.folder)

    def make(self, name: str, i: int) -> tuple[dict[str, Any], bytes]:
        """Return the manifest and code of function `name` (code unique to `i` if distinct)."""
        if self.variant.kind == "wat":
            if not self.variant.distinct:
                return {"name": name}, self.wat_code
            # A unique (unused) global makes a different module, content hash and compile.
            assert self.wat.endswith(")")
            wat = f"{self.wat[:-1]}\n  (global $bench_unique i32 (i32.const {i})))\n"
            import wasmtime

            return {"name": name}, bytes(wasmtime.wat2wasm(wat))
        if not self.variant.distinct:
            return {**self.hello.manifest, "name": name}, self.hello.code
        (self.folder / "app.py").write_text(f"{self.source}\n# bench function {i}\n")
        built = build_function(self.folder)
        return {**built.manifest, "name": name}, built.code

    def check(self, result: Any) -> None:
        """Raise AssertionError unless an invocation answered what this function answers."""
        if result.error:
            raise AssertionError(f"invocation failed: {result.error}")
        if self.variant.kind == "wat":
            if result.raw != WAT_PAYLOAD and result.payload != {"bench": "scale"}:
                raise AssertionError(f"echo answered {result.raw[:80]!r}")
        else:
            check_hello(result.payload)

    @property
    def event(self) -> Any:
        return {"bench": "scale"} if self.variant.kind == "wat" else EVENT


def disk_usage(path: Path) -> tuple[int, int]:
    """Return (allocated bytes as du counts them, apparent bytes) of a tree (hard links once)."""
    seen: set[tuple[int, int]] = set()
    allocated = apparent = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            allocated += st.st_blocks * 512
            apparent += st.st_size
    return allocated, apparent


def memory(node_pid: int, client: Client) -> dict[str, int]:
    """RSS and USS of the node and (summed) of its workers, in bytes."""
    out = {"node_rss": 0, "node_uss": 0, "workers_rss": 0, "workers_uss": 0, "workers_pss": 0}
    info = psutil.Process(node_pid).memory_full_info()
    out["node_rss"], out["node_uss"] = info.rss, info.uss
    for worker in client.node()["workers"]:
        winfo = psutil.Process(int(worker["pid"])).memory_full_info()
        out["workers_rss"] += winfo.rss
        out["workers_uss"] += winfo.uss
        out["workers_pss"] += getattr(winfo, "pss", 0)
    return out


def pools(client: Client) -> tuple[int, dict[str, str]]:
    """Return the ready instances over all pools of all workers, and any fill errors."""
    ready = 0
    errors: dict[str, str] = {}
    for worker in client.node()["workers"]:
        ready += sum(int(p.get("ready", 0)) for p in worker["pools"].values())
        errors.update(worker.get("fill_errors") or {})
    return ready, errors


def wait_pools(client: Client, want: int, timeout_s: float) -> tuple[float, int, dict[str, str]]:
    """Wait until `want` instances are ready; return (seconds waited, ready, fill errors)."""
    started = time.monotonic()
    while True:
        ready, errors = pools(client)
        if ready >= want or time.monotonic() - started > timeout_s:
            return time.monotonic() - started, ready, errors
        time.sleep(0.1)


def run(quick: bool) -> CaseResult:
    """Deploy up to the largest checkpoint per variant and return rows, tables and ratios."""
    pick = 1 if quick else 0
    rows: list[Row] = []
    table: list[dict[str, Any]] = []
    ratios: dict[str, tuple[float, str]] = {}
    stopped: dict[str, str] = {}
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory(prefix=f"firebox-bench-scale-{variant.key}-") as tmp:
            try:
                _variant(variant, Path(tmp), pick, rows, table, ratios, stopped)
            except Exception as exc:  # keep the other variants' numbers; say what broke
                stopped[variant.key] = f"failed: {type(exc).__name__}: {str(exc)[:1500]}"
    return CaseResult(
        name="scale",
        title=TITLE,
        description=(
            f"One `firebox serve` (FIREBOX_WORKERS={WORKERS}) per variant; functions are"
            " deployed one at a time with the SDK Client, each with a distinct name; at"
            " each checkpoint n: deploy times since the previous checkpoint, data-dir growth"
            " and memory growth per function (against the node with only a warm-up function"
            " deployed), and invocations of a random sample of functions (their first"
            " invocation, then warm ones). Artifacts are content-addressed: with identical"
            " code the module or bundle is stored once, so disk per function is the registry"
            " row; the distinct variants add a unique global (WAT) or a unique comment"
            " (Python) to every function. Every Python function is provisioned 1 (the"
            " default), so at n functions the workers hold n ready Python instances: the"
            " workers' USS growth per function is the USS of one ready Python instance."
        ),
        rows=rows,
        ratios=ratios,
        tables={"per checkpoint (memory and disk per function = growth / n)": table},
        config={
            "workers": WORKERS,
            "checkpoints": list(CHECKPOINTS[pick]),
            "sample": SAMPLE[pick],
            "repeats": REPEATS[pick],
            "variant_budget_s": VARIANT_BUDGET_S[pick],
            "variants": [v.__dict__ for v in VARIANTS],
            "stopped_early": stopped,
            "memory": "psutil memory_full_info: RSS, USS (and PSS) of the node and of each"
            " worker (pids from GET /v1/node), summed; KiB per function = growth / n. Pages"
            " of the compiled interpreter mapped by both workers count in neither's USS, so"
            " the workers' PSS is the fairer per-function figure; USS is reported as asked",
            "disk": "allocated bytes (st_blocks) of the data dir, hard links once",
        },
        peers={
            "firebox serve": {
                "command": "firebox serve --host 127.0.0.1 --port P --data-dir D",
                "env": {"FIREBOX_WORKERS": WORKERS},
                "client": "firebox.sdk.client.Client",
            }
        },
    )


def _variant(
    variant: Variant,
    tmp: Path,
    pick: int,
    rows: list[Row],
    table: list[dict[str, Any]],
    ratios: dict[str, tuple[float, str]],
    stopped: dict[str, str],
) -> None:
    data_dir = tmp / "data"
    data_dir.mkdir()
    seed_compiled(data_dir)
    maker = Maker(variant, tmp)
    rng = random.Random(1234)
    checkpoints = tuple(n for n in CHECKPOINTS[pick] if n <= variant.max_n)
    clock = time.perf_counter_ns
    started = time.monotonic()
    env = {"FIREBOX_WORKERS": str(WORKERS)}
    if variant.kind == "wat":
        # A WAT-only node need not prepare the interpreter: its background compile (~20 s
        # or more) would otherwise land in the first measured deploy.
        env["FIREBOX_PREPARE_PYTHON"] = "0"
    node = Node(data_dir, tmp / "firebox.log", env=env)
    with running(node):
        node.wait_healthy()
        with node.client(timeout=300.0) as client:
            # Warm-up functions: the interpreter is prepared and every worker has loaded
            # code (a compiled file mapped by one worker counts in its USS, by two in none).
            for w in range(WARMUP_FUNCTIONS):
                manifest, code = maker.make(f"{variant.key}-warmup-{w}", -1 - w)
                client.deploy(manifest, code)
                client.invoke(manifest["name"], maker.event)
            wait_pools(client, WARMUP_FUNCTIONS, POOLS_READY_TIMEOUT_S)
            time.sleep(1.0)
            assert node.proc is not None
            base_mem = memory(node.proc.pid, client)
            base_disk = disk_usage(data_dir)
            names: list[str] = []
            invoked: set[str] = set()
            deploy_ns: list[int] = []
            prev = 0
            for target in checkpoints:
                n = target
                bracket: list[int] = []
                after_deploy: list[int] = []
                full = False
                for i in range(prev, target):
                    if i > 0 and time.monotonic() - started > VARIANT_BUDGET_S[pick]:
                        stopped[variant.key] = (
                            f"stopped at n={i}: over the {VARIANT_BUDGET_S[pick]:g}s budget"
                        )
                        full = True
                        n = i
                        break
                    name = f"{variant.key}-{i}"
                    manifest, code = maker.make(name, i)
                    t0 = clock()
                    try:
                        client.deploy(manifest, code)
                    except FireboxError as exc:  # the node is full: measure what fits
                        stopped[variant.key] = (
                            f"deploy {i + 1} refused ({type(exc).__name__}: {exc}); measured"
                            f" at n={i}"
                        )
                        full = True
                        n = i
                        break
                    bracket.append(clock() - t0)
                    names.append(name)
                    if i == target - 1:  # time to first invocation right after a deploy
                        t1 = clock()
                        result = client.invoke(name, maker.event)
                        after_deploy.append(clock() - t1)
                        maker.check(result)
                        invoked.add(name)
                deploy_ns.extend(bracket)
                prev = n
                if n == 0 or not bracket:
                    break
                if full:  # time to first invocation: the last function that fitted
                    t1 = clock()
                    result = client.invoke(names[-1], maker.event)
                    after_deploy.append(clock() - t1)
                    maker.check(result)
                    invoked.add(names[-1])
                waited, ready, errors = wait_pools(
                    client, n + WARMUP_FUNCTIONS, POOLS_READY_TIMEOUT_S
                )
                time.sleep(0.5)
                mem = memory(node.proc.pid, client)
                disk = disk_usage(data_dir)
                first, warm, cold, failed = _invoke_sample(client, maker, names, invoked, rng, pick)
                label = f"{variant.key} n={n}"
                rows += [
                    Row(
                        f"{variant.key}/{n}/deploy",
                        f"{label}: deploy (functions {n - len(bracket) + 1}-{n})",
                        bracket,
                    ),
                    Row(f"{variant.key}/{n}/first", f"{label}: first invocation (sample)", first),
                    Row(f"{variant.key}/{n}/warm", f"{label}: invocation (sample)", warm),
                ]
                table.append(
                    {
                        "variant": variant.key,
                        "n": n,
                        "deploy median ms": statistics.median(bracket) / 1e6,
                        "first invoke after deploy ms": after_deploy[0] / 1e6,
                        "pools ready": ready,
                        "pools ready wait s": round(waited, 2),
                        "disk KiB/fn": (disk[0] - base_disk[0]) / n / 1024,
                        "disk apparent KiB/fn": (disk[1] - base_disk[1]) / n / 1024,
                        "node RSS KiB/fn": (mem["node_rss"] - base_mem["node_rss"]) / n / 1024,
                        "node USS KiB/fn": (mem["node_uss"] - base_mem["node_uss"]) / n / 1024,
                        "workers RSS KiB/fn": (mem["workers_rss"] - base_mem["workers_rss"])
                        / n
                        / 1024,
                        "workers USS KiB/fn": (mem["workers_uss"] - base_mem["workers_uss"])
                        / n
                        / 1024,
                        "workers PSS KiB/fn": (mem["workers_pss"] - base_mem["workers_pss"])
                        / n
                        / 1024,
                        "workers USS MiB": mem["workers_uss"] / 2**20,
                        "node USS MiB": mem["node_uss"] / 2**20,
                        "cold in sample": cold,
                        "failed in sample": failed,
                        "fill errors": "; ".join(f"{k}: {v}" for k, v in errors.items())[:200],
                    }
                )
                if full:
                    break
                if ready < n + WARMUP_FUNCTIONS:
                    stopped[variant.key] = (
                        f"only {ready} of {n + WARMUP_FUNCTIONS} instances ready after"
                        f" {POOLS_READY_TIMEOUT_S:g}s at n={n}: {errors}"
                    )
                    break
                if n != checkpoints[-1] and time.monotonic() - started > VARIANT_BUDGET_S[pick]:
                    stopped[variant.key] = (
                        f"stopped at n={n}: over the {VARIANT_BUDGET_S[pick]:g}s budget"
                    )
                    break
            if len(deploy_ns) >= 3:
                slope = statistics.linear_regression(
                    range(len(deploy_ns)), [d / 1e6 for d in deploy_ns]
                ).slope
                ratios[f"{variant.key}: deploy slope"] = (
                    slope * 1000,
                    "ms added to a deploy per 1,000 functions already deployed (linear fit)",
                )
            last = table[-1]
            ratios[f"{variant.key}: workers PSS KiB/fn at n={last['n']}"] = (
                last["workers PSS KiB/fn"],
                "workers' PSS growth / n",
            )
            ratios[f"{variant.key}: workers USS KiB/fn at n={last['n']}"] = (
                last["workers USS KiB/fn"],
                "one ready instance per function"
                + (" (a ready Python instance)" if variant.kind == "python" else ""),
            )
            ratios[f"{variant.key}: disk KiB/fn at n={last['n']}"] = (
                last["disk KiB/fn"],
                "data dir growth / n",
            )
            first_rows = [r for r in rows if r.key.startswith(f"{variant.key}/")]
            if len(first_rows) >= 6:
                lo, hi = first_rows[2].summary(), first_rows[-1].summary()
                ratios[f"{variant.key}: invoke latency n={last['n']}/n={checkpoints[0]}"] = (
                    ratio(hi["median_us"], lo["median_us"]),
                    "median invocation latency of the sample",
                )
    if variant.kind == "python":
        save_compiled(data_dir)  # the next variants (and runs) skip the interpreter compile


def _invoke_sample(
    client: Client,
    maker: Maker,
    names: list[str],
    invoked: set[str],
    rng: random.Random,
    pick: int,
) -> tuple[list[int], list[int], int, int]:
    """Invoke a random sample: first invocations of never-invoked functions, then warm ones.

    Returns (first latencies, warm latencies, cold replies, failed invocations); failures
    are counted, not timed (a node out of instance slots answers some with an error).
    """
    clock = time.perf_counter_ns
    fresh = [n for n in names if n not in invoked]
    sample = rng.sample(fresh, min(SAMPLE[pick], len(fresh))) or [names[-1]]
    first: list[int] = []
    warm: list[int] = []
    cold = failed = 0

    def call(name: str, into: list[int]) -> Any:
        nonlocal failed
        t0 = clock()
        try:
            result = client.invoke(name, maker.event)
            t1 = clock()
            maker.check(result)
        except (FireboxError, AssertionError, httpx.HTTPError):
            failed += 1
            return None
        into.append(t1 - t0)
        return result

    for name in sample:
        if name in invoked:
            continue
        call(name, first)
        invoked.add(name)
    for _ in range(REPEATS[pick]):
        order = list(sample)
        rng.shuffle(order)
        for name in order:
            result = call(name, warm)
            if result is not None:
                cold += 0 if result.warm else 1
    return first, warm, cold, failed
