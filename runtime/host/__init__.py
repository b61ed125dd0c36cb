"""The host APIs guests may import, one module each, registered in `HOST_APIS` (host layer).

Adding one (key-value, blob, outbound HTTP, ...) is a module here with an `API` and a
line below; the guest layer defines every registered API on each guest's Linker.
"""

from __future__ import annotations

from firebox.runtime.host import log
from firebox.runtime.host.api import HostAPI

HOST_APIS: tuple[HostAPI, ...] = (log.API,)
