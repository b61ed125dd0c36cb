"""Case `limits`: what fuel metering and epoch interruption cost a compute-heavy handler (bench).

One WAT guest whose export runs a tight summing loop is compiled on four engines built
directly with `wasmtime.Config`: no limits, fuel only, epochs only, both (firebox's
default). Each variant gets its own Store, the same loop length, and is timed
interleaved in rounds so a noisy moment lands on all of them alike. Fuel is set
generously (never runs out) and the epoch deadline far ahead while a ticker thread bumps
the epoch every 10 ms, as firebox's `EpochTicker` does; so the rows time only the
instrumentation, never a trap.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

import wasmtime

from bench.cases import CaseResult
from bench.measure import Row, interleave, ratio

TITLE = "Limits overhead: fuel and epoch interruption on a compute-heavy handler"

# A tight loop: acc += i * (i ^ 7) for i in [0, n); returns acc so nothing is dead code.
GUEST = """
(module
  (func (export "work") (param $n i32) (result i64)
    (local $i i32) (local $acc i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc
          (i64.add (local.get $acc)
            (i64.extend_i32_u (i32.mul (local.get $i) (i32.xor (local.get $i) (i32.const 7))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc)))
"""

# (full, quick): loop length, timed calls per variant, warm-up calls, rounds.
LOOP = (2_000_000, 200_000)
ITERATIONS = (300, 40)
WARMUP = (20, 5)
ROUNDS = (5, 2)
TICK_S = 0.01
FUEL = 10**15

VARIANTS: dict[str, tuple[bool, bool, str]] = {
    "none": (False, False, "(a) no fuel, no epochs (the floor)"),
    "fuel": (True, False, "(b) fuel metering on"),
    "epoch": (False, True, "(c) epoch interruption on (ticker every 10 ms)"),
    "both": (True, True, "(d) fuel + epochs (firebox's default engine)"),
}


def _expected(n: int) -> int:
    return sum((i * (i ^ 7)) & 0xFFFFFFFF for i in range(n)) & 0xFFFFFFFFFFFFFFFF


def run(quick: bool) -> CaseResult:
    """Time the loop on each engine and return rows and ratios against the unmetered floor."""
    pick = 1 if quick else 0
    n = LOOP[pick]
    wasm = bytes(wasmtime.wat2wasm(GUEST))
    expected = _expected(n)
    expected_signed = expected - (1 << 64) if expected >= 1 << 63 else expected
    rows: dict[str, Row] = {}
    calls: dict[str, Callable[[], int]] = {}
    stop = threading.Event()
    engines: list[wasmtime.Engine] = []
    for key, (fuel, epochs, label) in VARIANTS.items():
        config = wasmtime.Config()
        config.consume_fuel = fuel
        config.epoch_interruption = epochs
        engine = wasmtime.Engine(config)
        if epochs:
            engines.append(engine)
        store = wasmtime.Store(engine)
        if fuel:
            store.set_fuel(FUEL)
        if epochs:
            store.set_epoch_deadline(10**9)
        instance = wasmtime.Instance(store, wasmtime.Module(engine, wasm), [])
        func = instance.exports(store)["work"]
        assert isinstance(func, wasmtime.Func)

        def call(
            func: wasmtime.Func = func, store: wasmtime.Store = store, fuel: bool = fuel
        ) -> int:
            if fuel:
                store.set_fuel(FUEL)
            result = func(store, n)
            assert isinstance(result, int)
            return result

        calls[key] = call
        rows[key] = Row(
            key,
            label,
            notes=f"Func call of `work({n:,})` on a Store of an engine with"
            f" consume_fuel={fuel}, epoch_interruption={epochs}",
        )

    def tick() -> None:
        while not stop.wait(TICK_S):
            for engine in engines:
                engine.increment_epoch()

    ticker = threading.Thread(target=tick, name="bench-epoch-ticker", daemon=True)
    ticker.start()
    clock = time.perf_counter_ns

    def runner(key: str) -> Callable[[Row, int], None]:
        def chunk(row: Row, count: int) -> None:
            call = calls[key]
            for _ in range(count):
                t0 = clock()
                out = call()
                t1 = clock()
                if out != expected_signed:
                    raise AssertionError(f"{key}: work({n}) returned {out}, not {expected_signed}")
                row.samples_ns.append(t1 - t0)

        return chunk

    try:
        for key in VARIANTS:
            gc.collect()
            for _ in range(WARMUP[pick]):
                calls[key]()
            rows[key].warmup = WARMUP[pick]
        interleave(
            [(rows[key], runner(key)) for key in VARIANTS],
            lambda row: ITERATIONS[pick],
            ROUNDS[pick],
        )
    finally:
        stop.set()
        ticker.join(timeout=2)

    med = {key: row.summary()["median_us"] for key, row in rows.items()}
    return CaseResult(
        name="limits",
        title=TITLE,
        description=(
            f"Each row is one call of a tight summing loop ({n:,} iterations, checked result)"
            " on an engine built with the named options; rows are interleaved in rounds."
            " A tight loop is the worst case for fuel (it is charged per instruction);"
            " a realistic handler spends most of its time elsewhere."
        ),
        rows=list(rows.values()),
        ratios={
            "fuel on/off": (ratio(med["fuel"], med["none"]), "median (b) / (a)"),
            "epoch on/off": (ratio(med["epoch"], med["none"]), "median (c) / (a)"),
            "fuel+epoch / none": (ratio(med["both"], med["none"]), "median (d) / (a)"),
            "fuel+epoch / epoch": (
                ratio(med["both"], med["epoch"]),
                "median (d) / (c): what fuel adds on firebox's engine",
            ),
        },
        config={
            "loop_iterations": n,
            "iterations": ITERATIONS[pick],
            "warmup": WARMUP[pick],
            "rounds": ROUNDS[pick],
            "epoch_tick_s": TICK_S,
            "fuel_per_call": FUEL,
            "wasmtime_config": "wasmtime.Config() defaults plus consume_fuel / epoch_interruption",
        },
        peers={
            key: {"consume_fuel": fuel, "epoch_interruption": epochs}
            for key, (fuel, epochs, _) in VARIANTS.items()
        },
    )
