"""One invocation: dispatch a resolved version to a worker, the typed result (invocation layer).

Admission (concurrency caps, payload size) happened before this, in
`firebox.runtime.admission`; the version was resolved once, at the front door.
"""

from __future__ import annotations

import time
import uuid

from firebox.runtime.errors import FireboxError
from firebox.runtime.specs import Deployed, InvocationResult, InvokeRequest
from firebox.runtime.supervisor import Supervisor


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
        """Run `fn` (exactly this version) on `payload` in a worker; returns a result
        carrying output or an error. Never raises a FireboxError: failures are in
        `result.error`."""
        request_id = request_id or str(uuid.uuid4())
        started = time.monotonic()
        result = InvocationResult(request_id=request_id, version=fn.version)
        request = InvokeRequest(
            key=fn.key,
            request_id=request_id,
            payload=payload,
            export=export or fn.spec.export,
            limits=fn.limits,
            name=fn.name,
            version=fn.version,
            spec=fn.spec,
            invoked_arn=invoked_arn,
            client_context=client_context,
        )
        try:
            reply = await self.supervisor.invoke(request)
        except FireboxError as exc:
            result.error = exc
        else:
            result.output = reply.output
            result.error = reply.failure()
            result.log = reply.log
            result.warm = reply.warm
            result.fuel = reply.fuel
            result.memory_bytes = reply.memory_bytes
        result.duration_s = time.monotonic() - started
        return result


__all__ = ["Invoker"]
