"""Artifact kinds: what the node accepts as wasm (unit)."""

from __future__ import annotations

import pytest
from firebox.runtime.artifacts import artifact_kind
from firebox.runtime.errors import (
    InvalidArtifact,
)


@pytest.mark.parametrize(
    ("data", "kind"),
    [(b"\0asm\x01\0\0\0", "module"), (b"\0asm\x0d\0\x01\0", "component")],
)
def test_artifact_kind(data: bytes, kind: str) -> None:
    assert artifact_kind(data) == kind


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "only 0 bytes"), (b"PK\x03\x04zipzip", "bad magic"), (b"(module)  ", "WAT text"),
     (b"\0asm\x02\0\0\0", "unsupported")],
)  # fmt: skip
def test_artifact_kind_refuses_non_wasm(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArtifact, match=message):
        artifact_kind(data)
