"""`time.sleep` for guests, ended at the invocation's deadline (host layer).

A WASI sleep blocks inside wasmtime, out of reach of epoch deadlines; the Python guest's
`time.sleep` is this operation instead (compiler/guest/firebox_guest_time.py). It needs
no grant: it reaches nothing outside the instance. It sleeps at most until the running
call's deadline; past it, `capabilities.dispatch` marks the call timed out and the guest
is stopped by its epoch deadline a few ticks later.
"""

from __future__ import annotations

import math
import time
from typing import Any

from firebox.runtime.errors import BadRequest
from firebox.runtime.host.api import HostState
from firebox.runtime.host.capabilities import remaining_s

#: The longest one sleep may last without a deadline (Lambda's longest timeout).
MAX_SLEEP_S = 900.0


def sleep(state: HostState, request: dict[str, Any]) -> dict[str, Any]:
    """Sleep `seconds`, at most until the call's deadline; reply how long it slept."""
    seconds = request.get("seconds")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise BadRequest("time.sleep needs a number of seconds")
    if math.isnan(seconds) or seconds < 0:
        raise BadRequest("sleep length must be a non-negative number")
    started = time.monotonic()
    time.sleep(min(float(seconds), remaining_s(state), MAX_SLEEP_S))
    return {"slept": time.monotonic() - started}


OPERATIONS = {"time.sleep": sleep}
