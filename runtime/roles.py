"""Execution roles: short-lived AWS-style credentials bound to one function version (security layer).

Lambda gives every function its role's temporary credentials (`ASIA...` key, secret,
session token). firebox does the same without storing anything: the session token names
the function, the version and the expiry and carries a MAC; the access key id and the
secret are derived from the token. A node verifying a SigV4 request made with them
recomputes the secret from the token, so any node holding the same role key (derived
from the sealing secret every node of a cluster shares, see storage/sealed.py) accepts
credentials any other node issued, until they expire.

What the credentials may do is the version's grant (`runtime/grants.py`), checked by the
AWS-compatible APIs (SQS, S3, Lambda Invoke) that accept them; the native /v1 API and the
rest of the Lambda API refuse them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

#: The ASGI scope key under which a request signed with role credentials carries its
#: RoleIdentity (set by the authentication middleware).
SCOPE_KEY = "firebox.role"
#: Temporary keys start like AWS's (`ASIA`), so tools treat them as session credentials.
KEY_ID_PREFIX = "ASIA"
TOKEN_PREFIX = "fbr1."
#: How long issued credentials live; botocore refreshes them before they expire.
DEFAULT_TTL_S = 3600.0
_INFO = b"firebox execution roles v1"


class RoleError(Exception):
    """Role credentials that are malformed, forged or expired."""


@dataclass(frozen=True)
class RoleIdentity:
    """Who role credentials speak for: one function version."""

    function: str
    version: str
    expires_at: float


@dataclass(frozen=True)
class RoleCredentials:
    """Temporary credentials in the shape botocore's container provider reads."""

    access_key_id: str
    secret_access_key: str
    session_token: str
    expires_at: float

    def to_container_json(self) -> dict[str, str]:
        """Return the ECS/Lambda container-credentials document botocore reads."""
        expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.expires_at))
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": expiration,
        }


def role_key(sealing_secret: str) -> bytes:
    """Return the key role tokens are signed with, derived from the node's sealing secret."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        sealing_secret.encode()
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derived(key: bytes, token: str) -> tuple[str, str]:
    digest = hmac.new(key, b"key-id:" + token.encode(), hashlib.sha256).digest()
    key_id = KEY_ID_PREFIX + base64.b32encode(digest).decode()[:16]
    secret = _b64(hmac.new(key, b"secret:" + token.encode(), hashlib.sha256).digest())[:40]
    return key_id, secret


def issue(key: bytes, function: str, version: str, ttl_s: float = DEFAULT_TTL_S,
          now: float | None = None) -> RoleCredentials:  # fmt: skip
    """Return fresh credentials for one function version, valid for `ttl_s`."""
    expires_at = round((time.time() if now is None else now) + ttl_s)
    body = _b64(json.dumps({"f": function, "v": version, "exp": expires_at},
                           separators=(",", ":")).encode())  # fmt: skip
    mac = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    token = f"{TOKEN_PREFIX}{body}.{mac}"
    key_id, secret = _derived(key, token)
    return RoleCredentials(key_id, secret, token, float(expires_at))


def is_role_key(key_id: str) -> bool:
    """Return True when `key_id` has the shape of role credentials."""
    return key_id.startswith(KEY_ID_PREFIX)


def verify(
    key: bytes, key_id: str, token: str | None, now: float | None = None
) -> tuple[RoleIdentity, str]:
    """Return who `key_id` with its session `token` speaks for and the secret to check the
    signature with. Raises RoleError for a missing, forged, mismatched or expired token."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 2048:
        raise RoleError("role credentials need their session token (X-Amz-Security-Token)")
    body, _, mac = token[len(TOKEN_PREFIX) :].partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(mac, expected):
        raise RoleError("the session token was not issued by this cluster")
    derived_id, secret = _derived(key, token)
    if not hmac.compare_digest(derived_id, key_id):
        raise RoleError("the access key id does not belong to the session token")
    try:
        claims = json.loads(_unb64(body))
        identity = RoleIdentity(str(claims["f"]), str(claims["v"]), float(claims["exp"]))
    except (ValueError, KeyError, TypeError):
        raise RoleError("the session token is malformed") from None
    if identity.expires_at <= (time.time() if now is None else now):
        raise RoleError("the security token included in the request is expired")
    return identity, secret
