"""Every setting of the node and the client: tunable defaults as named constants, and each
FIREBOX_* environment variable with its type and default, read by one parser (config layer).

Nothing else in `runtime/` or `sdk/` reads the environment; the compiler's three
settings are in `firebox.compiler.settings`, on the same `Setting`. Each variable is
listed, with what it does, in docs/configuration.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from firebox.runtime.errors import InvalidSetting

T = TypeVar("T")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(raw)


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One FIREBOX_* environment variable: its name, how its text is parsed, its default."""

    name: str
    parse: Callable[[str], T]
    #: What a value must be, as the error says it: "an integer", "a number", ...
    expected: str
    default: T

    def get(self, environ: Mapping[str, str] | None = None) -> T:
        """Return the variable's value (from `environ`, default the process environment).

        Unset or empty means the default. Raises InvalidSetting naming the variable and
        the type it must have when the text does not parse.
        """
        raw = (os.environ if environ is None else environ).get(self.name)
        if raw is None or raw.strip() == "":
            return self.default
        try:
            return self.parse(raw.strip())
        except ValueError:
            raise InvalidSetting(self.name, self.expected, raw) from None


def integer(name: str, default: int) -> Setting[int]:
    """Return an integer setting."""
    return Setting(name, int, "an integer", default)


def number(name: str, default: float) -> Setting[float]:
    """Return a numeric setting (seconds, mostly)."""
    return Setting(name, float, "a number", default)


def flag(name: str, default: bool) -> Setting[bool]:
    """Return an on/off setting: 1/0 (also true/false, yes/no, on/off)."""
    return Setting(name, _flag, "0 or 1", default)


def text(name: str, default: str) -> Setting[str]:
    """Return a text setting with a default (a name, a URL)."""
    return Setting(name, str, "text", default)


def optional_text(name: str) -> Setting[str | None]:
    """Return a text setting that may be unset (a URL, a path, a key)."""
    return Setting[str | None](name, str, "text", None)


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
# The largest `max_request_bytes` / `max_response_bytes` (also the body cap of invoke and
# trigger routes), `max_log_bytes`, `concurrency` and `fuel` a function may ask for.
MAX_PAYLOAD_BYTES = 32 * MiB
MAX_LOG_BYTES = 16 * MiB
MAX_CONCURRENCY = 10_000
MAX_FUEL = 2**63 - 1

# The epoch ticker's period; timeouts are enforced to this granularity.
EPOCH_TICK_S = 0.01
# Extra time the node waits for a worker to report a timed-out call before it answers
# the caller itself and condemns the worker (a guest blocked in a host call).
TIMEOUT_GRACE_S = 0.15
# How long a condemned worker may take to finish its other calls before it is killed.
KILL_GRACE_S = 1.0
# How long a starting node waits for its functions' pools to load before it serves (the
# rest load in the background): the first invocations after a restart are then warm.
STARTUP_LOAD_S = 5.0
# A Python guest decodes an event of EVENT_PREPARE_BYTES or more (or one that may nest
# deeply) in a call of its own (`prepare`), on a budget of its own, so that decoding does
# not count against the handler's timeout: EVENT_DECODE_BASE_S plus
# EVENT_DECODE_S_PER_MIB per MiB of wall time (6 MiB of small JSON objects decode in
# ~0.65 s here), and fuel alike. The node waits that much longer for a call's reply.
EVENT_PREPARE_BYTES = 16 * 1024
EVENT_DECODE_BASE_S = 0.1
EVENT_DECODE_S_PER_MIB = 0.5
EVENT_DECODE_FUEL_PER_MIB = 2_000_000_000


def event_decode_allowance_s(size: int) -> float:
    """Return the wall time a guest may spend decoding an event of `size` bytes on top of
    the handler's timeout."""
    return EVENT_DECODE_BASE_S + EVENT_DECODE_S_PER_MIB * size / MiB


def event_decode_fuel(size: int) -> int:
    """Return the fuel a guest may spend decoding an event of `size` bytes."""
    return int(EVENT_DECODE_FUEL_PER_MIB * max(1.0, size / MiB))


# What the Lambda-compatible API puts in ARNs and expects in SigV4 credential scopes;
# the defaults are the ones local AWS emulators use, so existing tooling works unchanged.
DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "000000000000"


