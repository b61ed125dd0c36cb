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
from dataclasses import asdict
from typing import Any

from firebox.runtime.engine import WASMTIME_VERSION
from firebox.runtime.guest.function_config import PythonFunctionConfig, python_config
from firebox.runtime.specs import FunctionSpec

#: Bumped when what a snapshot holds, or how it is restored, changes.
SNAPSHOT_FORMAT = 2


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


def config_fields(config: PythonFunctionConfig) -> dict[str, Any]:
    """Return a function configuration as the key hashes it (environment sorted by key)."""
    fields = asdict(config)
    fields["environment"] = dict(sorted(dict(config.environment).items()))
    return fields


def spec_snapshot_key(spec: FunctionSpec, engine_fingerprint: str) -> str | None:
    """Return the snapshot key of a Python function version's spec (None for other kinds).

    The interpreter is the spec's component artifact, the configuration the one
    `python_config` builds for capture and restore alike.
    """
    if spec.kind != "python" or spec.bundle_digest is None:
        return None
    return snapshot_key(
        interpreter_digest=spec.digest,
        bundle_digest=spec.bundle_digest,
        handler=spec.handler,
        config=config_fields(python_config(spec)),
        engine_fingerprint=engine_fingerprint,
    )
