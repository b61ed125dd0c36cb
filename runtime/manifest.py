"""The function manifest (`firebox.toml`): parsing and validation (config layer).

See docs/manifest.md for every key. Unknown keys are errors, not silently ignored.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field
from typing import Any

from firebox.runtime import config
from firebox.runtime.errors import InvalidManifest
from firebox.runtime.grants import Grants, parse_grants
from firebox.runtime.limits import Limits

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
EXPORT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
ROUTE_RE = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/{}-]*$")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
RESERVED_PREFIXES = (
    "/v1", "/healthz", "/metrics", "/console", "/2015-03-31", "/2016-", "/2017-", "/2018-", "/2019-",
)  # fmt: skip
# Any dated first segment is the Lambda-compatible API's (botocore's prefixes and later).
DATED_ROUTE_RE = re.compile(r"^/\d{4}-\d\d-\d\d(/|$)")
KINDS = ("module", "python")
# Lambda's limit on a function's environment variables: 4 KB of names and values.
MAX_ENVIRONMENT_BYTES = 4096

TOP_KEYS = {
    "name", "description", "runtime", "module", "handler", "memory", "timeout", "fuel",
    "max_request_bytes", "max_response_bytes", "max_log_bytes", "environment", "triggers",
    "provisioned", "concurrency", "isolation", "snapshot", "metadata", "capabilities",
}  # fmt: skip
TRIGGER_KEYS = {"type", "route", "methods", "method", "export", "auth"}


@dataclass(frozen=True)
class HttpTrigger:
    """An HTTP route that calls an export: `route` may end with `/{path...}`-style wildcards."""

    route: str
    methods: tuple[str, ...]
    export: str
    auth: str = "none"


@dataclass(frozen=True)
class FunctionConfig:
    """A validated manifest: what a function is and what it may use."""

    name: str
    kind: str = "module"
    description: str = ""
    handler: str = ""
    limits: Limits = field(default_factory=Limits)
    environment: dict[str, str] = field(default_factory=dict)
    triggers: tuple[HttpTrigger, ...] = ()
    provisioned: int = 1
    concurrency: int = config.DEFAULT_CONCURRENCY
    isolation: str = "fresh"
    snapshot: bool = False
    export: str = "handle"
    # Free-form strings kept with the function and never read by the runtime (the Lambda
    # API keeps Role, the exact Runtime and the package's size and hash here).
    metadata: dict[str, str] = field(default_factory=dict)
    # What the function may reach beyond its sandbox (runtime/grants.py); none by default.
    capabilities: Grants = field(default_factory=Grants)

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest in its stored form (a dict a later `parse_manifest` accepts)."""
        data: dict[str, Any] = {
            "name": self.name,
            "runtime": self.kind,
            "description": self.description,
            "memory": self.limits.memory_mb,
            "timeout": self.limits.timeout_s,
            "fuel": self.limits.fuel,
            "max_request_bytes": self.limits.max_request_bytes,
            "max_response_bytes": self.limits.max_response_bytes,
            "max_log_bytes": self.limits.max_log_bytes,
            "environment": dict(self.environment),
            "triggers": [
                {"type": "http", **asdict(t), "methods": list(t.methods)} for t in self.triggers
            ],
            "provisioned": self.provisioned,
            "concurrency": self.concurrency,
            "isolation": self.isolation,
            "snapshot": self.snapshot,
        }
        if self.handler:
            data["handler"] = self.handler
        if self.metadata:
            data["metadata"] = dict(self.metadata)
        if self.capabilities:
            data["capabilities"] = self.capabilities.to_dict()
        return data


