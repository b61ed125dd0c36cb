"""One invocation: admission, dispatch to a worker, the typed result (invocation layer)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from firebox.runtime.errors import FireboxError, error_from_dict
from firebox.runtime.supervisor import Supervisor


@dataclass
class Deployed:
    """One version of a function as the node serves it: its pool key and worker spec."""

    name: str
    key: str
    spec: dict[str, Any]
    config: dict[str, Any]
    version: str = "$LATEST"
    revision: int = 1

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
        invoked_arn: str = "",
        client_context: str | None = None,
    ) -> InvocationResult:
        """Run `fn` on `payload` in a worker; returns a result carrying output or an error.

        Admission (concurrency caps, payload size) is the caller's job; this never raises
        a FireboxError: failures are in `result.error`.
        """
        request_id = request_id or str(uuid.uuid4())
        started = time.monotonic()
        result = InvocationResult(request_id=request_id, version=fn.version)
        try:
            reply = await self.supervisor.invoke(
                fn.key,
                {
                    "request_id": request_id,
                    "export": export or fn.spec.get("export", "handle"),
                    "payload": payload,
                    "limits": fn.spec["limits"],
                    "timeout_s": fn.timeout_s,
                    "name": fn.name,
                    "version": fn.version,
                    "arn": invoked_arn,
                    "client_context": client_context,
                },
                fn.timeout_s,
                fn.spec,
            )
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
        result.duration_s = time.monotonic() - started
        return result
