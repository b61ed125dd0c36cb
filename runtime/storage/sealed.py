"""Secrets sealed at rest: issued access keys' secrets are stored encrypted (storage layer).

SigV4 needs each key's secret itself (a hash would not do), so the registry keeps it
encrypted with AES-256-GCM under a key derived (HKDF-SHA256) from the node's sealing
secret: `FIREBOX_KEY_ENCRYPTION_KEY` when set, else the bootstrap admin secret. Reading the
database (a copied `registry.db`, its WAL, a PostgreSQL dump) then yields no usable
credentials without that secret. Every node sharing a registry needs the same sealing
secret (the same admin key pair, as docs/lifecycle.md already asks, or the same
`FIREBOX_KEY_ENCRYPTION_KEY`); changing it makes issued keys unusable until re-issued.
Secrets stored before sealing existed (plain text) are still read.
"""

from __future__ import annotations

import base64
import logging
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger("firebox.keys")

PREFIX = "fbs1:"
_INFO = b"firebox access-key secrets v1"
_NONCE_BYTES = 12


class Sealer:
    """Seals and opens short secrets with a key derived from one sealing secret."""

    def __init__(self, sealing_secret: str) -> None:
        if not sealing_secret:
            raise ValueError("the sealing secret must not be empty")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            sealing_secret.encode()
        )
        self._aead = AESGCM(key)
        self._warned = False

    def seal(self, secret: str, key_id: str) -> str:
        """Return `secret` encrypted for storage; bound to `key_id` (a row cannot be swapped)."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.encode(), key_id.encode())
        return PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, stored: str, key_id: str) -> str | None:
        """Return the secret a stored value holds, or None when it was sealed under another
        sealing secret (or tampered with). Plain text from before sealing is returned as is."""
        if not stored.startswith(PREFIX):
            return stored
        try:
            raw = base64.b64decode(stored[len(PREFIX) :], validate=True)
            return self._aead.decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], key_id.encode()
            ).decode()
        except (ValueError, InvalidTag):
            if not self._warned:
                self._warned = True
                log.warning(
                    "access key %s was sealed under another sealing secret: every node sharing"
                    " a registry needs the same admin key or FIREBOX_KEY_ENCRYPTION_KEY",
                    key_id,
                )
            return None