def _typed(data: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = data.get(key, default)
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise InvalidManifest(f"`{key}` must be a number, got {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InvalidManifest(f"`{key}` must be of type {names}, got {value!r}")
    return value


def _seconds(value: float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer too large for a float
        raise InvalidManifest(
            f"timeout must be between 0 and {config.MAX_TIMEOUT_S:.0f} seconds, got {value}"
        ) from None


def parse_toml(text: str) -> dict[str, Any]:
    """Parse manifest text; raises InvalidManifest with the TOML error's position."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidManifest(f"firebox.toml is not valid TOML: {exc}") from None


def parse_manifest(
    data: dict[str, Any], max_memory_mb: int = config.MAX_MEMORY_MB
) -> FunctionConfig:
    """Validate a manifest dict and return its FunctionConfig; raises InvalidManifest."""
    if not isinstance(data, dict):
        raise InvalidManifest("the manifest must be a table/object")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise InvalidManifest(
            f"unknown manifest key(s): {', '.join(unknown)} (known: {', '.join(sorted(TOP_KEYS))})"
        )
    name = _typed(data, "name", str, "")
    if not NAME_RE.match(name):
        raise InvalidManifest(f"`name` must be 1-64 letters, digits, '-' or '_', got {name!r}")
    kind = _typed(data, "runtime", str, "module")
    if kind.startswith("python"):
        kind = "python"
    if kind not in KINDS:
        raise InvalidManifest(
            f"`runtime` must be one of {', '.join(KINDS)} (or python3.x), got {kind!r}"
        )
    limits = Limits(
        memory_mb=_typed(data, "memory", int, config.DEFAULT_MEMORY_MB),
        timeout_s=_seconds(_typed(data, "timeout", (int, float), config.DEFAULT_TIMEOUT_S)),
        fuel=_typed(data, "fuel", int, config.DEFAULT_FUEL),
        max_request_bytes=_typed(data, "max_request_bytes", int, config.DEFAULT_MAX_REQUEST_BYTES),
        max_response_bytes=_typed(
            data, "max_response_bytes", int, config.DEFAULT_MAX_RESPONSE_BYTES
        ),
        max_log_bytes=_typed(data, "max_log_bytes", int, config.DEFAULT_MAX_LOG_BYTES),
    ).validate(max_memory_mb)
    env = _typed(data, "environment", dict, {})
    for key, value in env.items():
        if not ENV_NAME_RE.match(key) or not isinstance(value, str):
            raise InvalidManifest(
                f"environment variable {key!r} must have a valid name and a string value"
            )
    env_size = sum(
        len(k.encode()) + len(v.encode("utf-8", "surrogatepass")) for k, v in env.items()
    )
    if env_size > MAX_ENVIRONMENT_BYTES:
        raise InvalidManifest(
            f"`environment` is {env_size} bytes; Lambda's limit (kept here) is"
            f" {MAX_ENVIRONMENT_BYTES} bytes of names and values in total"
        )
    triggers = tuple(_parse_trigger(t, i) for i, t in enumerate(_typed(data, "triggers", list, [])))
    provisioned = _typed(data, "provisioned", int, 1)
    # 0 is allowed: like Lambda's reserved concurrency of 0, it throttles every call.
    concurrency = _typed(data, "concurrency", int, config.DEFAULT_CONCURRENCY)
    if provisioned < 0:
        raise InvalidManifest(f"`provisioned` must be >= 0, got {provisioned}")
    if not 0 <= concurrency <= config.MAX_CONCURRENCY:
        raise InvalidManifest(
            f"`concurrency` must be between 0 and {config.MAX_CONCURRENCY}, got {concurrency}"
        )
    if provisioned > concurrency:
        raise InvalidManifest(
            f"`provisioned` ({provisioned}) cannot exceed `concurrency` ({concurrency})"
        )
    isolation = _typed(data, "isolation", str, "fresh")
    if isolation not in ("fresh", "reuse"):
        raise InvalidManifest(f"`isolation` must be 'fresh' or 'reuse', got {isolation!r}")
    metadata = _typed(data, "metadata", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise InvalidManifest("`metadata` must map strings to strings")
    handler = _typed(data, "handler", str, "")
    # Lambda imports the part before the last dot with importlib: "auto-confirm.handler" works.
    if kind == "python" and handler and not re.match(r"^[^\s.][^\s]*\.[A-Za-z_]\w*$", handler):
        raise InvalidManifest(f"`handler` must look like module.function, got {handler!r}")
    return FunctionConfig(
        name=name,
        kind=kind,
        description=_typed(data, "description", str, ""),
        handler=handler or ("app.handler" if kind == "python" else ""),
        limits=limits,
        environment=dict(env),
        triggers=triggers,
        provisioned=provisioned,
        concurrency=concurrency,
        isolation=isolation,
        snapshot=_typed(data, "snapshot", bool, False),
        metadata=dict(metadata),
        capabilities=parse_grants(data.get("capabilities")),
    )


def _parse_trigger(data: Any, index: int) -> HttpTrigger:
    where = f"triggers[{index}]"
    if not isinstance(data, dict):
        raise InvalidManifest(f"{where} must be a table")
    unknown = sorted(set(data) - TRIGGER_KEYS)
    if unknown:
        raise InvalidManifest(f"{where}: unknown key(s) {', '.join(unknown)}")
    if data.get("type", "http") != "http":
        raise InvalidManifest(
            f"{where}: trigger type {data.get('type')!r} is not supported yet (only 'http')"
        )
    route = data.get("route")
    if not isinstance(route, str) or not ROUTE_RE.match(route):
        raise InvalidManifest(f"{where}: `route` must be a path starting with '/', got {route!r}")
    if DATED_ROUTE_RE.match(route) or any(
        route == p or route.startswith(p + "/") or (route.startswith(p) and p.endswith("-"))
        for p in RESERVED_PREFIXES
    ):
        raise InvalidManifest(f"{where}: route {route!r} is reserved for firebox's own APIs")
    methods = data.get("methods", [data["method"]] if "method" in data else ["GET", "POST"])
    if isinstance(methods, str):
        methods = [methods]
    methods = tuple(str(m).upper() for m in methods)
    bad = [m for m in methods if m not in HTTP_METHODS]
    if bad or not methods:
        raise InvalidManifest(f"{where}: unsupported method(s) {bad or methods}")
    export = data.get("export", "handle")
    if not isinstance(export, str) or not EXPORT_RE.match(export):
        raise InvalidManifest(f"{where}: `export` must name an export, got {export!r}")
    auth = data.get("auth", "none")
    if auth not in ("none", "key"):
        raise InvalidManifest(f"{where}: `auth` must be 'none' or 'key', got {auth!r}")
    return HttpTrigger(route=route, methods=methods, export=export, auth=auth)
