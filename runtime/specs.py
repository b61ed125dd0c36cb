"""What crosses from the node to its workers: a version's spec, an invocation's request and
reply, each a frozen dataclass with an explicit msgpack-able wire form (data layer).

`Deployed`, `Resolved` (the version the node serves, the version one invocation runs) and
`InvocationResult` live here too, so the catalog, admission and telemetry need not import
dispatch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from firebox.runtime import config
from firebox.runtime.errors import FireboxError, error_from_dict
from firebox.runtime.grants import Grants, parse_grants
from firebox.runtime.limits import Limits

# The unpublished version (storage.registry names it too; this module stays free of SQL).
LATEST = "$LATEST"


@dataclass(frozen=True)
class FunctionSpec:
    """What a worker needs to load one version of a function and keep its pool."""

    name: str
    version: str
    kind: str  # "module" (a core module) or "python" (the interpreter component + bundle)
    digest: str
    handler: str
    export: str
    limits: Limits
    bundle_digest: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    provisioned: int = 1
    concurrency: int = 64
    isolation: str = "fresh"
    # A Python version's snapshot key (runtime/snapshot/key.py): instances restore from
    # the snapshot it names; None: each instance runs the function's init (`load`).
    snapshot: str | None = None
    # What the version may reach beyond its sandbox (runtime/grants.py): checked by the
    # host APIs in the worker, never seen by the guest's memory.
    grants: Grants = field(default_factory=Grants)

    @property
    def key(self) -> str:
        """Return the pool key: same code, configuration and version share one pool."""
        blob = json.dumps(self.to_wire(), sort_keys=True).encode()
        return f"{self.name}:{self.version}@{hashlib.sha256(blob).hexdigest()[:12]}"

    def init_timeout_s(self) -> float:
        """Return how long one instance may take to initialize: a Python version's load
        budget (FIREBOX_PYTHON_LOAD_TIMEOUT_S, at least its timeout), else its timeout."""
        if self.kind == "python":
            return max(config.FIREBOX_PYTHON_LOAD_TIMEOUT_S.get(), self.limits.timeout_s)
        return self.limits.timeout_s

    @property
    def digests(self) -> tuple[str, ...]:
        """Return the artifacts this version runs (the module or component, then its bundle)."""
        return (self.digest, self.bundle_digest) if self.bundle_digest else (self.digest,)

    def to_wire(self) -> dict[str, Any]:
        """Return the msgpack-able form sent to workers."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "digest": self.digest,
            "bundle_digest": self.bundle_digest,
            "handler": self.handler,
            "limits": self.limits.to_dict(),
            "environment": dict(self.environment),
            "provisioned": self.provisioned,
            "concurrency": self.concurrency,
            "isolation": self.isolation,
            "export": self.export,
            "snapshot": self.snapshot,
            **({"grants": self.grants.to_dict()} if self.grants else {}),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> FunctionSpec:
        """Rebuild a spec from its wire form; raises KeyError if a required field is absent."""
        return cls(
            name=str(data["name"]),
            version=str(data.get("version", LATEST)),
            kind=str(data.get("kind", "module")),
            digest=str(data["digest"]),
            handler=str(data.get("handler", "")),
            export=str(data.get("export", "handle")),
            limits=Limits.from_dict(data.get("limits") or {}),
            bundle_digest=data.get("bundle_digest"),
            environment={str(k): str(v) for k, v in (data.get("environment") or {}).items()},
            provisioned=int(data.get("provisioned", 1)),
            concurrency=int(data.get("concurrency", 64)),
            isolation=str(data.get("isolation", "fresh")),
            snapshot=data.get("snapshot"),
            grants=parse_grants(data.get("grants")),
        )


