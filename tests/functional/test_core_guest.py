"""Core-module guests and ready pools in-process, on real wasmtime (no server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from firebox.runtime.artifacts import ArtifactStore, CompiledCache, sha256
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import (
    GuestTrap,
    InvalidArtifact,
    MemoryLimitExceeded,
    OutOfFuel,
    PayloadTooLarge,
    TimedOut,
)
from firebox.runtime.guest.core import CoreProgram
from firebox.runtime.guest.engine import EpochTicker, build_engine
from firebox.runtime.guest.protocol import CallContext
from firebox.runtime.host.log import LogBuffer
from firebox.runtime.limits import Limits
from firebox.runtime.pool import InstancePool, PoolFiller, ReadyBudget

from tests.conftest import guest_wasm

SETTINGS = EngineSettings(pool_slots=32, max_memory_mb=256)


@pytest.fixture(scope="module")
def engine() -> Iterator[wasmtime.Engine]:
    engine = build_engine(SETTINGS)
    ticker = EpochTicker(engine)
    yield engine
    ticker.stop()


def program(engine: wasmtime.Engine, guest: str, **limits: object) -> CoreProgram:
    return CoreProgram(engine, wasmtime.Module(engine, guest_wasm(guest)), Limits(**limits))  # type: ignore[arg-type]


def ctx(seconds: float = 2.0) -> CallContext:
    return CallContext("req-1", time.monotonic() + seconds, LogBuffer(4096))


def test_echo_and_stats(engine: wasmtime.Engine) -> None:
    instance = program(engine, "echo").instantiate()
    output, stats = instance.call("handle", b'{"a": 1}', ctx())
    assert output == b'{"a": 1}'
    assert stats.fuel > 0 and stats.memory_bytes == 65536
    instance.close()


def test_request_over_the_limit_is_refused_before_running(engine: wasmtime.Engine) -> None:
    instance = program(engine, "echo", max_request_bytes=4).instantiate()
    with pytest.raises(PayloadTooLarge, match="exceeds the limit of 4 bytes"):
        instance.call("handle", b"12345", ctx())


def test_minimum_memory_above_the_cap_fails_to_instantiate(engine: wasmtime.Engine) -> None:
    wasm = wasmtime.wat2wasm(
        '(module (memory (export "memory") 40) (func (export "firebox_alloc") (param i32) (result i32) i32.const 0)'
        ' (func (export "handle") (param i32 i32) (result i64) i64.const 0))'
    )
    prog = CoreProgram(engine, wasmtime.Module(engine, bytes(wasm)), Limits(memory_mb=1))
    with pytest.raises(MemoryLimitExceeded, match="Memory limit of 1 MiB exceeded"):
        prog.instantiate()


def test_hostile_exports_map_to_typed_errors(engine: wasmtime.Engine) -> None:
    prog = program(engine, "hostile", timeout_s=0.3, memory_mb=8)
    cases = {"spin": TimedOut, "grow": MemoryLimitExceeded, "trap": GuestTrap, "recurse": GuestTrap}
    for export, error in cases.items():
        instance = prog.instantiate()
        with pytest.raises(error):
            instance.call(export, b"{}", ctx(0.3))
        assert not instance.reusable
        instance.close()
    starved = program(engine, "hostile", fuel=10_000).instantiate()
    with pytest.raises(OutOfFuel, match="10000 units"):
        starved.call("spin", b"", ctx())


def test_unknown_export_is_a_clear_error(engine: wasmtime.Engine) -> None:
    with pytest.raises(InvalidArtifact, match="no handler export named `nope`"):
        program(engine, "echo").instantiate().call("nope", b"", ctx())


def test_module_without_the_abi_is_refused(engine: wasmtime.Engine) -> None:
    wasm = wasmtime.wat2wasm('(module (memory (export "memory") 1))')
    with pytest.raises(InvalidArtifact, match="firebox_alloc"):
        CoreProgram(engine, wasmtime.Module(engine, bytes(wasm)), Limits())


def test_environment_reaches_wasi(engine: wasmtime.Engine) -> None:
    prog = CoreProgram(engine, wasmtime.Module(engine, guest_wasm("echo")), Limits(), {"A": "b"})
    assert prog.instantiate().call("handle", b"x", ctx())[0] == b"x"


def test_pool_keeps_instances_ready_and_counts_cold_starts(engine: wasmtime.Engine) -> None:
    pool = InstancePool(program(engine, "echo"), min_ready=2, max_ready=4, idle_shrink_s=0.2)
    assert pool.snapshot().ready == 0
    instance, warm = pool.lease()
    assert not warm  # nothing was ready: a cold start
    pool.release(instance)
    while pool.fill_one():
        pass
    assert pool.snapshot().ready == 2
    instance, warm = pool.lease()
    assert warm
    instance.call("handle", b"{}", ctx())
    pool.release(instance)
    snap = pool.snapshot()
    assert (snap.cold_starts, snap.warm_starts, snap.ready) == (1, 1, 1)
    pool.close()


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pool_grows_with_load_and_shrinks_when_idle(engine: wasmtime.Engine) -> None:
    clock = FakeClock()
    pool = InstancePool(
        program(engine, "echo"), min_ready=1, max_ready=4, idle_shrink_s=0.2, clock=clock
    )
    leased = [pool.lease()[0] for _ in range(3)]
    while pool.fill_one():
        pass
    # The target followed the 3 concurrent leases, plus a spare (fresh isolation).
    assert pool.snapshot().ready == 4
    for instance in leased:
        pool.release(instance)
    clock.now += 0.1
    pool.shrink()
    assert pool.snapshot().ready == 4  # not idle long enough yet
    clock.now += 0.2
    pool.shrink()
    assert pool.snapshot().ready == 1  # back to provisioned after idling
    pool.close()


def test_filler_thread_refills_after_a_lease(engine: wasmtime.Engine) -> None:
    pool = InstancePool(program(engine, "echo"), min_ready=1, max_ready=2)
    filler = PoolFiller(period_s=0.05)
    filler.add("echo", pool)
    deadline = time.monotonic() + 5
    while pool.snapshot().ready < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    instance, warm = pool.lease()
    assert warm
    filler.poke()
    while pool.snapshot().ready < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.snapshot().ready >= 1
    pool.release(instance)
    filler.stop()
    pool.close()


def test_compiled_cache_hits_after_first_compile(engine: wasmtime.Engine, tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    wasm = guest_wasm("echo")
    digest = store.put(wasm)
    assert digest == sha256(wasm) and store.exists(digest)
    cache = CompiledCache(tmp_path, SETTINGS)
    cache.load_module(engine, digest, store.path(digest))
    again = CompiledCache(tmp_path, SETTINGS)  # a "restarted" process
    module = again.load_module(engine, digest, store.path(digest))
    assert (cache.stats.misses, again.stats.hits, again.stats.misses) == (1, 1, 0)
    assert (
        CoreProgram(engine, module, Limits()).instantiate().call("handle", b"1", ctx())[0] == b"1"
    )
    # A cache for other engine settings is a different directory: never a wrong load.
    other = CompiledCache(tmp_path, EngineSettings(pool_slots=32, max_memory_mb=128))
    assert other.root != cache.root


def test_host_call_sleep_ends_at_the_call_deadline(engine: wasmtime.Engine) -> None:
    instance = program(engine, "hostile", timeout_s=5.0).instantiate()
    started = time.monotonic()
    with pytest.raises(TimedOut):
        instance.call("sleep", b"", ctx(0.3))  # a 5 s WASI sleep under a 0.3 s deadline
    assert time.monotonic() - started < 1.0
    # A sleep shorter than the deadline sleeps its whole length and returns.
    started = time.monotonic()
    output, _ = program(engine, "nap", timeout_s=5.0).instantiate().call("handle", b"z", ctx(5))
    assert output == b"z" and time.monotonic() - started >= 2.9


def test_init_blocked_in_a_host_call_times_out_at_the_timeout(engine: wasmtime.Engine) -> None:
    started = time.monotonic()
    with pytest.raises(TimedOut):
        program(engine, "sleepy_init", timeout_s=0.3).instantiate()  # sleeps 20 s
    assert time.monotonic() - started < 1.0


def test_ready_budget_bounds_every_pool_and_leaves_others_a_share(engine: wasmtime.Engine) -> None:
    budget = ReadyBudget(instances=8, memory_mb=1000)
    filler = PoolFiller(period_s=0.05, budget=budget)
    greedy = InstancePool(program(engine, "echo"), min_ready=500, max_ready=500, memory_mb=100)
    modest = InstancePool(program(engine, "echo"), min_ready=3, max_ready=3, memory_mb=100)
    filler.add("greedy", greedy)
    deadline = time.monotonic() + 5
    while greedy.ready_count() < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    filler.add("modest", modest)
    while modest.ready_count() < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    # Half the budget for one pool: 4 instances, 500 of the 1000 MB; the other gets its 3.
    assert greedy.ready_count() == 4 and modest.ready_count() == 3
    assert budget.pool_share(100) == 4
    filler.stop()
    greedy.close()
    modest.close()


def test_a_failing_pool_is_retried_with_backoff(engine: wasmtime.Engine) -> None:
    class Counted:
        def __init__(self, program: CoreProgram) -> None:
            self.program = program
            self.attempts = 0

        def instantiate(self) -> Any:
            self.attempts += 1
            return self.program.instantiate()

    counted = Counted(program(engine, "failing_init"))
    pool = InstancePool(counted, min_ready=1, max_ready=1)
    filler = PoolFiller(period_s=0.05)
    filler.add("failing", pool)
    time.sleep(1.0)
    filler.remove("failing")
    # Every period would be ~20 attempts in a second; doubling from 0.05 s, about 5.
    assert "failing" not in filler.errors and pool.snapshot().instantiated == 0
    assert 2 <= counted.attempts <= 7, counted.attempts
    filler.stop()
