"""Fresh instances of a function version from its snapshot, on the serving engine (engine layer).

The split interpreter (compiled once per interpreter build) is linked with the version's
snapshot module in place of module 0, through the component linker; nothing is loaded
at instantiation. Each instance then gets the `restore` export (reseed `random`, run the
SnapStart after-restore hooks) before it is handed out, so a pool's ready instances are
unique and the first invocation pays for none of it.
"""

from __future__ import annotations

import math
import os

import wasmtime
from firebox.runtime.config import EPOCH_TICK_S, MiB
from firebox.runtime.errors import InvalidArtifact, MemoryLimitExceeded, NodeAtCapacity
from firebox.runtime.python_guest import (
    _LOG_SLACK_BYTES,
    _STATES,
    PythonFunctionConfig,
    PythonInstance,
    _CallState,
    _classify,
    _handler_error,
    _host_log,
    _host_monotonic_ms,
    _NullSink,
    _store_key,
)
from wasmtime.component import Component, Linker, Variant

#: Fuel and wall time allowed for `restore` (reseeding and the after-restore hooks).
RESTORE_FUEL = int(os.environ.get("FIREBOX_SNAPSHOT_RESTORE_FUEL", 2_000_000_000))
RESTORE_TIMEOUT_S = float(os.environ.get("FIREBOX_SNAPSHOT_RESTORE_TIMEOUT_S", 10.0))


class SnapshotProgram:
    """A Python function version that makes instances from its snapshot (no `load`)."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        component: Component,
        snapshot: wasmtime.Module,
        memory_bytes: int,
        config: PythonFunctionConfig,
        import_name: str,
    ) -> None:
        self.engine = engine
        self.component = component
        self.snapshot = snapshot
        self.memory_bytes = memory_bytes
        self.config = config
        self._linker = Linker(engine)
        self._linker.add_wasip2()
        with self._linker.root() as root:
            root.add_module(import_name, snapshot)
            with root.add_instance("firebox:function/host@1.0.0") as host:
                host.add_func("log", _host_log)
                host.add_func("monotonic-ms", _host_monotonic_ms)

    def instantiate(self) -> PythonInstance:
        """Return a new instance in the function's post-init state, restored and reseeded.

        Raises MemoryLimitExceeded when the function's memory is below the snapshot's
        size, NodeAtCapacity when the pooling allocator is full, HandlerError when an
        after-restore hook raises (`Runtime.AfterRestoreError`), and TimedOut/OutOfFuel/
        GuestTrap when restoring traps.
        """
        memory_limit = self.config.memory_mb * MiB
        if self.memory_bytes > memory_limit:
            error = MemoryLimitExceeded(memory_limit)
            error.message = (
                f"the function's initialized state needs {math.ceil(self.memory_bytes / MiB)}"
                f" MiB of memory, above its memory setting of {self.config.memory_mb} MiB;"
                " raise the function's memory"
            )
            error.args = (error.message,)
            raise error
        store = wasmtime.Store(self.engine)
        store.set_limits(memory_size=memory_limit)
        store.set_wasi(wasmtime.WasiConfig())  # no filesystem, env, args or network
        store.set_fuel(RESTORE_FUEL)
        store.set_epoch_deadline(max(1, math.ceil(RESTORE_TIMEOUT_S / EPOCH_TICK_S)))
        key = _store_key(store)
        state = _CallState()
        _STATES[key] = state
        try:
            try:
                instance = self._linker.instantiate(store, self.component)
            except wasmtime.WasmtimeError as exc:
                if "maximum concurrent limit" in str(exc):
                    raise NodeAtCapacity(
                        "this worker has no free instance slot; retry shortly,"
                        " or raise FIREBOX_POOL_SLOTS"
                    ) from exc
                raise InvalidArtifact(f"cannot instantiate the snapshot: {exc}") from exc
            restore = instance.get_func(store, "restore")
            handle = instance.get_func(store, "handle")
            if restore is None or handle is None:
                raise InvalidArtifact("the interpreter does not export restore/handle; rebuild it")
            state.log_budget = self.config.max_log_bytes + _LOG_SLACK_BYTES
            try:
                result = restore(store)
                restore.post_return(store)
            except wasmtime.WasmtimeError as exc:
                raise _classify(
                    exc, fuel=RESTORE_FUEL, timeout_s=RESTORE_TIMEOUT_S, memory_limit=memory_limit
                ) from exc
            if isinstance(result, Variant) and result.tag == "err":
                raise _handler_error(result.payload)
            if result is not None and not isinstance(result, Variant):
                raise _handler_error(result)  # an untagged err: the error's bytes
        except BaseException:
            _STATES.pop(key, None)
            store.close()
            raise
        state.sink = _NullSink()
        return PythonInstance(store, key, state, handle, memory_limit, self.config.max_log_bytes)
