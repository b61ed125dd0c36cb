"""The one wasmtime Engine per process and its epoch ticker (guest layer).

Built from `EngineSettings` (`firebox.runtime.engine`, data the front end may import);
the pooling allocator is set up through the raw layer in `wasmtime_raw`.
"""

from __future__ import annotations

import threading

import wasmtime
from firebox.runtime.config import EPOCH_TICK_S, MiB
from firebox.runtime.engine import EngineSettings
from firebox.runtime.guest.wasmtime_raw import pooling_allocator


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
    pooling_allocator(config, settings)
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
