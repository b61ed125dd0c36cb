"""Every tunable default of the node, each with a FIREBOX_* environment override (config layer)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


MiB = 1024 * 1024

# Function defaults, as Lambda's: 128 MiB, 3 s.
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 3.0
# Fuel is an opt-in CPU budget: by default it is high enough (a tight Python loop burns
# ~7e9 units a second here) that the timeout, not fuel, ends a runaway handler.
DEFAULT_FUEL = 10**13
# Lambda's synchronous payload limit is 6 MB each way.
DEFAULT_MAX_REQUEST_BYTES = 6 * MiB
DEFAULT_MAX_RESPONSE_BYTES = 6 * MiB
# A guest that prints forever gets its log truncated here, not the node's memory.
DEFAULT_MAX_LOG_BYTES = 256 * 1024

# A function's concurrency cap when nothing reserves one (instances running at once).
DEFAULT_CONCURRENCY = 64

# Platform maxima: a function cannot ask for more than this.
MAX_MEMORY_MB = 4096
MAX_TIMEOUT_S = 900.0

# The epoch ticker's period; timeouts are enforced to this granularity.
EPOCH_TICK_S = 0.01
# Extra time the node waits for a worker to report a timed-out call before it answers
# the caller itself and condemns the worker (a guest blocked in a host call).
TIMEOUT_GRACE_S = 0.15
# How long a condemned worker may take to finish its other calls before it is killed.
KILL_GRACE_S = 1.0

# What the Lambda-compatible API puts in ARNs and expects in SigV4 credential scopes;
# the defaults are the ones local AWS emulators use, so existing tooling works unchanged.
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "000000000000"


def region() -> str:
    """Return the region firebox puts in ARNs (FIREBOX_REGION, default us-east-1)."""
    return os.environ.get("FIREBOX_REGION") or DEFAULT_REGION


def account_id() -> str:
    """Return the account id firebox puts in ARNs (FIREBOX_ACCOUNT_ID)."""
    return os.environ.get("FIREBOX_ACCOUNT_ID") or DEFAULT_ACCOUNT_ID


def arn(service: str, resource: str) -> str:
    """Return an ARN of this node's region and account, e.g. arn("lambda", "function:f")."""
    scope = "" if service == "iam" else region()
    return f"arn:aws:{service}:{scope}:{account_id()}:{resource}"


@dataclass(frozen=True)
class NodeConfig:
    """The settings of one firebox node, read from the environment with defaults."""

    data_dir: Path
    workers: int = field(default_factory=lambda: _env_int("FIREBOX_WORKERS", os.cpu_count() or 2))
    worker_threads: int = field(default_factory=lambda: _env_int("FIREBOX_WORKER_THREADS", 16))
    # Pooling allocator slots per worker; each slot reserves virtual memory for one
    # linear memory of up to `max_memory_mb`.
    pool_slots: int = field(default_factory=lambda: _env_int("FIREBOX_POOL_SLOTS", 1024))
    max_memory_mb: int = field(default_factory=lambda: _env_int("FIREBOX_MAX_MEMORY_MB", 1024))
    # Seconds a pool may sit unused before its extra ready instances are dropped.
    idle_shrink_s: float = field(default_factory=lambda: _env_float("FIREBOX_IDLE_SHRINK_S", 60.0))
    region: str = field(default_factory=lambda: os.environ.get("FIREBOX_REGION") or DEFAULT_REGION)
    account_id: str = field(
        default_factory=lambda: os.environ.get("FIREBOX_ACCOUNT_ID") or DEFAULT_ACCOUNT_ID
    )

    @classmethod
    def from_env(cls, data_dir: Path | str | None = None) -> NodeConfig:
        """Return the node configuration, taking the data dir from the argument or FIREBOX_DATA_DIR."""
        chosen = data_dir or os.environ.get("FIREBOX_DATA_DIR") or default_data_dir()
        return cls(data_dir=Path(chosen).expanduser().resolve())


def default_data_dir() -> Path:
    """Return the default data directory (`~/.local/share/firebox`, or XDG_DATA_HOME)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "firebox"