# --- the FIREBOX_* variables ---------------------------------------------------------
# Defaults that are not platform constants above are named here, beside their variable.

DEFAULT_WORKERS = os.cpu_count() or 2
DEFAULT_WORKER_THREADS = 16
DEFAULT_POOL_SLOTS = 1024
# The largest `memory` a function may ask for on this node (at most MAX_MEMORY_MB); it
# also sizes each pooling-allocator slot, so it is part of the compiled-cache key.
DEFAULT_NODE_MAX_MEMORY_MB = 1024
DEFAULT_IDLE_SHRINK_S = 60.0
# Often enough that another node's deploy shows here within a human's reaction time.
DEFAULT_REGISTRY_POLL_S = 0.5
DEFAULT_LOG_RETENTION_S = 7 * 86400.0
# Stored log text, per function and for the whole node (oldest lines go first past it).
DEFAULT_LOG_STORAGE_PER_FUNCTION_MB = 64
DEFAULT_LOG_STORAGE_MB = 1024
DEFAULT_ASYNC_CONCURRENCY = 8
# Loading a Python function's code (its module-level imports) in a new instance: like
# Lambda's 10 s init phase, with fuel to match.
DEFAULT_PYTHON_LOAD_FUEL = 20_000_000_000
DEFAULT_PYTHON_LOAD_TIMEOUT_S = 10.0
# Restoring a Python instance from its snapshot: reseeding and SnapStart's after-restore hooks.
DEFAULT_SNAPSHOT_RESTORE_FUEL = 2_000_000_000
DEFAULT_SNAPSHOT_RESTORE_TIMEOUT_S = 10.0
DEFAULT_MAPPING_POLL_S = 0.5
DEFAULT_MAPPING_RETRY_BASE_S = 0.5
DEFAULT_MAPPING_RETRY_MAX_S = 30.0
DEFAULT_MAPPING_RELOAD_S = 5.0
DEFAULT_MAPPING_DRAIN_S = 5.0
DEFAULT_MAPPING_THREADS = 32
DEFAULT_SHARD_LEASE_S = 10.0
DEFAULT_SCHEDULE_OUTBOX_S = 10.0
DEFAULT_CHANGE_POLL_S = 0.2
DEFAULT_CHANGE_LEASE_S = 10.0
DEFAULT_ASYNC_VISIBILITY_S = 30.0
DEFAULT_CONCURRENCY_LEASE_S = 5.0
DEFAULT_CONCURRENCY_LINGER_S = 0.1
DEFAULT_ACCOUNT_CONCURRENCY = 1000
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
# The HTTP server: a request's headers must arrive within this long of its first byte;
# an idle kept-alive connection is closed after the keep-alive; above the connection cap
# new requests get a 503; a request line plus headers larger than this is a 400.
DEFAULT_HEADER_TIMEOUT_S = 10.0
DEFAULT_KEEP_ALIVE_S = 5.0
DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_HEADER_BYTES = 64 * 1024

# The memory (the sum of their `memory` caps) a worker's ready instances may hold.
DEFAULT_READY_MEMORY_MB = 16384

