"""WASI calls a core module can block in, implemented so they end at the call's deadline
(guest layer).

Epoch deadlines interrupt wasm code only: a guest blocked in wasmtime's own WASI
`poll_oneoff` (a sleep) stays blocked past its timeout, and only killing the whole
worker process stopped it. `shadow_blocking_wasi` replaces, on a core Linker that
already has WASI preview1, the one blocking call a core module can reach with firebox's
own (`poll_oneoff`; stdin is empty and nothing else is granted), plus `clock_time_get`
so absolute clock subscriptions use the same clock as the sleep:

- a clock subscription sleeps until its timeout or the Store's deadline
  (`HostState.deadline`), whichever comes first; cut at the deadline, the call ends
  with an INTERRUPT trap, as an epoch deadline does (a `TimedOut`). The trap is
  returned through the raw layer (`define_trapping_func`), never raised out of a host
  function (wasmtime-py passes host exceptions through a process-global another
  thread can steal).
- fd subscriptions are ready at once (stdin is empty, stdout/stderr are buffers).

Components cannot be shadowed this way (wasmtime-py cannot define a `pollable` that
wasmtime's own streams accept), so a component blocked in a host call is answered on
time by the worker's watchdog instead (`firebox.runtime.watchdog`).
"""

from __future__ import annotations

import struct
import time

import wasmtime
from firebox.runtime.guest.wasmtime_raw import (
    define_trapping_func,
    read_memory,
    store_data,
    write_memory,
)
from wasmtime import TrapCode

WASI = "wasi_snapshot_preview1"

_SUBSCRIPTION = 48
_EVENT = 32
_CLOCK, _FD_READ, _FD_WRITE = 0, 1, 2
_REALTIME, _MONOTONIC = 0, 1
_ABSTIME = 1
_ESUCCESS, _EFAULT, _EINVAL = 0, 21, 28
#: More subscriptions than this in one call is refused (EINVAL): each is 48 bytes to read.
MAX_SUBSCRIPTIONS = 4096


def _now_ns(clock_id: int) -> int:
    return time.time_ns() if clock_id == _REALTIME else time.monotonic_ns()


def _memory(caller: wasmtime.Caller) -> wasmtime.Memory | None:
    memory = caller.get("memory")
    return memory if isinstance(memory, wasmtime.Memory) else None


def clock_time_get(caller: wasmtime.Caller, clock_id: int, _precision: int, out: int) -> int:
    """WASI `clock_time_get`: realtime is the host's wall clock, every other the monotonic one."""
    memory = _memory(caller)
    if memory is None or read_memory(memory, caller, out, 8) is None:
        return _EFAULT
    write_memory(memory, caller, out, struct.pack("<Q", _now_ns(clock_id)))
    return _ESUCCESS


def poll_oneoff(caller: wasmtime.Caller, args: tuple[int, ...]) -> tuple[int, TrapCode | None]:
    """WASI `poll_oneoff`, bounded by the calling Store's deadline (see the module doc):
    returns its errno, and the INTERRUPT trap when the deadline cut the wait short."""
    try:
        return _poll(caller, *args)
    except Exception:  # never raise out of a host function
        return _EINVAL, None


def _poll(
    caller: wasmtime.Caller, subs: int, events: int, count: int, out: int
) -> tuple[int, TrapCode | None]:
    memory = _memory(caller)
    if memory is None:
        return _EFAULT, None
    if not 0 < count <= MAX_SUBSCRIPTIONS:
        return _EINVAL, None
    raw = read_memory(memory, caller, subs, count * _SUBSCRIPTION)
    if raw is None or read_memory(memory, caller, events, count * _EVENT) is None:
        return _EFAULT, None
    if read_memory(memory, caller, out, 4) is None:
        return _EFAULT, None
    ready: list[tuple[int, int]] = []  # (userdata, event type) of what fires now
    clocks: list[tuple[int, int]] = []  # (userdata, wake-up instant in monotonic ns)
    now = time.monotonic_ns()
    for index in range(count):
        base = index * _SUBSCRIPTION
        userdata, tag = struct.unpack_from("<QB", raw, base)
        if tag == _CLOCK:
            clock_id, timeout, _precision, flags = struct.unpack_from("<IxxxxQQH", raw, base + 16)
            if flags & _ABSTIME:
                timeout = max(0, timeout - _now_ns(clock_id))
            clocks.append((userdata, now + timeout))
        elif tag in (_FD_READ, _FD_WRITE):
            ready.append((userdata, tag))
        else:
            return _EINVAL, None
    if not ready and clocks:
        wake = min(at for _, at in clocks)
        deadline = getattr(store_data(caller), "deadline", None)
        until = wake if deadline is None else min(wake, int(deadline * 1e9))
        delay = (until - time.monotonic_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic_ns()
        ready = [(userdata, _CLOCK) for userdata, at in clocks if at <= now]
        if not ready and until < wake:
            return _ESUCCESS, TrapCode.INTERRUPT  # cut at the deadline: a TimedOut
    written = bytearray()
    for userdata, kind in ready:
        written += struct.pack("<QHBxxxxxQHxxxxxx", userdata, _ESUCCESS, kind, 0, 0)
    if written:
        write_memory(memory, caller, events, bytes(written))
    write_memory(memory, caller, out, struct.pack("<I", len(ready)))
    return _ESUCCESS, None


def shadow_blocking_wasi(linker: wasmtime.Linker) -> None:
    """Replace WASI's blocking `poll_oneoff` (and its clock) on a Linker that has WASI."""
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    linker.allow_shadowing = True
    define_trapping_func(linker, WASI, "poll_oneoff", 4, poll_oneoff)
    clock_ty = wasmtime.FuncType([i32, i64, i32], [i32])
    linker.define_func(WASI, "clock_time_get", clock_ty, clock_time_get, access_caller=True)
    linker.allow_shadowing = False
