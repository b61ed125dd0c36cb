"""Python functions on the shared interpreter component: load a bundle, run calls (guest layer).

One `PythonProgram` per function version holds the compiled interpreter component, the
function's code bundle and its configuration; `instantiate()` makes a ready
`PythonInstance` (new Store, limits, WASI without capabilities, `load` export called),
off the request path. A `PythonInstance` belongs to one thread at a time.
`PythonGuestProgram` puts them behind the `GuestProgram` / `GuestInstance` protocols.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, Protocol

import wasmtime
from firebox.runtime import config, sandbox
from firebox.runtime.config import MiB
from firebox.runtime.errors import (
    GuestTrap,
    HandlerError,
    InvalidArtifact,
    InvocationError,
    ResponseTooLarge,
    TimedOut,
)
from firebox.runtime.guest.function_config import PythonFunctionConfig
from firebox.runtime.guest.protocol import CallContext, CallStats
from firebox.runtime.guest.store import arm, limit_memory
from firebox.runtime.guest.traps import trap_error
from firebox.runtime.guest.wasmtime_raw import ComponentParam, call_component, store_key
from firebox.runtime.host import HOST_APIS
from firebox.runtime.host.api import HostState, LogSink, NullSink
from firebox.runtime.limits import Limits
from wasmtime.component import Component, Func, Linker, Variant

#: Fuel and wall time allowed for `load` (importing the handler's modules). Lambda allows
#: 10 s for its init phase; importing a large vendored package in the guest takes ~1e8 fuel.
LOAD_FUEL = config.FIREBOX_PYTHON_LOAD_FUEL.get()
LOAD_TIMEOUT_S = config.FIREBOX_PYTHON_LOAD_TIMEOUT_S.get()
#: Fuel and wall time allowed for `restore` (reseeding and the after-restore hooks).
RESTORE_FUEL = config.FIREBOX_SNAPSHOT_RESTORE_FUEL.get()
RESTORE_TIMEOUT_S = config.FIREBOX_SNAPSHOT_RESTORE_TIMEOUT_S.get()

#: Log text the host accepts per call beyond the guest's own budget (the marker, a last
#: partial line); the guest enforces `max_log_bytes`, this bounds a guest that does not.
LOG_SLACK_BYTES = 4096


# Host functions receive a StoreContext; the Store's context pointer identifies the
# instance. A dict lookup keeps one Linker per program instead of one per instance.
STATES: dict[int | None, HostState] = {}


def _host_function(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a host API's component function: find the Store's state, never raise."""

    def call(store: wasmtime.StoreContext, *args: Any) -> Any:
        # Host functions must not raise: wasmtime-py passes exceptions through a global
        # that another thread can steal. Swallow everything.
        try:
            state = STATES.get(store_key(store))
            return fn(state if state is not None else HostState(log_budget=0), *args)
        except Exception:
            return None

    return call


def component_linker(engine: wasmtime.Engine) -> Linker:
    """Return a component Linker with WASI preview2 and every registered host API."""
    linker = Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:
        for api in HOST_APIS:
            if not api.component:
                continue
            with root.add_instance(api.wit_instance) as instance:
                for name, fn in api.component.items():
                    instance.add_func(name, _host_function(fn))
    return linker


#: The largest `max-response-bytes` the WIT record carries.
U32_MAX = 2**32 - 1


#: An event with more opening brackets than this may nest deeper than the guest's call
#: stack allows: it is decoded in `prepare`, where running out of stack is the event's
#: fault (the guest's decoder handles 2,000 levels; it traps somewhere below 5,000).
DEEP_EVENT_BRACKETS = 1000


def _may_nest_deeply(event: bytes) -> bool:
    return event.count(b"[") + event.count(b"{") > DEEP_EVENT_BRACKETS


def unmarshal_error(request_id: str, reason: str) -> HandlerError:
    """Return the `Runtime.UnmarshalError` of an event the guest cannot decode."""
    return HandlerError(
        {
            "errorMessage": f"Unable to parse event: {reason}",
            "errorType": "Runtime.UnmarshalError",
            "requestId": request_id,
            "stackTrace": [],
        }
    )


def handler_error(raw: Any) -> HandlerError:
    """Return the HandlerError for an `err` the guest returned (Lambda's error JSON bytes)."""
    if not isinstance(raw, bytes):
        raw = str(raw).encode()
    try:
        payload = json.loads(raw)
        if not isinstance(payload, dict):
            raise ValueError("not an object")
    except ValueError:
        payload = {
            "errorMessage": raw.decode("utf-8", "replace")[:4096],
            "errorType": "Runtime.InvalidErrorPayload",
            "stackTrace": [],
        }
    return HandlerError(payload)


