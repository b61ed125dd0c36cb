"""firebox's library for Python functions: the host capabilities a function was granted
(guest side).

    import firebox
    firebox.kv.table("orders").put("o-1", {"total": 12})
    firebox.blobs.bucket("uploads").get("a/report.csv")
    firebox.secrets.get("STRIPE_KEY")
    firebox.queues.send("jobs", {"job": 42})

Outbound HTTP needs no library: `urllib.request`, `http.client`, `urllib3`, `requests`
and `httpx` (sync) go through the host as they are (firebox_guest_http). Grants live
in the function's manifest, `[capabilities]`; see docs/capabilities.md.
"""

from __future__ import annotations

import firebox_guest_blobs as blobs
import firebox_guest_http as http
import firebox_guest_kv as kv
import firebox_guest_queues as queues
import firebox_guest_secrets as secrets
from firebox_guest_capability import (
    CapabilityDenied,
    ConditionFailed,
    FireboxError,
    HostCallFailed,
    InvalidRequest,
    PayloadTooLarge,
)

__all__ = [
    "CapabilityDenied",
    "ConditionFailed",
    "FireboxError",
    "HostCallFailed",
    "InvalidRequest",
    "PayloadTooLarge",
    "blobs",
    "http",
    "kv",
    "queues",
    "secrets",
]
