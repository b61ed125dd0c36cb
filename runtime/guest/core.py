"""A live core-module instance under ABI v1, behind the interface pools use (guest layer).

ABI v1 (docs/abi.md): the module exports `memory` and `firebox_alloc(len) -> ptr`; each
handler export takes the input's (ptr, len) and returns the output's location packed in
an i64 (`ptr << 32 | len`). The host provides `firebox.fail(ptr, len)` (the call's
output is then an error message), the `firebox.*` functions of the registered host APIs
(`firebox.log(ptr, len)`, see `firebox.runtime.host`), and WASI preview1 with
stdout/stderr captured into the invocation's log and nothing else granted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import wasmtime
from firebox.runtime.errors import (
    FireboxError,
    GuestTrap,
    HandlerError,
    InvalidArtifact,
    PayloadTooLarge,
    ResponseTooLarge,
)
from firebox.runtime.guest.deadlines import shadow_blocking_wasi
from firebox.runtime.guest.protocol import CallContext, CallStats
from firebox.runtime.guest.store import apply_limits, arm
from firebox.runtime.guest.traps import trap_error
from firebox.runtime.guest.wasmtime_raw import RawCall, read_memory, store_data, write_memory
from firebox.runtime.host import HOST_APIS
from firebox.runtime.host.api import HostState
from firebox.runtime.host.log import LogBuffer
from firebox.runtime.limits import MAX_ERROR_MESSAGE_CHARS, Limits

ALLOC_EXPORT = "firebox_alloc"
INIT_EXPORT = "firebox_init"
ABI_IMPORT_MODULE = "firebox"
FAIL_IMPORT = "fail"
WASI_MODULES = ("wasi_snapshot_preview1",)


class _StoreState(HostState):
    """A core Store's data: the host APIs' state, the call's failure and the guest memory."""

    __slots__ = ("failure", "memory")

    def __init__(self, log: LogBuffer) -> None:
        super().__init__(log)
        self.failure: bytes | None = None
        self.memory: wasmtime.Memory | None = None


class _CallerMemory:
    """The calling instance's `memory` export, as host APIs read it."""

    __slots__ = ("_caller",)

    def __init__(self, caller: wasmtime.Caller) -> None:
        self._caller = caller

    def read(self, ptr: int, length: int) -> bytes | None:
        memory = self._caller.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            return None
        return read_memory(memory, self._caller, ptr, length)


def _host_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a host API's core function: hand it the Store's state and memory, never raise."""

    def call(caller: wasmtime.Caller, *args: int) -> Any:
        # Host functions must not raise (wasmtime-py passes exceptions through a global
        # that another thread can steal): a failing host function does nothing.
        try:
            return fn(store_data(caller), _CallerMemory(caller), *args)
        except Exception:
            return None

    return call


def _host_fail(caller: wasmtime.Caller, ptr: int, length: int) -> None:
    state: _StoreState = store_data(caller)
    # Read no more than the worker sends on (a 100 MiB message is clipped, not copied).
    length = min(length, 4 * MAX_ERROR_MESSAGE_CHARS)
    state.failure = _CallerMemory(caller).read(ptr, length) or b"handler failed"


def _host_imports() -> frozenset[str]:
    return frozenset({FAIL_IMPORT, *(name for api in HOST_APIS for name in api.core)})


def _valtype(name: str) -> wasmtime.ValType:
    return {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64}[name]()


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
        if imp.module == ABI_IMPORT_MODULE and imp.name not in _host_imports():
            raise InvalidArtifact(f"unknown firebox host function `firebox.{imp.name}`")
    return handlers


def make_linker(engine: wasmtime.Engine) -> wasmtime.Linker:
    """Return a Linker with the `firebox` host module and WASI preview1 defined (its
    blocking `poll_oneoff` bounded by the call's deadline)."""
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    shadow_blocking_wasi(linker)
    ty = wasmtime.FuncType([wasmtime.ValType.i32(), wasmtime.ValType.i32()], [])
    linker.define_func(ABI_IMPORT_MODULE, FAIL_IMPORT, ty, _host_fail, access_caller=True)
    for api in HOST_APIS:
        for name, fn in api.core.items():
            ty = wasmtime.FuncType(
                [_valtype(t) for t in fn.params], [_valtype(t) for t in fn.results]
            )
            wrapped = _host_function(fn.call)
            linker.define_func(ABI_IMPORT_MODULE, name, ty, wrapped, access_caller=True)
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
        state = _StoreState(LogBuffer(self.limits.max_log_bytes))
        store = wasmtime.Store(self.engine, data=state)
        apply_limits(store, self.limits)
        # Start functions and `firebox_init` get the whole timeout, host calls included.
        state.deadline = time.monotonic() + self.limits.timeout_s
        wasi = wasmtime.WasiConfig()
        wasi.env = list(self.env.items())

        def output(data: Any) -> None:
            # Into the current invocation's bounded log, never to the node's stdout.
            state.log.write(bytes(data).decode("utf-8", "replace"))

        wasi.stdout_custom = output
        wasi.stderr_custom = output
        store.set_wasi(wasi)
        try:
            instance = self._pre.instantiate(store)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            raise _error(exc, store, state, self.limits) from None
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
            self._guard(lambda: init(store))

    def call(self, export: str, payload: bytes, ctx: CallContext) -> tuple[bytes, CallStats]:
        """Run handler `export` on `payload`; see GuestInstance.call."""
        limits = self.limits
        if len(payload) > limits.max_request_bytes:
            raise PayloadTooLarge("Request payload", len(payload), limits.max_request_bytes)
        func = self._handlers.get(export) or self._handler(export)
        store = self.store
        self.state.log = ctx.log
        self.state.failure = None
        self.state.deadline = ctx.deadline
        arm(store, fuel=limits.fuel, seconds=max(0.0, ctx.deadline - time.monotonic()))

        def run() -> bytes:
            ptr = self._alloc.i32(len(payload))
            if payload:
                if ptr <= 0 or ptr + len(payload) > self._memory.data_len(store):
                    raise GuestTrap(f"{ALLOC_EXPORT} returned an out-of-bounds pointer {ptr}")
                write_memory(self._memory, store, ptr, payload)
            packed = func.i64(ptr, len(payload))
            out_ptr, out_len = (packed >> 32) & 0xFFFFFFFF, packed & 0xFFFFFFFF
            if out_len > limits.max_response_bytes:
                raise ResponseTooLarge(out_len, limits.max_response_bytes)
            output = read_memory(self._memory, store, out_ptr, out_len)
            if output is None:
                raise GuestTrap(f"handler returned an out-of-bounds output ({out_ptr}, {out_len})")
            return output

        output: bytes = self._guard(run)
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

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except FireboxError:
            raise
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            self.reusable = False
            raise _error(exc, self.store, self.state, self.limits) from None

    def close(self) -> None:
        """Drop the Store (and with it the instance's memory slot)."""
        self.reusable = False
        self._exports = None  # type: ignore[assignment]
        store, self.store = self.store, None  # type: ignore[assignment]
        if store is not None:
            store.close()


def _error(
    exc: Exception, store: wasmtime.Store, state: _StoreState, limits: Limits
) -> FireboxError:
    """Translate a wasmtime trap or error of a core instance into firebox's typed error."""
    try:
        memory = state.memory.data_len(store) if state.memory is not None else 0
    except Exception:
        memory = 0
    return trap_error(
        exc,
        fuel=limits.fuel,
        timeout_s=limits.timeout_s,
        memory_limit=limits.memory_bytes,
        memory_used=memory,
    )
