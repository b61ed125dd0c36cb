"""Import direction: the front end and the data modules load without wasmtime."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    [
        "firebox.runtime.http.app",
        "firebox.runtime.node",
        "firebox.runtime.limits",
        "firebox.runtime.engine",
        "firebox.runtime.guest.protocol",
        "firebox.runtime.host",
    ],
)
def test_module_does_not_load_wasmtime(module: str) -> None:
    # A fresh interpreter: this test process has long imported wasmtime.
    code = (
        f"import sys, {module}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'wasmtime')\n"
        "assert not loaded, loaded"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
