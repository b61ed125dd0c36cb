"""How limits apply to a wasmtime Store: memory cap, fuel budget, epoch deadline (guest layer)."""

from __future__ import annotations

import wasmtime
from firebox.runtime.engine import ticks_for
from firebox.runtime.limits import Limits


def arm(store: wasmtime.Store, *, fuel: int, seconds: float) -> None:
    """Give `store` a fresh fuel budget and an epoch deadline `seconds` from now."""
    store.set_fuel(fuel)
    store.set_epoch_deadline(ticks_for(seconds))


def limit_memory(store: wasmtime.Store, memory_bytes: int) -> None:
    """Cap the linear memory of `store` (growing past it makes `memory.grow` return -1)."""
    store.set_limits(memory_size=memory_bytes)


def apply_limits(store: wasmtime.Store, limits: Limits) -> None:
    """Set the memory cap, the fuel budget and the epoch deadline on a new Store.

    Instantiation runs start functions: they get the whole timeout and fuel too.
    """
    limit_memory(store, limits.memory_bytes)
    arm(store, fuel=limits.fuel, seconds=limits.timeout_s)
