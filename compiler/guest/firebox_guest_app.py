"""The shared Python interpreter's entry points: `load` a bundle, `handle` events (guest side).

componentize-py builds this module into the firebox interpreter component once per
firebox version. Importing it pre-imports the standard library (the snapshot holds it);
each instance then gets one function's bundle through `load` and serves `handle` calls
with Lambda's Python programming model.
"""

from __future__ import annotations

import decimal
import gc
import importlib
import json
import os
import random
import sys
import traceback
from collections.abc import Callable
from typing import Any

import firebox  # noqa: F401 - the guest library and HTTP through the host, in the snapshot
import firebox_guest_context
import firebox_guest_fs
import firebox_guest_sdk
import firebox_guest_stdlib  # noqa: F401 - imported for its effect: the stdlib snapshot
import firebox_guest_time  # noqa: F401 - imported for its effect: time.sleep through the host
import snapshot_restore_py
import wit_world
from componentize_py_types import Err
from firebox_guest_bundle import install as install_bundle
from firebox_guest_context import LambdaContext
from firebox_guest_logs import LogBudget, LogStream
from firebox_guest_logs import install as install_logs
from wit_world.imports import host
from wit_world.imports.types import FunctionConfig, InvocationContext

Handler = Callable[[Any, Any], Any]


def _error(
    error_type: str, message: str, stack: list[str], request_id: str = "", **extra: Any
) -> str:
    payload = {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id,
        "stackTrace": stack,
        **extra,
    }
    return json.dumps(payload)


# Frames kept in `stackTrace` (the innermost ones): formatting the ~1,000 frames of a
# RecursionError with their source lines costs about a second inside the interpreter.
STACK_LIMIT = 50


def _stack(exc: BaseException) -> list[str]:
    # Drop this module's own frames, as Lambda's runtime drops its bootstrap frames.
    extracted = traceback.extract_tb(exc.__traceback__, limit=-STACK_LIMIT)
    frames = [f for f in extracted if f.filename != __file__]
    return traceback.format_list(frames)


def _exception_error(exc: BaseException, request_id: str = "") -> str:
    error_type, message = type(exc).__name__, ""
    try:
        message = str(exc)
        if isinstance(exc, OverflowError) and "index-sized integer" in message:
            # wasm32 CPython rejects sizes past 2**31 before allocating; on Lambda's 64-bit
            # CPython the same `bytearray(10**10)` is a MemoryError, so report it as one.
            error_type = "MemoryError"
            message += " (more memory than a WebAssembly guest can address)"
        return _error(error_type, message, _stack(exc), request_id)
    except BaseException:  # e.g. MemoryError while formatting
        return _error(error_type, message or "(error message unavailable)", [], request_id)


def _json_default(value: object) -> Any:
    # Lambda's Python runtime serializes Decimal (common with DynamoDB) as a number.
    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class _State:
    config: FunctionConfig
    handler: Handler
    budget: LogBudget
    streams: tuple[LogStream, LogStream]


_state: _State | None = None

# The event `prepare` decoded, for the next `handle` (which then gets no event).
_NOTHING = object()
_prepared: Any = _NOTHING


def _set_environment(config: FunctionConfig, handler: str) -> None:
    stream = config.log_stream_name or firebox_guest_context.log_stream_name(
        config.function_version
    )
    os.environ.clear()
    os.environ.update(firebox_guest_context.environment(config, handler, stream))


def _resolve(handler: str) -> Handler:
    module_name, _, function_name = handler.rpartition(".")
    if not module_name or not function_name:
        raise Err(
            _error(
                "Runtime.MalformedHandlerName",
                f"Bad handler '{handler}': not enough values to unpack (expected 2, got 1)",
                [],
            )
        )
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        raise Err(
            _error(
                "Runtime.UserCodeSyntaxError",
                f"Syntax error in module '{module_name}': {exc}",
                _stack(exc),
            )
        ) from None
    except ImportError as exc:
        raise Err(
            _error(
                "Runtime.ImportModuleError",
                f"Unable to import module '{module_name}': {exc}",
                _stack(exc),
            )
        ) from None
    except BaseException as exc:
        raise Err(_exception_error(exc)) from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise Err(
            _error(
                "Runtime.HandlerNotFound",
                f"Handler '{function_name}' missing on module '{module_name}'",
                [],
            )
        )
    return function  # type: ignore[no-any-return]


def _warm_up(state: _State) -> None:
    """Walk the invocation path once without the user's code, while the pool fills.

    The first call on a fresh instance otherwise pays for touching (copy-on-write
    faulting) the interpreter pages the call path uses: ~3 ms against ~1 ms for a second
    call, measured in bench/cases/python.py. Nothing here is visible to the function.
    """
    sample = {"warm": [1, 2.5, "x", None, True], "nested": {"k": "v" * 64}}
    json.dumps(json.loads(json.dumps(sample)), default=_json_default).encode()
    state.budget.reset("")
    gc.collect(0)
    host.monotonic_ms()


def _run_hooks(hooks: list[snapshot_restore_py.Hook], error_type: str) -> None:
    try:
        for function, args, kwargs in hooks:
            function(*args, **kwargs)
    except BaseException as exc:
        raise Err(_error(error_type, f"{type(exc).__name__}: {exc}", _stack(exc))) from None
    finally:
        if _state is not None:
            for stream in _state.streams:
                stream.flush()


#: Free heap a snapshot keeps for its invocations: a share of the function's memory.
HEAP_HEADROOM_SHARE = 8
HEAP_HEADROOM_MAX = 16 << 20


