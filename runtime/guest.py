"""A live core-module instance under ABI v1, behind the interface pools use (guest layer).

ABI v1 (docs/abi.md): the module exports `memory` and `firebox_alloc(len) -> ptr`; each
handler export takes the input's (ptr, len) and returns the output's location packed in
an i64 (`ptr << 32 | len`). The host provides `firebox.log(ptr, len)` and
`firebox.fail(ptr, len)` (the call's output is then an error message), and WASI
preview1 with stdout/stderr captured into the invocation's log and nothing else granted.
"""

from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import wasmtime
from firebox.runtime.capture import LogBuffer
from firebox.runtime.engine import ticks_for
from firebox.runtime.errors import (
    FireboxError,
    GuestTrap,
    HandlerError,
    InvalidArtifact,
    MemoryLimitExceeded,
    NodeAtCapacity,
    OutOfFuel,
    PayloadTooLarge,
    ResponseTooLarge,
    TimedOut,
)
from firebox.runtime.limits import Limits
from wasmtime import _ffi as ffi

ALLOC_EXPORT = "firebox_alloc"
INIT_EXPORT = "firebox_init"
ABI_IMPORT_MODULE = "firebox"
WASI_MODULES = ("wasi_snapshot_preview1",)
PAGE = 65536


@dataclass
class CallContext:
    """What one invocation tells its guest: who is calling, until when, and where logs go."""

    request_id: str
    deadline: float  # time.monotonic() at which the call times out
    log: LogBuffer
    function_name: str = ""
    function_version: str = "$LATEST"
    invoked_arn: str = ""
    client_context: str | None = None  # Lambda's ClientContext JSON, when the caller sent one


@dataclass
class CallStats:
    """What one call used: fuel units and the linear memory high-water mark."""

    fuel: int = 0
    memory_bytes: int = 0


class GuestInstance(Protocol):
    """A ready instance of a function: call it once (or again, if `reusable`), then close it."""

    @property
    def reusable(self) -> bool:
        """False once the instance trapped (it must not be called again)."""
        ...

    def call(self, export: str, payload: bytes, ctx: CallContext) -> tuple[bytes, CallStats]:
        """Run `export` on `payload`; return the output; raise an InvocationError subclass."""
        ...

    def close(self) -> None:
        """Release the instance's Store."""
        ...


class GuestProgram(Protocol):
    """A compiled function a worker can make ready instances of (shareable between threads)."""

    def instantiate(self) -> GuestInstance:
        """Return a new instance, set up and ready for its first call."""
        ...


class RawCall:
    """An unchecked call of an i32-argument export: ~1-2 us instead of ~30 us per call.

    wasmtime-py's `Func.__call__` converts every value through `Val` and re-reads the
    function type each time; the ABI's signatures are fixed and checked once by
    `check_abi`, so the raw `wasmtime_func_call_unchecked` with a preallocated buffer
    is safe here. Host functions of ours never raise, so there is no pending Python
    exception to pick up (wasmtime-py's LAST_EXCEPTION) after a trap.
    """

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, slots: int) -> None:
        self._store = store  # keeps the context alive
        self._func = func
        self._ctx = store._context()
        self._ref = ctypes.byref(func._func)
        self._buf = (ffi.wasmtime_val_raw * slots)()
        self._slots = slots

    def i32(self, *args: int) -> int:
        """Call with i32 arguments; return the first result as an i32."""
        self._call(args)
        return int(self._buf[0].i32)

    def i64(self, *args: int) -> int:
        """Call with i32 arguments; return the first result as an i64."""
        self._call(args)
        return int(self._buf[0].i64)

    def _call(self, args: tuple[int, ...]) -> None:
        buf = self._buf
        for index, value in enumerate(args):
            buf[index].i32 = value
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call_unchecked(
            self._ctx, self._ref, buf, self._slots, ctypes.byref(trap)
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
        if trap:
            raise wasmtime.Trap._from_ptr(trap)


@dataclass
class _StoreState:
    log: LogBuffer
    failure: bytes | None = None
    memory: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def _read(caller: wasmtime.Caller, ptr: int, length: int) -> bytes | None:
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory) or ptr < 0 or length < 0:
        return None
    if ptr + length > memory.data_len(caller):
        return None
    base = ctypes.addressof(memory.data_ptr(caller).contents)
    return ctypes.string_at(base + ptr, length)


def _state(caller: wasmtime.Caller) -> _StoreState:
    # Caller has no data() of its own in wasmtime-py 50, but Store.data only needs a
    # store context, which a Caller provides.
    state: _StoreState = wasmtime.Store.data(caller)  # type: ignore[arg-type,assignment]
    return state


def _host_log(caller: wasmtime.Caller, ptr: int, length: int) -> None:
    state = _state(caller)
    data = _read(caller, ptr, length)
    if data is not None:
        state.log.write_bytes(data if data.endswith(b"\n") else data + b"\n")


