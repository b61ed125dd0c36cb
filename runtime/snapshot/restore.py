"""Fresh instances of a function version from its snapshot, on the serving engine (engine layer).

The split interpreter (compiled once per interpreter build) is linked with the version's
snapshot module in place of module 0, through the component linker; nothing is loaded
at instantiation. Each instance then gets the `restore` export (reseed `random`, run the
SnapStart after-restore hooks) before it is handed out, so a pool's ready instances are
unique and the first invocation pays for none of it.
"""

from __future__ import annotations

import math

import wasmtime
from firebox.runtime.config import MiB
from firebox.runtime.errors import MemoryLimitExceeded
from firebox.runtime.guest.component import (
    RESTORE_FUEL,
    RESTORE_TIMEOUT_S,
    PythonInstance,
    component_linker,
    start_instance,
)
from firebox.runtime.guest.function_config import PythonFunctionConfig
from wasmtime.component import Component


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
        bundle: bytes,
    ) -> None:
        self.engine = engine
        self.bundle = bundle  # what its instances see at /var/task
        self.component = component
        self.snapshot = snapshot
        self.memory_bytes = memory_bytes
        self.config = config
        self._linker = component_linker(engine)
        with self._linker.root() as root:
            root.add_module(import_name, snapshot)

    def instantiate(self) -> PythonInstance:
        """Return a new instance in the function's post-init state, restored and reseeded.

        Raises MemoryLimitExceeded when the function's memory is below the snapshot's
        size, NodeAtCapacity when the pooling allocator is full, HandlerError when an
        after-restore hook raises (`Runtime.AfterRestoreError`), and TimedOut/OutOfFuel/
        GuestTrap when restoring traps.
        """
        self.check_memory()
        return start_instance(
            self._linker,
            self.component,
            self.config,
            "restore",
            (),
            bundle=self.bundle,
            fuel=RESTORE_FUEL,
            timeout_s=RESTORE_TIMEOUT_S,
        )

    def check_memory(self) -> None:
        """Raise MemoryLimitExceeded when the function's memory cannot hold the snapshot."""
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
