"""The one trap-to-error mapping (runtime/guest/traps.py), on wasmtime's own texts and codes."""

from __future__ import annotations

import pytest
import wasmtime
from firebox.runtime.errors import (
    FireboxError,
    GuestTrap,
    MemoryLimitExceeded,
    NodeAtCapacity,
    OutOfFuel,
    ResponseTooLarge,
    TimedOut,
)
from firebox.runtime.guest.traps import PAGE, trap_error, trap_reason

MiB = 1 << 20
BACKTRACE = "error while executing at wasm backtrace:\n    0: 0x2010510 - libpython3.14.so!f\n"


class FakeTrap(Exception):
    """An exception carrying a trap code, as `wasmtime.Trap` does."""

    def __init__(self, text: str, code: wasmtime.TrapCode | None) -> None:
        super().__init__(text)
        self.trap_code = code


def mapped(exc: Exception, **overrides: int) -> FireboxError:
    budgets: dict[str, int] = {"fuel": 1000, "timeout_s": 3, "memory_limit": 8 * MiB}
    return trap_error(exc, **{**budgets, **overrides})


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (FakeTrap("wasm trap: all fuel consumed", wasmtime.TrapCode.OUT_OF_FUEL), OutOfFuel),
        (wasmtime.WasmtimeError(BACKTRACE + "\nCaused by:\n    all fuel consumed"), OutOfFuel),
        (FakeTrap("wasm trap: interrupt", wasmtime.TrapCode.INTERRUPT), TimedOut),
        (wasmtime.WasmtimeError(BACKTRACE + "\nCaused by:\n    wasm trap: interrupt"), TimedOut),
        (
            wasmtime.WasmtimeError("maximum concurrent limit of 32 for memories reached"),
            NodeAtCapacity,
        ),
        (
            wasmtime.WasmtimeError("memory minimum size of 512 pages exceeds memory limits"),
            MemoryLimitExceeded,
        ),
        (wasmtime.WasmtimeError("failed to grow memory past its limit"), MemoryLimitExceeded),
        (
            FakeTrap(
                "wasm trap: wasm `unreachable` instruction executed", wasmtime.TrapCode.UNREACHABLE
            ),
            GuestTrap,
        ),
    ],
)
def test_each_failure_maps_to_its_type(exc: Exception, expected: type[FireboxError]) -> None:
    assert type(mapped(exc)) is expected


def test_messages_name_the_budget_that_ran_out() -> None:
    assert "1000 units" in mapped(wasmtime.WasmtimeError("all fuel consumed")).message
    assert (
        mapped(wasmtime.WasmtimeError("interrupt")).message == "Task timed out after 3.00 seconds"
    )
    error = mapped(wasmtime.WasmtimeError("exceeds memory limits"), memory_limit=1 * MiB)
    assert "Memory limit of 1 MiB" in error.message


def test_a_trap_at_the_memory_cap_is_running_out_of_memory() -> None:
    # memory.grow returns -1 at the cap; the guest then traps on whatever it does next.
    trap = FakeTrap("wasm trap: unreachable", wasmtime.TrapCode.UNREACHABLE)
    assert isinstance(mapped(trap, memory_used=8 * MiB - PAGE // 2), MemoryLimitExceeded)
    assert isinstance(mapped(trap, memory_used=4 * MiB), GuestTrap)


def test_a_trap_coded_memory_fault_is_not_mistaken_for_the_limit() -> None:
    trap = FakeTrap(
        "memory fault at wasm address 0x10000 in linear memory of size 0x10000 (limit)",
        wasmtime.TrapCode.MEMORY_OUT_OF_BOUNDS,
    )
    assert isinstance(mapped(trap), GuestTrap)


def test_a_result_too_big_to_lift_is_an_oversized_response_only_when_limited() -> None:
    text = BACKTRACE + "\nCaused by:\n    too much data is being copied"
    error = mapped(wasmtime.WasmtimeError(text), max_response_bytes=6 * MiB)
    assert isinstance(error, ResponseTooLarge)
    assert isinstance(mapped(wasmtime.WasmtimeError(text)), GuestTrap)


def test_the_reason_is_the_root_cause_with_the_trap_name() -> None:
    text = BACKTRACE + "\nCaused by:\n    wasm trap: call stack exhausted\n"
    assert trap_reason(text) == "wasm trap: call stack exhausted"
    assert (
        trap_reason(text, wasmtime.TrapCode.STACK_OVERFLOW)
        == "stack overflow (wasm trap: call stack exhausted)"
    )
    assert trap_reason("  \n", default="Trap") == "Trap"
    error = mapped(wasmtime.WasmtimeError(text))
    assert error.message == "Guest trapped: wasm trap: call stack exhausted"
