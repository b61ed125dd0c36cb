"""The content address of a function version's snapshot (engine layer).

A snapshot is the state after a function's initialization, so its key covers everything
initialization can observe or that shapes the captured bytes: the interpreter build (by
its artifact digest), the bundle, the handler, the configuration `load` receives
(environment, memory size, names, log limit), the firebox and wasmtime versions, the
serving engine's fingerprint and this format's version. Changing any of them means a new
snapshot; nothing per-invocation is in it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from typing import Any

from firebox.runtime.engine import WASMTIME_VERSION

#: Bumped when what a snapshot holds, or how it is restored, changes.
SNAPSHOT_FORMAT = 1


def _firebox_version() -> str:
    try:
        return importlib.metadata.version("firebox")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def snapshot_key(
    *,
    interpreter_digest: str,
    bundle_digest: str,
    handler: str,
    config: dict[str, Any],
    engine_fingerprint: str,
) -> str:
    """Return the hex sha256 that names a snapshot of one function version.

    `config` is the function configuration as `load` sees it (PythonFunctionConfig's
    fields; a mapping environment is sorted by key).
    """
    document = {
        "format": SNAPSHOT_FORMAT,
        "firebox": _firebox_version(),
        "wasmtime": WASMTIME_VERSION,
        "engine": engine_fingerprint,
        "interpreter": interpreter_digest,
        "bundle": bundle_digest,
        "handler": handler,
        "config": config,
    }
    blob = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
