"""Capturing a function version's post-init state at deploy, on a capture engine (engine layer).

The capture engine is an Engine of its own whose linear memories the host allocates
(memory.py), so module 0's memory can be read once the function is initialized. It runs
the split interpreter with the interpreter's own module 0, calls `load` (bundle install,
module import with its top-level code, handler resolution, the warm-up walk) and then
`snapshot` (SnapStart before-snapshot hooks, heap settled), has wasi-libc forget its
preopened directories (their handles belong to the capture's Store), reads the memory and turns it
into the per-version snapshot module (image.py). Its compiled code cannot be shared with
the serving engine (other settings), so it compiles the split interpreter once more,
cached on disk by digest.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from firebox.compiler.interpreter_split import RESET_PREOPENS_EXPORT, SplitInterpreter
from firebox.runtime import sandbox
from firebox.runtime.config import MiB
from firebox.runtime.engine import WASMTIME_VERSION
from firebox.runtime.errors import BadRequest, InvalidArtifact, MemoryLimitExceeded
from firebox.runtime.guest.component import handler_error
from firebox.runtime.guest.engine import EpochTicker
from firebox.runtime.guest.function_config import PythonFunctionConfig
from firebox.runtime.guest.store import arm, limit_memory
from firebox.runtime.guest.traps import trap_error
from firebox.runtime.host import aws
from firebox.runtime.host.log import monotonic_ms
from firebox.runtime.snapshot.image import snapshot_module
from firebox.runtime.snapshot.memory import HostMemoryCreator
from wasmtime.component import Component, Linker, Variant

#: Largest linear memory a capture may use (the engine's memory maximum by default).
CAPTURE_MAX_MEMORY = 1024 * MiB
#: Init log text kept from a capture (print/logging at module level), returned to deploy.
CAPTURE_LOG_BYTES = 64 * 1024


@dataclass
class Capture:
    """The result of one capture: the snapshot module and what it took."""

    module: bytes  # the per-version module 0, a core wasm module
    memory_bytes: int  # the captured linear memory's size
    init_log: str  # what the function printed or logged during init
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> wall time


class CaptureEngine:
    """An Engine with host-allocated memories, and the split interpreter compiled for it."""

    def __init__(self, split: SplitInterpreter, cache_dir: Path) -> None:
        self.split = split
        self.creator = HostMemoryCreator(CAPTURE_MAX_MEMORY)
        config = wasmtime.Config()
        config.consume_fuel = True
        config.epoch_interruption = True
        config.wasm_component_model = True
        config.cranelift_opt_level = "speed"
        config.memory_reservation = CAPTURE_MAX_MEMORY
        config.memory_guard_size = 0
        config.memory_reservation_for_growth = 0
        config.memory_may_move = False
        config.parallel_compilation = True
        self.creator.install(config)
        self.engine = wasmtime.Engine(config)
        self._ticker = EpochTicker(self.engine)
        self.cache_dir = cache_dir / f"capture-wasmtime-{WASMTIME_VERSION}"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.main_bytes = split.main_module.read_bytes()
        self.component = self._compiled_component(split.component)
        self.main = self._compiled_module(self.main_bytes)

    def _compiled_component(self, path: Path) -> Component:
        data = path.read_bytes()
        cached = self.cache_dir / f"{hashlib.sha256(data).hexdigest()}.ccwasm"
        if cached.is_file():
            try:
                return Component.deserialize_file(self.engine, str(cached))
            except wasmtime.WasmtimeError:
                cached.unlink(missing_ok=True)
        component = Component(self.engine, data)
        _write(cached, bytes(component.serialize()))
        return component

    def _compiled_module(self, data: bytes) -> wasmtime.Module:
        cached = self.cache_dir / f"{hashlib.sha256(data).hexdigest()}.cwasm"
        if cached.is_file():
            try:
                return wasmtime.Module.deserialize_file(self.engine, str(cached))
            except wasmtime.WasmtimeError:
                cached.unlink(missing_ok=True)
        module = wasmtime.Module(self.engine, data)
        _write(cached, bytes(module.serialize()))
        return module

    def capture(
        self,
        bundle: bytes,
        handler: str,
        config: PythonFunctionConfig,
        on_initialized: Callable[[], None] | None = None,
    ) -> Capture:
        """Initialize the function once and return its snapshot module.

        Raises HandlerError for the function's init errors (import error, missing handler,
        an exception at module level or in a before-snapshot hook, as `load` reports
        them), MemoryLimitExceeded/OutOfFuel/TimedOut/GuestTrap when init traps, and
        InvalidArtifact when the interpreter's layout is not the one snapshots need.
        """
        seconds: dict[str, float] = {}
        log = _InitLog()
        memory_limit = config.memory_mb * MiB
        store = wasmtime.Store(self.engine)
        limit_memory(store, memory_limit)
        store.set_wasi(sandbox.wasi_config(store, bundle))  # /var/task, /tmp, as it runs
        arm(store, fuel=config.load_fuel, seconds=config.load_timeout_s)
        try:
            linker = Linker(self.engine)
            linker.add_wasip2()
            with linker.root() as root:
                root.add_module(self.split.import_name, self.main)
                with root.add_instance("firebox:function/host@1.0.0") as host:
                    host.add_func("log", log.write)
                    host.add_func("monotonic-ms", _monotonic_ms)
                with root.add_instance(CAPABILITIES_INSTANCE) as capabilities:
                    capabilities.add_func("call", _no_capabilities_at_init)
            started = time.perf_counter()
            created = self.creator.record()
            try:
                instance = linker.instantiate(store, self.component)
            except wasmtime.WasmtimeError as exc:
                if "minimum" in str(exc) or "memory" in str(exc):
                    raise MemoryLimitExceeded(memory_limit) from exc
                raise InvalidArtifact(f"cannot instantiate the split interpreter: {exc}") from exc
            finally:
                self.creator.stop_recording()
            if len(created) != 1:
                raise InvalidArtifact(
                    f"the split interpreter made {len(created)} linear memories, not 1"
                )
            seconds["instantiate"] = time.perf_counter() - started
            for export, args in (
                ("load", (b"", handler, config.to_wit())),  # the bundle is at /var/task
                ("snapshot", ()),
                # wasi-libc forgets its preopened directories (and closes their handles):
                # a restored instance is a new Store whose handle table is empty, so it
                # must fetch them afresh on its first filesystem call.
                (RESET_PREOPENS_EXPORT, ()),
            ):
                started = time.perf_counter()
                _call(store, instance, export, args, memory_limit, config)
                seconds[export] = time.perf_counter() - started
            if on_initialized is not None:  # the function's code is done: only ours is left
                on_initialized()
            started = time.perf_counter()
            memory = created[0].read()
            seconds["read_memory"] = time.perf_counter() - started
        finally:
            store.close()
        started = time.perf_counter()
        module = snapshot_module(self.main_bytes, memory)
        seconds["build_module"] = time.perf_counter() - started
        return Capture(module, len(memory), log.text(), seconds)


def _call(
    store: wasmtime.Store,
    instance: Any,
    export: str,
    args: tuple[Any, ...],
    memory_limit: int,
    config: PythonFunctionConfig,
) -> None:
    func = instance.get_func(store, export)
    if func is None:
        raise InvalidArtifact(f"the interpreter does not export {export!r}; rebuild it")
    try:
        result = func(store, *args)
        func.post_return(store)
    except wasmtime.WasmtimeError as exc:
        raise trap_error(
            exc, fuel=config.load_fuel, timeout_s=config.load_timeout_s, memory_limit=memory_limit
        ) from exc
    if isinstance(result, Variant) and result.tag == "err":
        raise handler_error(result.payload)
    if result is not None and not isinstance(result, Variant):
        raise handler_error(result)


# Initialization runs once, at deploy, on the node, for every later instance: it has no
# invocation, so no grant to check a capability call against and nothing to bill it to.
CAPABILITIES_INSTANCE = "firebox:function/capabilities@1.0.0"


def _no_capabilities_at_init(store: wasmtime.StoreContext, op: str, request: str) -> str:
    """Refuse a capability call made by module-level code (the guest raises it); only
    botocore's credentials fetch (a client made at module level) is answered, with
    credentials already expired, so real ones are fetched at the first call that signs."""
    if op == "http.request":
        try:
            url = str(json.loads(request).get("url") or "")
        except (ValueError, AttributeError):
            url = ""
        if aws.is_credentials_url(url):
            document = json.dumps(aws.expired_document()).encode()
            return json.dumps({"ok": aws.reply(200, document)})
    error = BadRequest(
        f"{op} was called while the function initializes (module-level code runs once, at"
        " deploy, before the snapshot every instance starts from): make capability calls"
        " (tables, buckets, outbound HTTP) in the handler; creating clients at module level"
        " is fine"
    )
    return json.dumps({"error": error.to_dict()})


class _InitLog:
    def __init__(self) -> None:
        self._parts: list[str] = []
        self._left = CAPTURE_LOG_BYTES

    def write(self, store: wasmtime.StoreContext, level: Any, message: str) -> None:
        # Host functions must not raise (wasmtime-py passes exceptions through a global).
        try:
            text = message[: self._left]
            self._left -= len(text)
            if text:
                self._parts.append(text)
        except Exception:
            pass

    def text(self) -> str:
        return "".join(self._parts)


def _monotonic_ms(store: wasmtime.StoreContext) -> int:
    return monotonic_ms()


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{threading.get_ident()}")
    tmp.write_bytes(data)
    tmp.replace(path)


def capture_summary(capture: Capture) -> str:
    """Return a one-line JSON summary of a capture (sizes and phase times), for logs."""
    return json.dumps(
        {
            "memory_mib": round(capture.memory_bytes / MiB, 1),
            "module_mib": round(len(capture.module) / MiB, 1),
            **{k: round(v * 1000, 1) for k, v in capture.seconds.items()},
        }
    )
