"""The one wasmtime Engine per process, its epoch ticker and its pooling allocator (engine layer)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import threading
from dataclasses import asdict, dataclass

import wasmtime
from firebox.runtime.config import EPOCH_TICK_S, MiB
from wasmtime import _ffi as ffi

WASMTIME_VERSION = importlib.metadata.version("wasmtime")


@dataclass(frozen=True)
class EngineSettings:
    """The settings an Engine is built with; their fingerprint keys the compiled cache."""

    pool_slots: int = 256
    max_memory_mb: int = 1024
    # Guard pages catch out-of-bounds access without bounds checks; 64 MiB keeps the
    # reservation per slot modest (the default 4 GiB per slot x 256 slots = 1 TiB of VM).
    memory_guard_mb: int = 64
    max_wasm_stack: int = 1 * MiB
    cranelift_opt_level: str = "speed"
    component_model: bool = True

    def fingerprint(self) -> str:
        """Return a short digest of everything that makes a serialized artifact loadable.

        The slot count is left out: it sizes the allocator, not the compiled code, so the
        node (few slots, compiles at deploy) and its workers (many slots) share the cache.
        """
        settings = asdict(self)
        del settings["pool_slots"]
        blob = json.dumps(
            {"wasmtime": WASMTIME_VERSION, "fuel": True, "epochs": True, **settings},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _pooling_allocator(config: wasmtime.Config, settings: EngineSettings) -> None:
    # The pooling allocator is only reachable through the raw C layer in wasmtime-py 50.
    pc = ffi.wasmtime_pooling_allocation_config_new()
    slots = settings.pool_slots
    ffi.wasmtime_pooling_allocation_config_total_memories_set(pc, slots)
    ffi.wasmtime_pooling_allocation_config_total_tables_set(pc, slots)
    ffi.wasmtime_pooling_allocation_config_total_stacks_set(pc, slots)
    # A componentize-py instance holds ~14 core instances: with `slots * 4` a worker ran out
    # at ~290 ready Python instances while memory slots were left (measured in bench/scale).
    ffi.wasmtime_pooling_allocation_config_total_core_instances_set(pc, slots * 16)
    ffi.wasmtime_pooling_allocation_config_total_component_instances_set(pc, slots)
    ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pc, settings.max_memory_mb * MiB)
    # componentize-py components hold several core instances, memories and tables.
    ffi.wasmtime_pooling_allocation_config_max_core_instances_per_component_set(pc, 64)
    ffi.wasmtime_pooling_allocation_config_max_memories_per_component_set(pc, 8)
    ffi.wasmtime_pooling_allocation_config_max_tables_per_component_set(pc, 16)
    ffi.wasmtime_pooling_allocation_config_max_tables_per_module_set(pc, 4)
    ffi.wasmtime_pooling_allocation_config_table_elements_set(pc, 100_000)
    ffi.wasmtime_pooling_allocation_config_max_core_instance_size_set(pc, 4 * MiB)
    ffi.wasmtime_pooling_allocation_config_max_component_instance_size_set(pc, 4 * MiB)
    ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pc)
    ffi.wasmtime_pooling_allocation_config_delete(pc)


def build_engine(settings: EngineSettings, *, parallel: bool = True) -> wasmtime.Engine:
    """Return a new Engine with fuel, epochs, CoW images and the pooling allocator on.

    `parallel=False` compiles on the calling thread only: the node validates small
    modules that way, so they never queue behind the interpreter compiling on the
    shared compile threads (a 1 ms module waited 23-63 s behind it, measured).
    """
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.wasm_component_model = settings.component_model
    config.cranelift_opt_level = settings.cranelift_opt_level
    config.max_wasm_stack = settings.max_wasm_stack
    config.memory_init_cow = True
    config.memory_reservation = settings.max_memory_mb * MiB
    config.memory_guard_size = settings.memory_guard_mb * MiB
    config.memory_reservation_for_growth = 0
    config.memory_may_move = False
    config.parallel_compilation = parallel
    _pooling_allocator(config, settings)
    return wasmtime.Engine(config)


class EpochTicker:
    """A daemon thread that increments the engine's epoch every `EPOCH_TICK_S` seconds."""

    def __init__(self, engine: wasmtime.Engine, period_s: float = EPOCH_TICK_S) -> None:
        self._engine = engine
        self._period = period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="firebox-epoch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            self._engine.increment_epoch()

    def stop(self) -> None:
        """Stop ticking (deadlines no longer advance)."""
        self._stop.set()


def ticks_for(seconds: float) -> int:
    """Return the epoch deadline, in ticks, for a timeout of `seconds` (at least one tick)."""
    return max(1, round(seconds / EPOCH_TICK_S))


_lock = threading.Lock()
_engine: wasmtime.Engine | None = None
_settings: EngineSettings | None = None
_ticker: EpochTicker | None = None


def get_engine(settings: EngineSettings | None = None) -> wasmtime.Engine:
    """Return this process's Engine, creating it (and its ticker) on first use.

    Raises RuntimeError if called again with settings other than the first call's.
    """
    global _engine, _settings, _ticker
    with _lock:
        if _engine is None:
            _settings = settings or EngineSettings()
            _engine = build_engine(_settings)
            _ticker = EpochTicker(_engine)
        elif settings is not None and settings != _settings:
            raise RuntimeError("the process's Engine was already built with other settings")
        return _engine


def engine_settings() -> EngineSettings:
    """Return the settings of this process's Engine (building it with defaults if needed)."""
    get_engine()
    assert _settings is not None
    return _settings
