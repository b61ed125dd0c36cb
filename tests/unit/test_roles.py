"""Execution-role credentials: issued for one version, verified from the token alone."""

from __future__ import annotations

import pytest
from firebox.runtime import roles

KEY = roles.role_key("the cluster's sealing secret")


def test_issued_credentials_verify_to_their_function_version() -> None:
    creds = roles.issue(KEY, "orders", "3", ttl_s=600, now=1_000_000)
    assert creds.access_key_id.startswith("ASIA") and len(creds.access_key_id) == 20
    identity, secret = roles.verify(KEY, creds.access_key_id, creds.session_token, now=1_000_100)
    assert (identity.function, identity.version, identity.expires_at) == ("orders", "3", 1_000_600)
    assert secret == creds.secret_access_key
    doc = creds.to_container_json()
    assert doc["Expiration"].endswith("Z") and doc["Token"] == creds.session_token


def test_forged_mismatched_and_expired_credentials_are_refused() -> None:
    creds = roles.issue(KEY, "orders", "$LATEST", ttl_s=60, now=1_000_000)
    other = roles.issue(KEY, "admin-tool", "$LATEST", ttl_s=60, now=1_000_000)
    with pytest.raises(roles.RoleError, match="expired"):
        roles.verify(KEY, creds.access_key_id, creds.session_token, now=1_000_061)
    with pytest.raises(roles.RoleError, match="does not belong"):
        roles.verify(KEY, other.access_key_id, creds.session_token, now=1_000_001)
    with pytest.raises(roles.RoleError, match="not issued by this cluster"):
        roles.verify(roles.role_key("another cluster"), creds.access_key_id, creds.session_token)
    # A token whose claims were edited (another function) fails its MAC.
    body, mac = creds.session_token[len(roles.TOKEN_PREFIX) :].split(".")
    edited = (
        roles.TOKEN_PREFIX
        + other.session_token[len(roles.TOKEN_PREFIX) :].split(".")[0]
        + "."
        + mac
    )
    with pytest.raises(roles.RoleError, match="not issued"):
        roles.verify(KEY, creds.access_key_id, edited)
    with pytest.raises(roles.RoleError, match="session token"):
        roles.verify(KEY, creds.access_key_id, None)
    assert body
