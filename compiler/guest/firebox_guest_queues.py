"""`firebox.queues`: send messages to the firebox queues a function was granted (guest side).

    import firebox
    firebox.queues.send("jobs", {"job": 42})              # JSON-encoded
    firebox.queues.send("jobs", b"raw bytes", delay_s=10)

A message is stored durably before `send` returns its id; mappings and receivers of the
queue (on any node) then see it, as with SQS SendMessage.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from firebox_guest_capability import call


def send(
    queue: str,
    body: Any,
    *,
    attributes: dict[str, str] | None = None,
    delay_s: float | None = None,
) -> str:
    """Send `body` (bytes, a str, or anything JSON-serializable) to `queue`; return the
    message id. Raises CapabilityDenied when the function may not send to it."""
    if isinstance(body, str):
        raw = body.encode()
    elif isinstance(body, (bytes, bytearray, memoryview)):
        raw = bytes(body)
    else:
        raw = json.dumps(body).encode()
    reply = call(
        "queue.send", queue=queue, body=base64.b64encode(raw).decode(),
        attributes=attributes, delay_s=delay_s,
    )  # fmt: skip
    return str(reply["message_id"])
