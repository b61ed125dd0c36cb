"""The `capabilities` host interface: one `call(op, request)` entry that runs a granted
operation (a table read, a bucket write, an outbound request) and answers in JSON
(host layer).

Why one JSON entry instead of a typed WIT function per operation: wasmtime-py lifts and
lowers a component `list<u8>` element by element in Python (~1.7 s per MiB, measured,
docs in WASMTIME_NOTES), while a `string` crosses in one copy; bytes travel base64 in
the JSON. New operations then need no new interpreter build. Each operation module
(kv.py, blobs.py, http.py) maps op names to functions of (HostState, request dict)
returning a reply dict; they raise FireboxError, which becomes `{"error": {...}}` here.
The host function itself never raises (see api.py).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from firebox.runtime import config
from firebox.runtime.errors import BadRequest, CapabilityDenied, FireboxError, HostCallFailed
from firebox.runtime.host.api import HostAPI, HostState

Operation = Callable[[HostState, dict[str, Any]], dict[str, Any]]

#: Process-wide counts of capability calls and refusals ("kv.get", "denied.http"), beside
#: each call's own `HostState.calls`.
COUNTS: dict[str, int] = {}
#: Epoch ticks past the deadline a call cut off by it waits before returning to the guest.
OUTLAST_TICKS = 3
_counts_lock = threading.Lock()


def count(state: HostState, name: str) -> None:
    """Count one call (or refusal) named `name` for the running call and the process."""
    state.calls[name] = state.calls.get(name, 0) + 1
    with _counts_lock:
        COUNTS[name] = COUNTS.get(name, 0) + 1


def max_request_chars() -> int:
    """Return the longest request text accepted (the largest payload, base64, plus slack)."""
    payload = max(
        config.FIREBOX_BLOB_MAX_OBJECT_BYTES.get(), config.FIREBOX_HTTP_MAX_REQUEST_BYTES.get()
    )
    return payload * 4 // 3 + 64 * 1024


def remaining_s(state: HostState) -> float:
    """Return the seconds left before the running call's deadline; raises HostCallFailed
    once it has passed."""
    if state.deadline is None:
        return float("inf")
    left = state.deadline - time.monotonic()
    if left <= 0:
        raise HostCallFailed("the invocation's deadline has passed")
    return left


def grants_of(state: HostState) -> Any:
    """Return the running function's Grants (none granted when it has none)."""
    from firebox.runtime.grants import Grants

    return state.grants if state.grants is not None else Grants()


def dispatch(operations: Mapping[str, Operation], state: HostState, op: str, request: str) -> str:
    """Run `op` on the JSON `request` and return the JSON reply (never raises)."""
    try:
        return _dispatch(operations, state, op, request)
    finally:
        _outlast_deadline(state)


def _outlast_deadline(state: HostState) -> None:
    # A call that ended at the invocation's deadline (an upstream cut off by it) marks
    # the call expired (it ends in TimedOut even if the guest catches the error) and
    # returns a few epoch ticks late, so the guest usually traps at once.
    if state.deadline is None:
        return
    late = time.monotonic() - (state.deadline - config.EPOCH_TICK_S)
    if late >= 0:
        state.expired = True
        time.sleep(max(0.0, min(OUTLAST_TICKS * config.EPOCH_TICK_S - late, 0.1)))


def _dispatch(operations: Mapping[str, Operation], state: HostState, op: str, request: str) -> str:
    try:
        if len(request) > max_request_chars():
            raise BadRequest(f"a capability request may be at most {max_request_chars()} chars")
        fn = operations.get(op)
        if fn is None:
            raise BadRequest(f"unknown capability operation {op!r}")
        remaining_s(state)
        data = json.loads(request) if request else {}
        if not isinstance(data, dict):
            raise BadRequest("a capability request must be a JSON object")
        count(state, op)
        reply = fn(state, data)
        return json.dumps({"ok": reply}, separators=(",", ":"))
    except CapabilityDenied as exc:
        count(state, f"denied.{getattr(exc, 'kind', 'unknown')}")
        return _error(exc)
    except FireboxError as exc:
        return _error(exc)
    except Exception as exc:  # a bug or a backend failure: a clear error, never a trap
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        return _error(FireboxError(f"the host could not run {op}: {message}"))


def _error(exc: FireboxError) -> str:
    return json.dumps({"error": exc.to_dict()}, separators=(",", ":"), default=str)


def api(*tables: Mapping[str, Operation]) -> HostAPI:
    """Return the `capabilities` host API serving every operation of `tables`."""
    operations: dict[str, Operation] = {}
    for table in tables:
        operations.update(table)

    def call(state: HostState, op: str, request: str) -> str:
        return dispatch(operations, state, op, request)

    return HostAPI(interface="capabilities@1.0.0", component={"call": call})
