"""The host APIs guests may import, one module each, registered in `HOST_APIS` (host layer).

Adding one (key-value, blob, outbound HTTP, ...) is a module here with an `API` and a
line below; the guest layer defines every registered API on each guest's Linker. The
granted capabilities (tables, buckets, outbound HTTP) share one interface,
`capabilities`, each module adding its operations to it (capabilities.py says why).
"""

from __future__ import annotations

from firebox.runtime.host import blobs, capabilities, clock, http, kv, log, queues, secrets
from firebox.runtime.host.api import HostAPI

HOST_APIS: tuple[HostAPI, ...] = (
    log.API,
    capabilities.api(
        kv.OPERATIONS,
        blobs.OPERATIONS,
        http.OPERATIONS,
        secrets.OPERATIONS,
        queues.OPERATIONS,
        clock.OPERATIONS,
    ),
)