# The node
FIREBOX_DATA_DIR = optional_text("FIREBOX_DATA_DIR")
FIREBOX_ACCESS_KEY_ID = optional_text("FIREBOX_ACCESS_KEY_ID")
FIREBOX_SECRET_ACCESS_KEY = optional_text("FIREBOX_SECRET_ACCESS_KEY")
FIREBOX_KEY_ENCRYPTION_KEY = optional_text("FIREBOX_KEY_ENCRYPTION_KEY")
FIREBOX_WORKERS = integer("FIREBOX_WORKERS", DEFAULT_WORKERS)
FIREBOX_WORKER_THREADS = integer("FIREBOX_WORKER_THREADS", DEFAULT_WORKER_THREADS)
FIREBOX_POOL_SLOTS = integer("FIREBOX_POOL_SLOTS", DEFAULT_POOL_SLOTS)
FIREBOX_MAX_MEMORY_MB = integer("FIREBOX_MAX_MEMORY_MB", DEFAULT_NODE_MAX_MEMORY_MB)
FIREBOX_READY_MEMORY_MB = integer("FIREBOX_READY_MEMORY_MB", DEFAULT_READY_MEMORY_MB)
FIREBOX_IDLE_SHRINK_S = number("FIREBOX_IDLE_SHRINK_S", DEFAULT_IDLE_SHRINK_S)
FIREBOX_DATABASE_URL = optional_text("FIREBOX_DATABASE_URL")
FIREBOX_REGISTRY_POLL_S = number("FIREBOX_REGISTRY_POLL_S", DEFAULT_REGISTRY_POLL_S)
FIREBOX_REGISTRY_PUSH = flag("FIREBOX_REGISTRY_PUSH", True)
FIREBOX_LOG_RETENTION_S = number("FIREBOX_LOG_RETENTION_S", DEFAULT_LOG_RETENTION_S)
FIREBOX_LOG_STORAGE_PER_FUNCTION_MB = integer(
    "FIREBOX_LOG_STORAGE_PER_FUNCTION_MB", DEFAULT_LOG_STORAGE_PER_FUNCTION_MB
)
FIREBOX_LOG_STORAGE_MB = integer("FIREBOX_LOG_STORAGE_MB", DEFAULT_LOG_STORAGE_MB)
FIREBOX_COMPILED_CACHE = optional_text("FIREBOX_COMPILED_CACHE")
FIREBOX_PREPARE_PYTHON = flag("FIREBOX_PREPARE_PYTHON", True)
FIREBOX_PYTHON_LOAD_FUEL = integer("FIREBOX_PYTHON_LOAD_FUEL", DEFAULT_PYTHON_LOAD_FUEL)
FIREBOX_PYTHON_LOAD_TIMEOUT_S = number(
    "FIREBOX_PYTHON_LOAD_TIMEOUT_S", DEFAULT_PYTHON_LOAD_TIMEOUT_S
)
# The Python sandbox: /tmp per instance (Lambda's EphemeralStorage default is 512 MB)
FIREBOX_EPHEMERAL_STORAGE_MB = integer("FIREBOX_EPHEMERAL_STORAGE_MB", 512)
FIREBOX_TMP_WATCH_INTERVAL_S = number("FIREBOX_TMP_WATCH_INTERVAL_S", 0.2)
FIREBOX_SANDBOX_DIR = optional_text("FIREBOX_SANDBOX_DIR")
# Python instances restore from their version's post-init snapshot (docs/snapshots.md).
FIREBOX_SNAPSHOTS = flag("FIREBOX_SNAPSHOTS", True)
# Reset a Python instance in place to its snapshot after each invocation (docs/snapshots.md).
FIREBOX_SNAPSHOT_RESET = flag("FIREBOX_SNAPSHOT_RESET", True)
FIREBOX_SNAPSHOT_RESTORE_FUEL = integer(
    "FIREBOX_SNAPSHOT_RESTORE_FUEL", DEFAULT_SNAPSHOT_RESTORE_FUEL
)
FIREBOX_SNAPSHOT_RESTORE_TIMEOUT_S = number(
    "FIREBOX_SNAPSHOT_RESTORE_TIMEOUT_S", DEFAULT_SNAPSHOT_RESTORE_TIMEOUT_S
)
FIREBOX_REGION = text("FIREBOX_REGION", DEFAULT_REGION)
FIREBOX_ACCOUNT_ID = text("FIREBOX_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)
# The HTTP server (uvicorn)
FIREBOX_HEADER_TIMEOUT_S = number("FIREBOX_HEADER_TIMEOUT_S", DEFAULT_HEADER_TIMEOUT_S)
FIREBOX_KEEP_ALIVE_S = number("FIREBOX_KEEP_ALIVE_S", DEFAULT_KEEP_ALIVE_S)
FIREBOX_MAX_CONNECTIONS = integer("FIREBOX_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS)
FIREBOX_MAX_HEADER_BYTES = integer("FIREBOX_MAX_HEADER_BYTES", DEFAULT_MAX_HEADER_BYTES)
# GET /metrics: off (0) answers 404; auth off (0) serves it without an access key
FIREBOX_METRICS = flag("FIREBOX_METRICS", True)
FIREBOX_METRICS_AUTH = flag("FIREBOX_METRICS_AUTH", True)
# Host capabilities (docs/capabilities.md): outbound HTTP, tables, buckets, secrets
FIREBOX_HTTP_TIMEOUT_S = number("FIREBOX_HTTP_TIMEOUT_S", 30.0)
FIREBOX_HTTP_MAX_RESPONSE_BYTES = integer("FIREBOX_HTTP_MAX_RESPONSE_BYTES", 6 * MiB)
FIREBOX_HTTP_MAX_REQUEST_BYTES = integer("FIREBOX_HTTP_MAX_REQUEST_BYTES", 6 * MiB)
FIREBOX_HTTP_CA_BUNDLE = optional_text("FIREBOX_HTTP_CA_BUNDLE")
FIREBOX_KV_MAX_VALUE_BYTES = integer("FIREBOX_KV_MAX_VALUE_BYTES", 400 * 1024)
FIREBOX_BLOB_MAX_OBJECT_BYTES = integer("FIREBOX_BLOB_MAX_OBJECT_BYTES", 6 * MiB)
FIREBOX_SECRETS_KEY = optional_text("FIREBOX_SECRETS_KEY")
FIREBOX_SECRET_MAX_BYTES = integer("FIREBOX_SECRET_MAX_BYTES", 64 * 1024)
# The S3 API streams bodies to disk: one object (a PUT, a part, a completed multipart
# upload) may be this large; 5 GiB is S3's own single-PUT limit.
FIREBOX_S3_MAX_OBJECT_BYTES = integer("FIREBOX_S3_MAX_OBJECT_BYTES", 5 * 1024 * MiB)
# Events
FIREBOX_QUEUE_URL = optional_text("FIREBOX_QUEUE_URL")
FIREBOX_ASYNC_CONCURRENCY = integer("FIREBOX_ASYNC_CONCURRENCY", DEFAULT_ASYNC_CONCURRENCY)
FIREBOX_MAPPING_POLL_S = number("FIREBOX_MAPPING_POLL_S", DEFAULT_MAPPING_POLL_S)
FIREBOX_MAPPING_RETRY_BASE_S = number("FIREBOX_MAPPING_RETRY_BASE_S", DEFAULT_MAPPING_RETRY_BASE_S)
FIREBOX_MAPPING_RETRY_MAX_S = number("FIREBOX_MAPPING_RETRY_MAX_S", DEFAULT_MAPPING_RETRY_MAX_S)
FIREBOX_MAPPING_RELOAD_S = number("FIREBOX_MAPPING_RELOAD_S", DEFAULT_MAPPING_RELOAD_S)
FIREBOX_MAPPING_DRAIN_S = number("FIREBOX_MAPPING_DRAIN_S", DEFAULT_MAPPING_DRAIN_S)
FIREBOX_MAPPING_THREADS = integer("FIREBOX_MAPPING_THREADS", DEFAULT_MAPPING_THREADS)
FIREBOX_SHARD_LEASE_S = number("FIREBOX_SHARD_LEASE_S", DEFAULT_SHARD_LEASE_S)
FIREBOX_CLUSTER_CONCURRENCY = text("FIREBOX_CLUSTER_CONCURRENCY", "auto")
FIREBOX_CONCURRENCY_LEASE_S = number("FIREBOX_CONCURRENCY_LEASE_S", DEFAULT_CONCURRENCY_LEASE_S)
FIREBOX_CONCURRENCY_LINGER_S = number("FIREBOX_CONCURRENCY_LINGER_S", DEFAULT_CONCURRENCY_LINGER_S)
FIREBOX_ACCOUNT_CONCURRENCY = integer("FIREBOX_ACCOUNT_CONCURRENCY", DEFAULT_ACCOUNT_CONCURRENCY)
FIREBOX_SCHEDULE_ALLOW_SECONDS = flag("FIREBOX_SCHEDULE_ALLOW_SECONDS", False)
FIREBOX_ASYNC_VISIBILITY_S = number("FIREBOX_ASYNC_VISIBILITY_S", DEFAULT_ASYNC_VISIBILITY_S)
FIREBOX_SCHEDULE_OUTBOX_S = number("FIREBOX_SCHEDULE_OUTBOX_S", DEFAULT_SCHEDULE_OUTBOX_S)
FIREBOX_CHANGE_POLL_S = number("FIREBOX_CHANGE_POLL_S", DEFAULT_CHANGE_POLL_S)
FIREBOX_CHANGE_LEASE_S = number("FIREBOX_CHANGE_LEASE_S", DEFAULT_CHANGE_LEASE_S)
FIREBOX_FAULT_KILL_AT = text("FIREBOX_FAULT_KILL_AT", "")
# The client (CLI and SDK); it also reads the data dir and the admin key pair above.
FIREBOX_ENDPOINT = text("FIREBOX_ENDPOINT", DEFAULT_ENDPOINT)

#: Every setting of the node and the client (the compiler's are in compiler/settings.py).
SETTINGS: tuple[Setting[Any], ...] = tuple(
    v for v in list(globals().values()) if isinstance(v, Setting)
)


def region() -> str:
    """Return the region firebox puts in ARNs (FIREBOX_REGION, default us-east-1)."""
    return FIREBOX_REGION.get()


def account_id() -> str:
    """Return the account id firebox puts in ARNs (FIREBOX_ACCOUNT_ID)."""
    return FIREBOX_ACCOUNT_ID.get()


def arn(service: str, resource: str) -> str:
    """Return an ARN of this node's region and account, e.g. arn("lambda", "function:f")."""
    scope = "" if service == "iam" else region()
    return f"arn:aws:{service}:{scope}:{account_id()}:{resource}"


@dataclass(frozen=True)
class NodeConfig:
    """The settings of one firebox node, read from the environment when it is made."""

    data_dir: Path
    workers: int = field(default_factory=FIREBOX_WORKERS.get)
    worker_threads: int = field(default_factory=FIREBOX_WORKER_THREADS.get)
    # Pooling allocator slots per worker; each slot reserves virtual memory for one
    # linear memory of up to `max_memory_mb`.
    pool_slots: int = field(default_factory=FIREBOX_POOL_SLOTS.get)
    max_memory_mb: int = field(default_factory=FIREBOX_MAX_MEMORY_MB.get)
    # Seconds a pool may sit unused before its extra ready instances are dropped.
    idle_shrink_s: float = field(default_factory=FIREBOX_IDLE_SHRINK_S.get)
    region: str = field(default_factory=FIREBOX_REGION.get)
    account_id: str = field(default_factory=FIREBOX_ACCOUNT_ID.get)
    # Where the node's registry and its queues and streams live (None: in the data dir).
    database_url: str | None = field(default_factory=FIREBOX_DATABASE_URL.get)
    queue_url: str | None = field(default_factory=FIREBOX_QUEUE_URL.get)
    # Where this node's API answers its own workers (set by `firebox serve`): boto3 in a
    # function reaches the node's S3, SQS and Lambda APIs through it (host/aws.py).
    api_url: str | None = None
    registry_poll_s: float = field(default_factory=FIREBOX_REGISTRY_POLL_S.get)
    log_retention_s: float = field(default_factory=FIREBOX_LOG_RETENTION_S.get)
    # Most stored log text per function and per node, in MiB (older lines deleted first).
    log_storage_per_function_mb: int = field(
        default_factory=FIREBOX_LOG_STORAGE_PER_FUNCTION_MB.get
    )
    log_storage_mb: int = field(default_factory=FIREBOX_LOG_STORAGE_MB.get)
    async_concurrency: int = field(default_factory=FIREBOX_ASYNC_CONCURRENCY.get)
    prepare_python: bool = field(default_factory=FIREBOX_PREPARE_PYTHON.get)
    # Python versions restore every instance from a post-init snapshot (docs/snapshots.md).
    snapshots: bool = field(default_factory=FIREBOX_SNAPSHOTS.get)

    @classmethod
    def from_env(cls, data_dir: Path | str | None = None) -> NodeConfig:
        """Return the node configuration, taking the data dir from the argument or FIREBOX_DATA_DIR."""
        chosen = data_dir or FIREBOX_DATA_DIR.get() or default_data_dir()
        return cls(data_dir=Path(chosen).expanduser().resolve())


def default_data_dir() -> Path:
    """Return the default data directory (`~/.local/share/firebox`, or XDG_DATA_HOME)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "firebox"
