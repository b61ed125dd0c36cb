"""What a Python function version's `load` sees, built from its spec in one place (guest layer).

Data only (no wasmtime): the catalog keys snapshots by it, the node captures with it and
the worker restores with it, so the three can never disagree on a function's config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from firebox.runtime import config
from firebox.runtime.config import DEFAULT_MAX_LOG_BYTES, DEFAULT_MEMORY_MB, arn
from firebox.runtime.grants import Grants
from firebox.runtime.specs import FunctionSpec


@dataclass(frozen=True)
class PythonFunctionConfig:
    """Static configuration of one Python function version, as the guest's `context` sees it."""

    function_name: str
    function_version: str = "$LATEST"
    invoked_function_arn: str = ""
    memory_mb: int = DEFAULT_MEMORY_MB
    environment: Mapping[str, str] = field(default_factory=dict)
    log_group_name: str = ""
    log_stream_name: str = ""
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
    #: Wall time and fuel for `load`. Lambda gives init 10 s, and when that is not enough
    #: runs it again within the first invocation's timeout: callers pass the larger.
    load_timeout_s: float = config.DEFAULT_PYTHON_LOAD_TIMEOUT_S
    load_fuel: int = config.DEFAULT_PYTHON_LOAD_FUEL
    #: What the version may reach (host-side only: the guest never sees its grants).
    grants: Grants = field(default_factory=Grants)

    def to_wit(self) -> Any:
        """Return the `function-config` record for the `load` export."""
        function_arn = self.invoked_function_arn or arn("lambda", f"function:{self.function_name}")
        return wit_record(
            function_name=self.function_name,
            function_version=self.function_version,
            invoked_function_arn=function_arn,
            memory_limit_mb=self.memory_mb,
            log_group_name=self.log_group_name or f"/aws/lambda/{self.function_name}",
            # Empty: the guest names its stream as Lambda does, YYYY/MM/DD/[$LATEST]<id>.
            log_stream_name=self.log_stream_name,
            environment=[(str(k), str(v)) for k, v in self.environment.items()],
            max_log_bytes=self.max_log_bytes,
        )


def python_config(spec: FunctionSpec) -> PythonFunctionConfig:
    """Return the configuration a Python function version is initialized with."""
    return PythonFunctionConfig(
        function_name=spec.name,
        function_version=spec.version,
        memory_mb=spec.limits.memory_mb,
        environment=dict(spec.environment),
        max_log_bytes=spec.limits.max_log_bytes,
        load_timeout_s=spec.init_timeout_s(),
        load_fuel=max(config.FIREBOX_PYTHON_LOAD_FUEL.get(), spec.limits.fuel),
        grants=spec.grants,
    )


class WitRecord:
    """An attribute bag: wasmtime-py lowers a WIT record from its kebab-case attributes."""


def wit_record(**fields: Any) -> WitRecord:
    """Return a WIT record with `fields` (snake_case names become kebab-case)."""
    record = WitRecord()
    for name, value in fields.items():
        setattr(record, name.replace("_", "-"), value)
    return record