class PythonProgram:
    """A Python function version, ready to make instances of the interpreter component."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        component: Component,
        bundle: bytes,
        handler: str,
        config: PythonFunctionConfig,
    ) -> None:
        self.engine = engine
        self.component = component
        self.bundle = bundle
        self.handler = handler
        self.config = config
        self._wit_config = config.to_wit()
        self._linker = component_linker(engine)

    def instantiate(self) -> PythonInstance:
        """Return a new instance with the function's bundle loaded.

        Raises `HandlerError` when the function's code fails to load (import error,
        missing handler, exception at module level: Lambda's init errors),
        `MemoryLimitExceeded`/`OutOfFuel`/`TimedOut`/`GuestTrap` when loading traps, and
        `InvalidArtifact` when the component does not implement the firebox world.
        """
        return start_instance(
            self._linker,
            self.component,
            self.config,
            "load",
            # The sandbox extracted the bundle at /var/task: send no bytes (wasmtime-py
            # lowers list<u8> element by element, ~2.5 s per MiB here).
            (b"", self.handler, self._wit_config),
            bundle=self.bundle,
            fuel=self.config.load_fuel,
            timeout_s=self.config.load_timeout_s,
        )


class _InitLog:
    """Keeps what `load` logged (the INIT phase), for the instance's first invocation log."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)


def start_instance(
    linker: Linker,
    component: Component,
    config: PythonFunctionConfig,
    init: str,
    args: tuple[Any, ...],
    *,
    bundle: bytes,
    fuel: int,
    timeout_s: float,
) -> PythonInstance:
    """Instantiate `component` in a new Store, call its `init` export with `args`, and
    return the ready instance (`init` is `load` for a fresh interpreter, `restore` for a
    snapshot).

    The instance sees `bundle` read-only at /var/task and a /tmp of its own (the
    sandbox); what `init` logged opens its first invocation's log. Raises `HandlerError` for the guest's own error,
    `MemoryLimitExceeded`/`OutOfFuel`/`TimedOut`/`NodeAtCapacity` for budgets, and
    `InvalidArtifact` when the component does not fit or lacks `init`/`handle`.
    """
    memory_limit = config.memory_mb * MiB
    store = wasmtime.Store(linker.engine)
    limit_memory(store, memory_limit)
    store.set_wasi(sandbox.wasi_config(store, bundle))  # /var/task, /tmp, no host
    arm(store, fuel=fuel, seconds=timeout_s)
    key = store_key(store)
    # Set-up output is dropped (the sink is a NullSink); grants are the version's.
    state = HostState(log_budget=0, grants=config.grants)
    state.function = (config.function_name, config.function_version)
    state.deadline = time.monotonic() + timeout_s  # host calls during `init` end by it
    STATES[key] = state
    try:
        try:
            instance = linker.instantiate(store, component)
        except wasmtime.WasmtimeError as exc:
            error = trap_error(exc, fuel=fuel, timeout_s=timeout_s, memory_limit=memory_limit)
            if isinstance(error, GuestTrap):  # not a budget: the component does not fit
                error = InvalidArtifact(f"cannot instantiate the interpreter: {exc}")
            raise error from exc
        start = instance.get_func(store, init)
        handle = instance.get_func(store, "handle")
        prepare = instance.get_func(store, "prepare")
        if start is None or handle is None or prepare is None:
            raise InvalidArtifact(f"the component does not export firebox's {init}/prepare/handle")
        state.log_budget = config.max_log_bytes + LOG_SLACK_BYTES
        state.log = init_log = _InitLog()
        try:
            if args:  # `load`: once per deploy, through wasmtime-py's generic lowering
                result = start(store, *args)
            else:  # `restore`: every instance made from a snapshot
                ok, failure = call_component(start, store, [])
                result = None if ok else Variant("err", failure)
            start.post_return(store)
        except wasmtime.WasmtimeError as exc:
            raise trap_error(
                exc, fuel=fuel, timeout_s=timeout_s, memory_limit=memory_limit
            ) from exc
        if isinstance(result, Variant) and result.tag == "err":
            raise handler_error(result.payload)
        if result is not None and not isinstance(result, Variant):
            raise handler_error(result)
    except BaseException:
        STATES.pop(key, None)
        store.close()
        raise
    state.log = NullSink()
    ready = PythonInstance(store, key, state, (prepare, handle), memory_limit, config.max_log_bytes)
    ready.init_log = "".join(init_log.parts)
    if init == "restore":
        ready.restore = start
    return ready


