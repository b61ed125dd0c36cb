"""One invocation: admission, dispatch to a worker, the typed result (invocation layer)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from firebox.runtime.errors import (
    FireboxError,
    InvocationError,
    PayloadTooLarge,
    Throttled,
    error_from_dict,
)
from firebox.runtime.supervisor import Supervisor


@dataclass
class Deployed:
    """A function as the node serves it: its pool key, spec and admission state."""

    name: str
    key: str
    spec: dict[str, Any]
    config: dict[str, Any]
    version: str = "$LATEST"
    revision: int = 1
    inflight: int = 0
    throttles: int = 0
    invocations: int = 0
    errors: int = 0

    @property
    def concurrency(self) -> int:
        """The most invocations that may run at once."""
        return int(self.spec.get("concurrency", 64))

    @property
    def timeout_s(self) -> float:
        """The function's timeout in seconds."""
        return float(self.spec["limits"]["timeout_s"])


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
    extra: dict[str, Any] = field(default_factory=dict)


class Invoker:
    """Runs invocations of deployed functions through the supervisor's workers."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    async def invoke(
        self,
        fn: Deployed,
        payload: bytes,
        export: str | None = None,
        request_id: str | None = None,
    ) -> InvocationResult:
        """Invoke `fn` on `payload`; returns a result carrying either output or an error.

        Raises PayloadTooLarge and Throttled before anything runs (nothing is counted
        as an invocation of the guest then).
        """
        request_id = request_id or str(uuid.uuid4())
        limits = fn.spec["limits"]
        if len(payload) > limits["max_request_bytes"]:
            raise PayloadTooLarge("Request payload", len(payload), limits["max_request_bytes"])
        if fn.inflight >= fn.concurrency:
            fn.throttles += 1
            raise Throttled(fn.name, fn.concurrency)
        fn.inflight += 1
        started = time.monotonic()
        result = InvocationResult(request_id=request_id, version=fn.version)
        try:
            reply = await self.supervisor.invoke(
                fn.key,
                {
                    "request_id": request_id,
                    "export": export or fn.spec.get("export", "handle"),
                    "payload": payload,
                    "limits": limits,
                    "timeout_s": fn.timeout_s,
                    "name": fn.name,
                    "version": fn.version,
                },
                fn.timeout_s,
            )
        except InvocationError as exc:
            result.error = exc
        except FireboxError as exc:
            result.error = exc
        else:
            if reply.get("ok"):
                result.output = reply.get("result", b"")
            else:
                result.error = error_from_dict(reply.get("error") or {})
            result.log = reply.get("log", "")
            result.warm = bool(reply.get("warm"))
            result.fuel = int(reply.get("fuel", 0))
            result.memory_bytes = int(reply.get("memory", 0))
        finally:
            fn.inflight -= 1
        result.duration_s = time.monotonic() - started
        fn.invocations += 1
        if result.error is not None:
            fn.errors += 1
        return result
