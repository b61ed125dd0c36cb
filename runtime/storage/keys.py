"""Access keys the admin issued, in the registry's database (storage layer).

The bootstrap admin key (`firebox.runtime.credentials`) is not stored here: it lives in
the environment or the data dir and is always valid. Keys here can be revoked; a revoked
key stays listed (with `revoked_at`) so an audit can still name it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from firebox.runtime.errors import KeyNotFound
from firebox.runtime.storage.registry_notify import KEYS_CHANNEL, notify
from firebox.runtime.storage.schema import access_keys
from firebox.runtime.storage.sealed import Sealer

# The shape AWS tooling expects of a key id: 20 upper-case characters, "AKIA"-like.
KEY_ID_PREFIX = "FBK"
# How long a looked-up secret is trusted before the database is asked again; a key
# revoked on another node stops working on this one after at most this long (on
# PostgreSQL a notification drops it at once: `registry_notify`; this is the fallback).
LOOKUP_TTL_S = 2.0


@dataclass(frozen=True)
class AccessKey:
    """An issued access key; `secret` is only filled in when the key is created."""

    access_key_id: str
    description: str
    created_at: float
    revoked_at: float | None = None
    secret: str | None = None

    def to_dict(self) -> dict[str, object]:
        """Return the key's public description (the secret only if this object has it)."""
        out: dict[str, object] = {
            "access_key_id": self.access_key_id,
            "description": self.description,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }
        if self.secret is not None:
            out["secret_access_key"] = self.secret
        return out


class KeyStore:
    """Create, list, revoke and look up access keys on the registry's database; secrets
    are stored sealed (`sealed.py`)."""

    def __init__(self, engine: sa.Engine, sealer: Sealer, ttl_s: float = LOOKUP_TTL_S) -> None:
        self.engine = engine
        self.sealer = sealer
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, str | None]] = {}

    def create(self, description: str = "") -> AccessKey:
        """Issue a new key pair; the returned AccessKey is the only place its secret appears."""
        secret = secrets.token_urlsafe(30)
        key = AccessKey(
            access_key_id=KEY_ID_PREFIX + secrets.token_hex(9).upper()[:17],
            description=description,
            created_at=time.time(),
            secret=secret,
        )
        with self.engine.begin() as conn:
            conn.execute(
                access_keys.insert().values(
                    access_key_id=key.access_key_id,
                    secret=self.sealer.seal(secret, key.access_key_id),
                    description=description,
                    created_at=key.created_at,
                )
            )
        return key

    def list(self) -> list[AccessKey]:
        """Return every issued key (revoked ones too), oldest first, without secrets."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(access_keys).order_by(access_keys.c.created_at)).all()
        return [AccessKey(r.access_key_id, r.description, r.created_at, r.revoked_at) for r in rows]

    def revoke(self, key_id: str) -> AccessKey:
        """Revoke a key (idempotent); returns it. Raises KeyNotFound."""
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(access_keys).where(access_keys.c.access_key_id == key_id)
            ).first()
            if row is None:
                raise KeyNotFound(key_id)
            revoked_at = row.revoked_at or time.time()
            if row.revoked_at is None:
                conn.execute(
                    access_keys.update()
                    .where(access_keys.c.access_key_id == key_id)
                    .values(revoked_at=revoked_at)
                )
                notify(conn, KEYS_CHANNEL, key_id)  # other nodes forget it at commit
        self._cache.pop(key_id, None)
        return AccessKey(row.access_key_id, row.description, row.created_at, revoked_at)

    def forget(self, key_id: str) -> None:
        """Drop a key from the lookup cache (another node revoked it); thread-safe."""
        self._cache.pop(key_id, None)

    def secret(self, key_id: str) -> str | None:
        """Return the secret of a live (not revoked) key, or None; cached for `ttl_s`."""
        now = time.monotonic()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(access_keys.c.secret).where(
                    access_keys.c.access_key_id == key_id, access_keys.c.revoked_at.is_(None)
                )
            ).first()
        secret = self.sealer.open(str(row.secret), key_id) if row is not None else None
        if len(self._cache) > 10_000:  # unknown ids must not grow the cache without bound
            self._cache.clear()
        self._cache[key_id] = (now, secret)
        return secret