class PythonInstance:
    """One live interpreter instance with a function loaded; used by one thread at a time."""

    def __init__(
        self,
        store: wasmtime.Store,
        key: int | None,
        state: HostState,
        exports: tuple[Func, Func],
        memory_limit: int,
        max_log_bytes: int,
    ) -> None:
        self._max_log_bytes = max_log_bytes
        self._store: wasmtime.Store | None = store
        self._key = key
        self._state = state
        self._prepare, self._handle = exports
        self._memory_limit = memory_limit
        #: False once the instance trapped (a trapped component cannot be entered again).
        self.reusable = True
        #: Fuel the last call used (for metering); 0 before the first call.
        self.last_fuel_used = 0
        #: What `load` logged; written to the first call's log, as Lambda logs INIT output.
        self.init_log = ""
        #: The `restore` export of an instance made from a snapshot (run again on recycle).
        self.restore: Func | None = None
        #: Puts the memory back to the snapshot's (snapshot/reset.py); False if it cannot.
        self.resetter: Callable[[], bool] | None = None

    @property
    def recyclable(self) -> bool:
        """Whether `recycle` may bring this instance back to its post-init state."""
        return self.reusable and self.resetter is not None and self.restore is not None

    def recycle(self) -> bool:
        """Put a used instance back in the state a new one starts in; False if it cannot be.

        Its memory goes back to the snapshot's (the pages its calls wrote), its /tmp is
        emptied and `restore` runs again (random reseeded, after-restore hooks, their
        output kept for the next call's log), on the restore budgets. An instance that
        trapped, grew its memory or fails to restore is not recycled (close it).
        """
        store, restore, resetter = self._store, self.restore, self.resetter
        if store is None or restore is None or resetter is None or not self.reusable:
            return False
        if not resetter() or not sandbox.empty_tmp(store):
            self.reusable = False
            return False
        init_log = _InitLog()
        self._state.log = init_log
        self._state.log_budget = self._max_log_bytes + LOG_SLACK_BYTES
        self._state.deadline = time.monotonic() + RESTORE_TIMEOUT_S
        self._state.expired = False
        try:
            ok, _ = self._run(restore, [], RESTORE_FUEL, RESTORE_TIMEOUT_S, None)
            if not ok:  # an after-restore hook failed: a new instance reports it
                self.reusable = False
                return False
        except InvocationError:
            self.reusable = False
            return False
        finally:
            self._state.log = NullSink()
        self.init_log = "".join(init_log.parts)
        return True

    def call(
        self,
        event: bytes,
        request_id: str,
        deadline: float,
        fuel: int,
        log: LogSink,
        max_response_bytes: int | None = None,
        invoked_arn: str = "",
        client_context: str | None = None,
        identity: str | None = None,
    ) -> bytes:
        """Run the handler on `event` (JSON bytes) and return its JSON-encoded result.

        `deadline` is a `time.monotonic()` instant; `invoked_arn` the ARN the caller used
        (with its alias or version), `client_context`/`identity` Lambda's JSON. An event
        of `EVENT_PREPARE_BYTES` or more is decoded first in a call of its own, on its
        own budget (`event_decode_allowance_s`), and `deadline` moves by the time that
        took: decoding does not count against the handler's timeout. Raises
        `HandlerError` (the handler raised, the event is not UTF-8 JSON, or the result is
        not JSON-serializable; also MemoryError/RecursionError), `TimedOut`, `OutOfFuel`,
        `MemoryLimitExceeded`, `GuestTrap` (the instance is then no longer reusable), or
        `GuestTrap` when called on a closed or trapped instance; `ResponseTooLarge` when
        the result is above `max_response_bytes`, the limit the message names.
        """
        store = self._store
        if store is None or not self.reusable:
            raise GuestTrap("instance is closed or trapped and cannot be called again")
        try:
            decoded = event.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise unmarshal_error(
                request_id, f"the event is not UTF-8 text ({exc.reason})"
            ) from None
        if self.init_log:
            log.write(self.init_log)
            self.init_log = ""
        self._state.log = log
        self._state.log_budget = self._max_log_bytes + LOG_SLACK_BYTES
        self._state.deadline = deadline  # host calls (HTTP, storage) end by it
        self._state.expired = False
        try:
            if len(event) >= config.EVENT_PREPARE_BYTES or _may_nest_deeply(event):
                started = time.monotonic()
                error = self._decode(decoded, request_id, len(event))
                if error is not None:  # result<_, string> comes back untagged
                    raise handler_error(error)
                deadline += time.monotonic() - started
                text: str | None = None  # the guest holds the decoded event
            else:
                text = decoded
            timeout_s = max(0.0, deadline - time.monotonic())
            context = [
                ("aws-request-id", "string", request_id),
                ("deadline-ms", "u64", int(deadline * 1000)),
                ("invoked-function-arn", "string", invoked_arn),
                ("client-context", "option-string", client_context),
                ("identity", "option-string", identity),
                ("max-response-bytes", "u32", min(max_response_bytes or U32_MAX, U32_MAX)),
            ]
            params = [("option-string", text), ("record", context)]
            ok, result = self._run(self._handle, params, fuel, timeout_s, max_response_bytes)
        finally:
            self._state.log = NullSink()
        if not ok:
            raise self._guest_error(result, max_response_bytes)
        if isinstance(result, str):
            return result.encode()
        self.reusable = False
        raise GuestTrap(f"handle returned {type(result).__name__}, not a string")

    def _decode(self, text: str, request_id: str, size: int) -> Any:
        """Have the guest decode an event on the decoding budget; return its err, if any.

        json's C decoder recurses once per level of nesting, and the guest's call stack
        runs out between 2,000 and 5,000 levels: that trap is the event's fault, so it is
        the `Runtime.UnmarshalError` a bad event gets (the instance is discarded).
        """
        try:
            ok, error = self._run(
                self._prepare, [("string", text)], config.event_decode_fuel(size),
                config.event_decode_allowance_s(size), None,
            )  # fmt: skip
            return None if ok else error
        except GuestTrap as exc:
            if "call stack exhausted" not in str(exc):
                raise
            raise unmarshal_error(request_id, "the event nests too deeply") from exc

    def _run(
        self,
        func: Func,
        params: list[ComponentParam],
        fuel: int,
        timeout_s: float,
        max_response_bytes: int | None,
    ) -> tuple[bool, str | None]:
        """Call `func` (an export returning a result of strings) on a fresh budget;
        return (whether it is ok, its payload)."""
        store = self._store
        assert store is not None
        arm(store, fuel=fuel, seconds=timeout_s)
        try:
            result = call_component(func, store, params)
            func.post_return(store)
        except wasmtime.WasmtimeError as exc:
            self.reusable = False
            self.last_fuel_used = fuel
            raise trap_error(
                exc,
                fuel=fuel,
                timeout_s=timeout_s,
                memory_limit=self._memory_limit,
                max_response_bytes=max_response_bytes,
            ) from exc
        self.last_fuel_used = fuel - store.get_fuel()
        if self._state.expired:  # a host call ran into the deadline: the call timed out
            raise TimedOut(timeout_s)
        try:
            sandbox.check_tmp(store)
        except GuestTrap:
            self.reusable = False
            raise
        return result

    @staticmethod
    def _guest_error(payload: str | None, max_response_bytes: int | None) -> InvocationError:
        """Return the error for the `err` a call returned (Lambda's error JSON)."""
        error = handler_error(payload)
        size = error.payload.get("responseBytes")
        if error.payload.get("errorType") == "Runtime.ResponseTooLarge":
            limit = max_response_bytes if max_response_bytes is not None else U32_MAX
            return ResponseTooLarge(size if isinstance(size, int) else None, limit)
        return error

    def close(self) -> None:
        """Release the Store (and the instance's memory); idempotent."""
        store, self._store = self._store, None
        self.reusable = False
        STATES.pop(self._key, None)
        if store is not None:
            store.close()