def _host_fail(caller: wasmtime.Caller, ptr: int, length: int) -> None:
    state = _state(caller)
    state.failure = _read(caller, ptr, length) or b"handler failed"


def check_abi(module: wasmtime.Module) -> list[str]:
    """Return the handler exports of a module, or raise InvalidArtifact naming what is missing."""
    exports = {e.name: e.type for e in module.exports}
    if not isinstance(exports.get("memory"), wasmtime.MemoryType):
        raise InvalidArtifact("ABI v1: the module must export its linear memory as `memory`")
    alloc = exports.get(ALLOC_EXPORT)
    if not isinstance(alloc, wasmtime.FuncType) or [str(t) for t in alloc.params] != ["i32"]:
        raise InvalidArtifact(f"ABI v1: the module must export `{ALLOC_EXPORT}(len: i32) -> i32`")
    handlers = [
        name
        for name, ty in exports.items()
        if isinstance(ty, wasmtime.FuncType)
        and [str(t) for t in ty.params] == ["i32", "i32"]
        and [str(t) for t in ty.results] == ["i64"]
    ]
    if not handlers:
        raise InvalidArtifact(
            "ABI v1: the module exports no handler; a handler is an exported function"
            " (ptr: i32, len: i32) -> i64"
        )
    for imp in module.imports:
        if imp.module not in (ABI_IMPORT_MODULE, *WASI_MODULES):
            raise InvalidArtifact(
                f"the module imports `{imp.module}.{imp.name}`, which firebox does not"
                f" provide (available: `{ABI_IMPORT_MODULE}` and WASI preview1)"
            )
        if imp.module == ABI_IMPORT_MODULE and imp.name not in ("log", "fail"):
            raise InvalidArtifact(f"unknown firebox host function `firebox.{imp.name}`")
    return handlers


def make_linker(engine: wasmtime.Engine) -> wasmtime.Linker:
    """Return a Linker with the `firebox` host module and WASI preview1 defined."""
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    ty = wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], [])
    linker.define_func(ABI_IMPORT_MODULE, "log", ty, _host_log, access_caller=True)
    linker.define_func(ABI_IMPORT_MODULE, "fail", ty, _host_fail, access_caller=True)
    return linker


