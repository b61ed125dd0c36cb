"""The one mapping from a wasmtime trap or error to firebox's typed error (guest layer).

Core modules trap with `wasmtime.Trap` (a `trap_code`) or `ExitTrap`; components fail
with a plain `WasmtimeError` whose text says why. Both kinds come through here, so a
fuel, deadline, memory or capacity failure reads the same whatever the guest's kind.
"""

from __future__ import annotations

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

PAGE = 65536

CAPACITY_MESSAGE = (
    "this worker has no free instance slot; retry shortly, or raise FIREBOX_POOL_SLOTS"
)


def trap_error(
    exc: Exception,
    *,
    fuel: int,
    timeout_s: float,
    memory_limit: int,
    memory_used: int = 0,
    max_response_bytes: int | None = None,
) -> FireboxError:
    """Return the typed error for a wasmtime trap or error raised by a guest.

    `fuel`, `timeout_s` and `memory_limit` are the budgets the call ran under (for the
    messages); `memory_used` is the guest's linear memory size when known (0 if not);
    `max_response_bytes` is the response limit, when a result can be too big to lift.
    Anything not recognised is a `GuestTrap` naming wasmtime's root cause.
    """
    if isinstance(exc, wasmtime.ExitTrap):
        return GuestTrap(f"the guest called exit({exc.code})")
    code = getattr(exc, "trap_code", None)
    text = str(exc)
    if (
        code == wasmtime.TrapCode.OUT_OF_FUEL
        or "all fuel consumed" in text
        or "out of fuel" in text
    ):
        return OutOfFuel(fuel)
    if code == wasmtime.TrapCode.INTERRUPT or "interrupt" in text:
        return TimedOut(timeout_s)
    if "maximum concurrent limit" in text:
        return NodeAtCapacity(CAPACITY_MESSAGE)
    if "memory minimum size" in text or "exceeds memory limits" in text:
        return MemoryLimitExceeded(memory_limit)
    if memory_used and memory_used + PAGE > memory_limit:
        # memory.grow past the store limit returns -1 rather than trapping; a guest that
        # then traps while at its cap ran out of memory (docs/abi.md explains the rule).
        return MemoryLimitExceeded(memory_limit)
    if code is None and "memory" in text and any(w in text for w in ("limit", "grow", "allocat")):
        # A component's allocation failure has no trap code, only wasmtime's words.
        return MemoryLimitExceeded(memory_limit)
    if max_response_bytes is not None and "too much data is being copied" in text:
        # wasmtime refuses to copy a huge result out of a component (its hostcall budget
        # is a few MiB above our default limit): that is an oversized response.
        return ResponseTooLarge(None, max_response_bytes)
    return GuestTrap(trap_reason(text, code, default=type(exc).__name__))


def trap_reason(text: str, code: wasmtime.TrapCode | None = None, default: str = "trap") -> str:
    """Return the part of wasmtime's error text a user can act on, with the trap's name.

    wasmtime's text is "error while executing at wasm backtrace: ... Caused by: <why>";
    the last line is the reason (`default` when the text is empty).
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else default
    name = code.name.lower().replace("_", " ") if code is not None else None
    return f"{name} ({reason})" if name else reason
