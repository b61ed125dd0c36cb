"""Admin credentials: generated once, verified (unit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from firebox.runtime.credentials import load_or_create, verify_bearer
from firebox.runtime.errors import (
    Forbidden,
    Unauthorized,
)


def test_credentials_generated_once_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FIREBOX_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("FIREBOX_SECRET_ACCESS_KEY", raising=False)
    creds, generated = load_or_create(tmp_path)
    assert generated
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600
    again, generated_again = load_or_create(tmp_path)
    assert again == creds and not generated_again
    known = {creds.access_key_id: creds.secret_access_key}
    assert verify_bearer(f"Bearer {creds.access_key_id}:{creds.secret_access_key}", known)
    with pytest.raises(Unauthorized):
        verify_bearer(None, known)
    with pytest.raises(Unauthorized):
        verify_bearer("Bearer OTHER:x", known)
    with pytest.raises(Forbidden):
        verify_bearer(f"Bearer {creds.access_key_id}:wrong", known)
    monkeypatch.setenv("FIREBOX_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("FIREBOX_SECRET_ACCESS_KEY", "sekrit")
    assert load_or_create(tmp_path)[0].access_key_id == "AKID"
