"""What a function version may reach beyond its own sandbox: outbound hosts, key-value
tables, blob buckets, queues and secrets, parsed from the manifest's `[capabilities]`
table and checked by the host APIs (config layer).

Data only: the manifest parses it, `FunctionSpec` carries it to the workers (so each
published version keeps the grants it was published with), and every host API asks it
before doing anything. Nothing is granted by default. See docs/capabilities.md.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from firebox.runtime.errors import CapabilityDenied, InvalidManifest

#: Grant modes of tables and buckets.
MODES = ("read", "write", "readwrite")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
QUEUE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")  # SQS's alphabet, as firebox queues
SECRET_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
HOST_RE = re.compile(r"^(\*|\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$|^\*$")
RULE_RE = re.compile(
    r"^(?:(?P<scheme>[a-z]+)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^/:\[\]]+)(?::(?P<port>\*|\d{1,5}))?/?$"
)
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Most entries per capability kind in one manifest (every call checks them in order).
MAX_RULES = 100
KEYS = {"http", "tables", "buckets", "queues", "secrets", "functions"}
#: A function a role may invoke: a name, or `name:qualifier` for one version or alias.
FUNCTION_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?$")
MANIFEST_HINT = "add it to [capabilities] in firebox.toml (or PATCH the configuration)"


@dataclass(frozen=True)
class HostRule:
    """One outbound HTTP grant: a scheme, a host (exact, `*.suffix` or `*`) and a port.

    `port` None means the scheme's default port, -1 any port. A rule that names a host
    exactly (no wildcard) may reach it even at a private or loopback address.
    """

    scheme: str
    host: str
    port: int | None = None

    @property
    def exact(self) -> bool:
        """True when the rule names one host (private addresses are then allowed)."""
        return not self.host.startswith("*")

    def matches(self, scheme: str, host: str, port: int) -> bool:
        """Return True when a request to `scheme://host:port` falls under this rule."""
        if scheme != self.scheme:
            return False
        wanted = DEFAULT_PORTS.get(scheme, -2) if self.port is None else self.port
        if wanted != -1 and wanted != port:
            return False
        host = host.lower().rstrip(".")
        if self.host == "*":
            return True
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and host != self.host[2:]
        return host == self.host

    def __str__(self) -> str:
        port = "" if self.port is None else ":*" if self.port == -1 else f":{self.port}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}{port}"


def parse_rule(text: Any) -> HostRule:
    """Parse `[scheme://]host[:port]` (`https` and the scheme's port by default);
    raises InvalidManifest."""
    if not isinstance(text, str):
        raise InvalidManifest(f"capabilities.http entries must be strings, got {text!r}")
    match = RULE_RE.match(text.strip())
    if match is None:
        raise InvalidManifest(
            f"capabilities.http entry {text!r} must look like 'https://api.example.com',"
            " 'https://*.example.com:8443' or 'http://127.0.0.1:8080'"
        )
    scheme = match.group("scheme") or "https"
    if scheme not in DEFAULT_PORTS:
        raise InvalidManifest(f"capabilities.http entry {text!r}: scheme must be http or https")
    host = match.group("host").lower().rstrip(".")
    if host.startswith("["):
        host = host[1:-1]
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not HOST_RE.match(host) or len(host) > 253:
            raise InvalidManifest(f"capabilities.http entry {text!r}: bad host {host!r}") from None
    raw_port = match.group("port")
    port = None if raw_port is None else -1 if raw_port == "*" else int(raw_port)
    if port is not None and port != -1 and not 0 < port < 65536:
        raise InvalidManifest(f"capabilities.http entry {text!r}: bad port {port}")
    return HostRule(scheme=scheme, host=host, port=port)


@dataclass(frozen=True)
class Grants:
    """What one function version was granted. Empty (the default) grants nothing."""

    http: tuple[HostRule, ...] = ()
    tables: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    queues: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    #: Functions the version's execution role may invoke through the Lambda API.
    functions: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(
            self.http or self.tables or self.buckets or self.queues or self.secrets
            or self.functions
        )  # fmt: skip

    # --- checks (each raises CapabilityDenied naming the grant that is missing) ---------

    def http_rule(self, scheme: str, host: str, port: int) -> HostRule:
        """Return the rule that allows `scheme://host:port`; raises CapabilityDenied."""
        for rule in self.http:
            if rule.matches(scheme, host, port):
                return rule
        default = DEFAULT_PORTS.get(scheme)
        origin = f"{scheme}://{host}" + ("" if port == default else f":{port}")
        raise CapabilityDenied("http", origin, f'http = ["{origin}"]')

    def table(self, name: str, write: bool) -> None:
        """Allow reading (or writing) table `name`; raises CapabilityDenied."""
        _check_mode("table", "tables", self.tables, name, write)

    def bucket(self, name: str, write: bool) -> None:
        """Allow reading (or writing) bucket `name`; raises CapabilityDenied."""
        _check_mode("bucket", "buckets", self.buckets, name, write)

    def queue(self, name: str) -> None:
        """Allow sending to queue `name`; raises CapabilityDenied."""
        if name not in self.queues:
            raise CapabilityDenied("queue", name, f'queues = ["{name}"]')

    def function(self, name: str, qualifier: str | None) -> None:
        """Allow invoking function `name` (at `qualifier`): a grant of the bare name
        covers every version and alias, `name:qualifier` only that one; raises
        CapabilityDenied."""
        if name in self.functions or (qualifier and f"{name}:{qualifier}" in self.functions):
            return
        target = f"{name}:{qualifier}" if qualifier else name
        raise CapabilityDenied("function", target, f'functions = ["{name}"]')

    def secret(self, name: str) -> None:
        """Allow reading secret `name`; raises CapabilityDenied."""
        if name not in self.secrets:
            raise CapabilityDenied("secret", name, f'secrets = ["{name}"]')

    # --- forms --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the manifest form (a dict `parse_grants` accepts); empty kinds left out."""
        data: dict[str, Any] = {}
        if self.http:
            data["http"] = [str(rule) for rule in self.http]
        if self.tables:
            data["tables"] = dict(self.tables)
        if self.buckets:
            data["buckets"] = dict(self.buckets)
        if self.queues:
            data["queues"] = list(self.queues)
        if self.secrets:
            data["secrets"] = list(self.secrets)
        if self.functions:
            data["functions"] = list(self.functions)
        return data


def _check_mode(kind: str, key: str, granted: dict[str, str], name: str, write: bool) -> None:
    mode = granted.get(name)
    if mode is None or (write and mode == "read") or (not write and mode == "write"):
        need = "write" if write else "read"
        hint = f'{key} = {{ {name} = "{"readwrite" if mode else need}" }}'
        raise CapabilityDenied(kind, f"{name} ({need})", hint)


def _names(value: Any, key: str, pattern: re.Pattern[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise InvalidManifest(f"capabilities.{key} must be a list of at most {MAX_RULES} names")
    for name in value:
        if not isinstance(name, str) or not pattern.match(name):
            raise InvalidManifest(f"capabilities.{key}: bad name {name!r}")
    return tuple(dict.fromkeys(value))


def _modes(value: Any, key: str) -> dict[str, str]:
    if isinstance(value, list):  # a plain list of names grants both
        value = dict.fromkeys(_names(value, key, NAME_RE), "readwrite")
    if not isinstance(value, dict) or len(value) > MAX_RULES:
        raise InvalidManifest(
            f"capabilities.{key} must map names to 'read', 'write' or 'readwrite'"
            f" (at most {MAX_RULES})"
        )
    for name, mode in value.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidManifest(f"capabilities.{key}: bad name {name!r}")
        if mode not in MODES:
            raise InvalidManifest(
                f"capabilities.{key}.{name} must be 'read', 'write' or 'readwrite', got {mode!r}"
            )
    return dict(value)


def _queues(value: Any) -> tuple[str, ...]:
    names = _names(value, "queues", QUEUE_RE)
    internal = [name for name in names if name.startswith("firebox-")]
    if internal:
        raise InvalidManifest(f"capabilities.queues: {internal[0]!r} is internal to the node")
    return names


def parse_grants(data: Any) -> Grants:
    """Validate the manifest's `capabilities` table; raises InvalidManifest."""
    if data is None:
        return Grants()
    if not isinstance(data, dict):
        raise InvalidManifest("`capabilities` must be a table")
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise InvalidManifest(
            f"unknown capabilities key(s): {', '.join(unknown)} (known: {', '.join(sorted(KEYS))})"
        )
    http = data.get("http", [])
    if not isinstance(http, list) or len(http) > MAX_RULES:
        raise InvalidManifest(f"capabilities.http must be a list of at most {MAX_RULES} hosts")
    return Grants(
        http=tuple(dict.fromkeys(parse_rule(rule) for rule in http)),
        tables=_modes(data.get("tables", {}), "tables"),
        buckets=_modes(data.get("buckets", {}), "buckets"),
        queues=_queues(data.get("queues", [])),
        secrets=_names(data.get("secrets", []), "secrets", SECRET_RE),
        functions=_names(data.get("functions", []), "functions", FUNCTION_RE),
    )