@dataclass(frozen=True)
class InvokeRequest:
    """One invocation as the supervisor sends it to a worker (`op: invoke`)."""

    key: str  # the pool key of the version to run
    request_id: str
    payload: bytes
    export: str
    limits: Limits
    name: str
    version: str
    # Sent only when the chosen worker has no pool for `key` yet: it loads one on the way.
    spec: FunctionSpec | None = None
    # The ARN the caller named (with its alias or version), for `context.invoked_function_arn`.
    invoked_arn: str = ""
    # Lambda's ClientContext JSON, when the caller sent one.
    client_context: str | None = None

    def to_wire(self, *, with_spec: bool = False) -> dict[str, Any]:
        """Return the frame body (without the frame id the supervisor adds)."""
        wire: dict[str, Any] = {
            "op": "invoke",
            "fn": self.key,
            "request_id": self.request_id,
            "payload": self.payload,
            "export": self.export,
            "limits": self.limits.to_dict(),
            "name": self.name,
            "version": self.version,
            "arn": self.invoked_arn,
            "client_context": self.client_context,
        }
        if with_spec and self.spec is not None:
            wire["spec"] = self.spec.to_wire()
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> InvokeRequest:
        """Rebuild a request from a frame body; raises KeyError if a required field is absent."""
        spec = data.get("spec")
        return cls(
            key=str(data["fn"]),
            request_id=str(data["request_id"]),
            payload=bytes(data["payload"]),
            export=str(data.get("export", "handle")),
            limits=Limits.from_dict(data.get("limits") or {}),
            name=str(data.get("name", "")),
            version=str(data.get("version", LATEST)),
            spec=FunctionSpec.from_wire(spec) if spec else None,
            invoked_arn=str(data.get("arn") or ""),
            client_context=data.get("client_context"),
        )


@dataclass(frozen=True)
class InvokeReply:
    """What a worker answers for one invocation: the output or the guest's error, and usage."""

    ok: bool
    output: bytes = b""
    error: dict[str, Any] | None = None  # a FireboxError's wire form (`to_dict`)
    log: str = ""
    warm: bool = False
    fuel: int = 0
    memory_bytes: int = 0

    def failure(self) -> FireboxError | None:
        """Return the typed error this reply carries, or None when it succeeded."""
        return None if self.ok else error_from_dict(self.error or {})

    def to_wire(self) -> dict[str, Any]:
        """Return the frame body (without the frame id)."""
        wire: dict[str, Any] = {"ok": self.ok, "log": self.log, "warm": self.warm}
        if self.ok:
            wire.update(result=self.output, fuel=self.fuel, memory=self.memory_bytes)
        else:
            wire["error"] = self.error or {}
        return wire

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> InvokeReply:
        """Rebuild a reply from a frame body (absent fields take their defaults)."""
        return cls(
            ok=bool(data.get("ok")),
            output=bytes(data.get("result") or b""),
            error=data.get("error"),
            log=str(data.get("log", "")),
            warm=bool(data.get("warm")),
            fuel=int(data.get("fuel", 0)),
            memory_bytes=int(data.get("memory", 0)),
        )


@dataclass
class InvocationResult:
    """What one invocation produced: output or typed error, log, usage."""

    request_id: str
    version: str
    output: bytes = b""
    error: FireboxError | None = None
    log: str = ""
    duration_s: float = 0.0
    warm: bool = False
    fuel: int = 0
    memory_bytes: int = 0


@dataclass(frozen=True)
class Deployed:
    """One version of a function as the node serves it: its pool key and worker spec."""

    name: str
    key: str
    spec: FunctionSpec
    config: dict[str, Any]  # the stored manifest (FunctionConfig.to_dict), for routes and APIs
    version: str = LATEST
    revision: int = 1

    @property
    def limits(self) -> Limits:
        """What one invocation of this version may use."""
        return self.spec.limits

    @property
    def timeout_s(self) -> float:
        """The function's timeout in seconds."""
        return self.spec.limits.timeout_s


@dataclass(frozen=True)
class Resolved:
    """The version one invocation runs (a weighted alias already picked), and how it was named.

    Resolve once, at the front door, and pass this down: every later layer reads the
    version, its limits and its timeout from here instead of resolving the name again.
    """

    deployed: Deployed
    qualifier: str


__all__ = [
    "LATEST",
    "Deployed",
    "FunctionSpec",
    "InvocationResult",
    "InvokeReply",
    "InvokeRequest",
    "Resolved",
]