def _reserve_heap(memory_limit_mb: int) -> None:
    """Grow the heap by a block and free it, so the snapshot holds free heap malloc knows.

    An instance is reset in place between invocations only if its linear memory did not
    grow (the host cannot shrink it back); an invocation that allocates more than the
    heap's free space would grow it. The freed block stays malloc's (wasi-libc never
    gives memory back), costs nothing in the snapshot (its pages are zeros, and zero
    pages are neither stored nor resident until written).
    """
    size = min(HEAP_HEADROOM_MAX, (memory_limit_mb << 20) // HEAP_HEADROOM_SHARE)
    while size >= 1 << 20:
        try:
            block = bytearray(size)
        except MemoryError:
            size //= 2
            continue
        del block
        return


class WitWorld(wit_world.WitWorld):
    """The exports of the `firebox:function/function` world."""

    def snapshot(self) -> None:
        if _state is None:
            raise Err(_error("Runtime.NotLoaded", "no function was loaded", []))
        _run_hooks(snapshot_restore_py.get_before_snapshot(), "Runtime.BeforeSnapshotError")
        _reserve_heap(_state.config.memory_limit_mb)
        # As at the end of the interpreter's own build: keep the collector off the
        # snapshot's heap in every restored instance, so its pages stay shared.
        gc.collect()
        gc.freeze()

    def restore(self) -> None:
        if _state is None:
            raise Err(_error("Runtime.NotLoaded", "no function was loaded", []))
        # The snapshot froze one PRNG state into every instance (os.urandom, secrets and
        # uuid4 read WASI's random source, which is the host's, so they already differ).
        random.seed()
        _run_hooks(snapshot_restore_py.get_after_restore(), "Runtime.AfterRestoreError")

    def load(self, bundle: bytes, handler: str, config: FunctionConfig) -> None:
        global _state
        if _state is not None:
            raise Err(_error("Runtime.AlreadyLoaded", "this instance already holds a function", []))
        state = _State()
        state.config = config
        state.budget = _BUDGET
        state.budget.limit = config.max_log_bytes
        state.streams = _STREAMS
        _set_environment(config, handler)
        # The snapshot froze one PRNG state into every instance; reseed from WASI random.
        random.seed()
        try:
            finder = install_bundle(bundle, [p for p in [firebox_guest_sdk.LAYER_ROOT] if p])
        except Exception as exc:
            raise Err(_error("Runtime.InvalidBundle", f"Invalid code bundle: {exc}", [])) from None
        firebox_guest_sdk.prefer_bundle(finder.has_module, finder.names())
        firebox_guest_fs.enter()
        try:
            state.handler = _resolve(handler)
        except Err as err:
            firebox_guest_context.log_error(err.value)  # Lambda logs init errors too
            raise
        finally:
            for stream in state.streams:
                stream.flush()
        _warm_up(state)
        _state = state

    def prepare(self, event: str) -> None:
        global _prepared
        _prepared = _NOTHING
        _prepared = _decode(event, "")

    def handle(self, event: str | None, context: InvocationContext) -> str:
        global _prepared
        state = _state
        if state is None:
            raise Err(_error("Runtime.NotLoaded", "no function was loaded", []))
        request_id = context.aws_request_id
        state.budget.reset(request_id)
        try:
            if event is None:
                payload, _prepared = _prepared, _NOTHING
                if payload is _NOTHING:
                    raise Err(_error("Runtime.NotPrepared", "no event was prepared", []))
            else:
                payload = _decode(event, request_id)
            try:
                result = state.handler(payload, LambdaContext(state.config, context))
            except SystemExit as exc:
                raise Err(
                    _error(
                        "Runtime.ExitError",
                        f"RequestId: {request_id} Error: Runtime exited with error:"
                        f" exit status {exc.code}",
                        [],
                        request_id,
                    )
                ) from None
            except BaseException as exc:
                error = _exception_error(exc, request_id)
                firebox_guest_context.log_error(error)  # `[ERROR] Type: message` + traceback
                raise Err(error) from None
            try:
                # ensure_ascii (the default): the text is ASCII, so its length is its size.
                text = json.dumps(result, default=_json_default)
            except (TypeError, ValueError, OverflowError, RecursionError) as exc:
                raise Err(
                    _error(
                        "Runtime.MarshalError",
                        f"Unable to marshal response: {exc}",
                        [],
                        request_id,
                    )
                ) from None
            if len(text) > context.max_response_bytes:
                # Said before the text crosses the boundary; the host names its limit.
                raise Err(
                    _error(
                        "Runtime.ResponseTooLarge",
                        f"Response payload of {len(text)} bytes is above the limit",
                        [],
                        request_id,
                        responseBytes=len(text),
                    )
                )
            return text
        finally:
            for stream in state.streams:
                stream.flush()
            sys.stdout.flush()


def _decode(event: str, request_id: str) -> Any:
    """Return the decoded JSON event (None for an empty one); `Runtime.UnmarshalError`."""
    try:
        return json.loads(event) if event else None
    except (ValueError, RecursionError) as exc:
        raise Err(
            _error("Runtime.UnmarshalError", f"Unable to parse event: {exc}", [], request_id)
        ) from None


# Built into the snapshot (saves ~1 ms per load): stdout, stderr and the root logger go to
# the host; `load` only sets the function's log limit. Nothing may print after this at
# build time (host imports do not exist during pre-initialization).
_BUDGET = LogBudget(0)
_STREAMS = install_logs(_BUDGET)

# Last step of the build-time snapshot: move every object made so far into the permanent
# generation, so the collector never walks (and dirties) the shared snapshot heap in an
# instance; like gc.freeze() before fork(). It keeps copy-on-write pages shared.
gc.freeze()