class CoreProgram:
    """A compiled ABI v1 module with its limits and environment; makes ready instances."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        module: wasmtime.Module,
        limits: Limits,
        env: dict[str, str] | None = None,
    ) -> None:
        self.handlers = frozenset(check_abi(module))
        self.engine = engine
        self.limits = limits
        self.env = dict(env or {})
        self._pre = make_linker(engine).instantiate_pre(module)
        self._has_init = any(e.name == INIT_EXPORT for e in module.exports)

    def instantiate(self) -> CoreInstance:
        """Return a new instance (fresh Store, limits applied, `firebox_init` run if exported)."""
        state = _StoreState(log=LogBuffer(self.limits.max_log_bytes))
        store = wasmtime.Store(self.engine, data=state)
        self.limits.apply(store)
        wasi = wasmtime.WasiConfig()
        wasi.env = list(self.env.items())
        # Output goes into the current invocation's bounded log, never to the node's stdout.
        wasi.stdout_custom = lambda data: state.log.write_bytes(bytes(data))
        wasi.stderr_custom = lambda data: state.log.write_bytes(bytes(data))
        store.set_wasi(wasi)
        try:
            instance = self._pre.instantiate(store)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise _map_error(exc, store, state, self.limits, self.limits.fuel) from None
        return CoreInstance(store, instance, state, self.limits, self._has_init, self.handlers)


class CoreInstance:
    """One instantiated module in its own Store; not thread-safe (one call at a time)."""

    def __init__(
        self,
        store: wasmtime.Store,
        instance: wasmtime.Instance,
        state: _StoreState,
        limits: Limits,
        has_init: bool,
        handlers: frozenset[str],
    ) -> None:
        self.store = store
        self._handler_names = handlers
        self.state = state
        self.limits = limits
        self.reusable = True
        exports = instance.exports(store)
        self._exports = exports
        memory = exports["memory"]
        alloc = exports[ALLOC_EXPORT]
        assert isinstance(memory, wasmtime.Memory) and isinstance(alloc, wasmtime.Func)
        self._memory = memory
        self._alloc = RawCall(store, alloc, 1)
        # Made now, off the request path (a RawCall costs ~10 us to set up).
        self._handlers: dict[str, RawCall] = {
            name: RawCall(store, func, 2)
            for name in handlers
            if isinstance(func := exports.get(name), wasmtime.Func)
        }
        state.memory = memory
        if has_init:
            init = exports[INIT_EXPORT]
            assert isinstance(init, wasmtime.Func)
            self._guard(lambda: init(store), self.limits.fuel)
        self.init_log = state.log.text()

    def call(self, export: str, payload: bytes, ctx: CallContext) -> tuple[bytes, CallStats]:
        """Run handler `export` on `payload`; see GuestInstance.call."""
        limits = self.limits
        if len(payload) > limits.max_request_bytes:
            raise PayloadTooLarge("Request payload", len(payload), limits.max_request_bytes)
        func = self._handlers.get(export) or self._handler(export)
        store = self.store
        self.state.log = ctx.log
        self.state.failure = None
        store.set_fuel(limits.fuel)
        store.set_epoch_deadline(ticks_for(max(0.0, ctx.deadline - time.monotonic())))

        def run() -> bytes:
            ptr = self._alloc.i32(len(payload))
            if payload:
                if ptr <= 0 or ptr + len(payload) > self._memory.data_len(store):
                    raise GuestTrap(f"{ALLOC_EXPORT} returned an out-of-bounds pointer {ptr}")
                ctypes.memmove(self._base() + ptr, payload, len(payload))
            packed = func.i64(ptr, len(payload))
            out_ptr, out_len = (packed >> 32) & 0xFFFFFFFF, packed & 0xFFFFFFFF
            if out_len > limits.max_response_bytes:
                raise ResponseTooLarge(out_len, limits.max_response_bytes)
            if out_ptr + out_len > self._memory.data_len(store):
                raise GuestTrap(f"handler returned an out-of-bounds output ({out_ptr}, {out_len})")
            return ctypes.string_at(self._base() + out_ptr, out_len)

        output = self._guard(run, limits.fuel)
        stats = CallStats(
            fuel=limits.fuel - store.get_fuel(), memory_bytes=self._memory.data_len(store)
        )
        if self.state.failure is not None:
            message = self.state.failure.decode("utf-8", "replace")
            raise HandlerError({"errorMessage": message, "errorType": "Error", "stackTrace": []})
        return output, stats

    def _handler(self, export: str) -> RawCall:
        # check_abi vetted every handler's signature once per module, not per instance.
        func = self._exports.get(export) if export in self._handler_names else None
        if not isinstance(func, wasmtime.Func):
            raise InvalidArtifact(
                f"the module has no handler export named `{export}`"
                " (a handler is an exported function (ptr: i32, len: i32) -> i64)"
            )
        self._handlers[export] = RawCall(self.store, func, 2)
        return self._handlers[export]

    def _base(self) -> int:
        # memory_may_move is off in the engine, but re-read anyway: it is one ctypes call.
        return ctypes.addressof(self._memory.data_ptr(self.store).contents)

    def _guard(self, fn: Any, fuel: int) -> Any:
        try:
            return fn()
        except FireboxError:
            raise
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            self.reusable = False
            raise _map_error(exc, self.store, self.state, self.limits, fuel) from None

    def close(self) -> None:
        """Drop the Store (and with it the instance's memory slot)."""
        self.reusable = False
        self._exports = None  # type: ignore[assignment]
        store, self.store = self.store, None  # type: ignore[assignment]
        if store is not None:
            store.close()


def _memory_bytes(store: wasmtime.Store, state: _StoreState) -> int:
    try:
        mem = state.memory
        return int(mem.data_len(store)) if mem is not None else 0
    except Exception:
        return 0


def _map_error(
    exc: Exception, store: wasmtime.Store, state: _StoreState, limits: Limits, fuel: int
) -> FireboxError:
    """Translate a wasmtime trap or error into firebox's typed error."""
    if isinstance(exc, wasmtime.ExitTrap):
        return GuestTrap(f"the guest called exit({exc.code})")
    code = getattr(exc, "trap_code", None)
    text = str(exc)
    if code == wasmtime.TrapCode.OUT_OF_FUEL or "all fuel consumed" in text:
        return OutOfFuel(fuel)
    if code == wasmtime.TrapCode.INTERRUPT or "interrupt" in text:
        return TimedOut(limits.timeout_s)
    if "maximum concurrent limit" in text:
        return NodeAtCapacity(
            "this worker has no free instance slot; retry shortly, or raise FIREBOX_POOL_SLOTS"
        )
    if "memory minimum size" in text or "exceeds memory limits" in text:
        return MemoryLimitExceeded(limits.memory_bytes)
    memory = _memory_bytes(store, state)
    if memory and memory + PAGE > limits.memory_bytes:
        # memory.grow past the store limit returns -1 rather than trapping; a guest that
        # then traps while at its cap ran out of memory (docs/abi.md explains the rule).
        return MemoryLimitExceeded(limits.memory_bytes)
    # wasmtime's text is "error while executing at wasm backtrace: ... Caused by: <why>";
    # the last line is the reason a user can act on.
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    reason = lines[-1] if lines else type(exc).__name__
    name = code.name.lower().replace("_", " ") if code is not None else None
    return GuestTrap(f"{name} ({reason})" if name else reason)
