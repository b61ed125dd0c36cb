"""`time.sleep` that the host ends at the invocation's deadline (guest side).

A WASI sleep (`poll_oneoff` on a clock) blocks inside wasmtime, where epoch deadlines
cannot reach it: a handler in `time.sleep(600)` under a 3 s timeout used to hold its
thread and instance for ten minutes (the call itself was answered on time by the
worker's watchdog). Here a sleep is the host's `time.sleep` capability, which sleeps at
most until the call's deadline and then marks the call timed out; the guest is stopped
by its epoch deadline a few ticks later. Module-level code (initialization, which runs
once at deploy with no invocation) has no such deadline: it keeps WASI's own sleep,
bounded by the init budget.
"""

from __future__ import annotations

import math
import time
from typing import Any

import firebox_guest_capability as capability

_wasi_sleep = time.sleep


def sleep(seconds: Any, /) -> None:
    """Suspend for `seconds` (as `time.sleep`), at most until the invocation's deadline."""
    if not hasattr(seconds, "__float__") and not hasattr(seconds, "__index__"):
        raise TypeError(
            f"'{type(seconds).__name__}' object cannot be interpreted as an integer or float"
        )
    value = float(seconds)
    if math.isnan(value):
        raise ValueError("Invalid value NaN (not a number)")
    if value < 0:
        raise ValueError("sleep length must be non-negative")
    if value == 0:
        _wasi_sleep(0)
        return
    try:
        capability.call("time.sleep", seconds=value if math.isfinite(value) else 1e18)
    except capability.HostCallFailed:
        return  # the deadline passed: the host marked the call timed out
    except capability.FireboxError:
        _wasi_sleep(value)  # initialization: no invocation, no host sleep


def install() -> None:
    """Make `time.sleep` the host's (idempotent)."""
    time.sleep = sleep


install()
