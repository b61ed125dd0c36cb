"""What the process's wasmtime Engine is built with, and its epoch arithmetic (engine layer).

Data only: this module does not import wasmtime, so the node's front end can name engine
settings (and key the compiled cache by them) without loading the runtime. The Engine
itself is built in `firebox.runtime.guest.engine`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
from dataclasses import asdict, dataclass

from firebox.runtime.config import EPOCH_TICK_S, MiB

WASMTIME_VERSION = importlib.metadata.version("wasmtime")

# Float division leaves dust (0.07 / 0.01 = 7.000000000000001): ignore it when rounding up.
_TICK_TOLERANCE = 1e-9


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


def ticks_for(seconds: float, tick_s: float = EPOCH_TICK_S) -> int:
    """Return the epoch deadline, in ticks, for a timeout of `seconds` (at least one tick).

    Rounds up, so a call is never interrupted a tick before its timeout; a negative or
    zero timeout still gets one tick (wasmtime's default deadline of 0 traps at once).
    """
    return max(1, math.ceil(seconds / tick_s - _TICK_TOLERANCE))