class PythonGuest:
    """A PythonInstance behind the GuestInstance interface pools use."""

    def __init__(self, instance: PythonInstance, limits: Limits) -> None:
        self.instance = instance
        self.limits = limits

    @property
    def reusable(self) -> bool:
        """False once the instance trapped."""
        return self.instance.reusable

    @property
    def recyclable(self) -> bool:
        """Whether `recycle` may put the instance back in its post-init state."""
        return self.instance.recyclable

    def recycle(self) -> bool:
        """Put the used instance back in the state a new one starts in (False: close it)."""
        return self.instance.recycle()

    def call(self, export: str, payload: bytes, ctx: CallContext) -> tuple[bytes, CallStats]:
        """Run the handler (a Python function has one entry point, whatever `export` says)."""
        limit = self.limits.max_response_bytes
        output = self.instance.call(
            payload, ctx.request_id, ctx.deadline, self.limits.fuel, ctx.log, limit,
            invoked_arn=ctx.invoked_arn, client_context=ctx.client_context,
        )  # fmt: skip
        if len(output) > limit:
            raise ResponseTooLarge(len(output), limit)
        return output, CallStats(fuel=self.instance.last_fuel_used)

    def close(self) -> None:
        """Release the instance's Store."""
        self.instance.close()


class PythonInstances(Protocol):
    """What makes ready PythonInstances: a PythonProgram (runs `load` in each) or a
    SnapshotProgram (restores each from the version's snapshot)."""

    def instantiate(self) -> PythonInstance:
        """Return a new ready instance."""
        ...


class PythonGuestProgram:
    """A PythonProgram or SnapshotProgram that makes PythonGuest instances."""

    def __init__(self, program: PythonInstances, limits: Limits) -> None:
        self.program = program
        self.limits = limits

    def instantiate(self) -> PythonGuest:
        """Return a new instance with the function's code loaded."""
        return PythonGuest(self.program.instantiate(), self.limits)
