"""Queue sends for granted functions: a message to a firebox queue, durably, like SQS
SendMessage (host layer).

Served through the `capabilities` interface (capabilities.py); the guest library is
`firebox.queues` (compiler/guest/firebox_guest_queues.py). The worker writes to the
node's queue backend (SQLite in the data dir, or Redis), so mappings and receivers on
any node see the message. Internal `firebox-` queues are never reachable.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.events.queue import check_public
from firebox.runtime.host import services
from firebox.runtime.host.api import HostState
from firebox.runtime.host.capabilities import Operation, grants_of

#: SQS's largest message body, which firebox queues keep.
MAX_BODY_BYTES = 256 * 1024


def _send(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    queue = request.get("queue")
    if not isinstance(queue, str):
        raise BadRequest("`queue` must be a string")
    check_public(queue)
    grants_of(state).queue(queue)
    try:
        body = base64.b64decode(request.get("body") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise BadRequest("`body` must be base64") from None
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"a message body is limited to {MAX_BODY_BYTES} bytes, got {len(body)}")
    attributes = request.get("attributes") or None
    if attributes is not None and not (
        isinstance(attributes, dict)
        and len(attributes) <= 10
        and all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items())
    ):
        raise BadRequest("`attributes` must map at most 10 names to strings")
    delay = request.get("delay_s")
    if delay is not None and (
        isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= 900
    ):
        raise BadRequest("`delay_s` must be a number of seconds from 0 to 900")
    try:
        message_id = services.queues().send(queue, body, attributes=attributes, delay_s=delay)
    except ValueError as exc:  # the backend's own SQS limits
        raise BadRequest(str(exc)) from None
    return {"message_id": message_id}


OPERATIONS: dict[str, Operation] = {"queue.send": _send}
