"""Secret reads for granted functions (host layer).

Served through the `capabilities` interface (capabilities.py); the guest library is
`firebox.secrets` (compiler/guest/firebox_guest_secrets.py). The value crosses only to
the guest that asked: it is never logged by the host. Storage: runtime/storage/secrets.py.
"""

from __future__ import annotations

from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.host import services
from firebox.runtime.host.api import HostState
from firebox.runtime.host.capabilities import Operation, grants_of


def _get(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("name")
    if not isinstance(name, str):
        raise BadRequest("`name` must be a string")
    grants_of(state).secret(name)
    return {"value": services.data().secrets.get(name)}


OPERATIONS: dict[str, Operation] = {"secret.get": _get}
