"""Secrets: named values encrypted at rest, set through the native API, read by the
functions granted them, never returned by the API (storage layer).

Values are encrypted with Fernet (AES-128-CBC and HMAC-SHA256, from `cryptography`)
under the node's key: FIREBOX_SECRETS_KEY, else a key generated once in the data dir
(`secrets.key`, mode 0600). Rows live beside the tables (SQLite for one node, the
PostgreSQL database for many: then every node needs the same FIREBOX_SECRETS_KEY).
A new value replaces the old at once: functions read the current value on every get,
so rotation needs no redeploy.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken
from firebox.runtime import config
from firebox.runtime.errors import BadRequest, HostCallFailed, InvalidSetting, PayloadTooLarge
from firebox.runtime.grants import SECRET_RE
from firebox.runtime.storage.data_meta import data_metadata

secrets_table = sa.Table(
    "fb_secrets",
    data_metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

KEY_FILE = "secrets.key"


def load_key(data_dir: Path) -> bytes:
    """Return the node's secrets key: FIREBOX_SECRETS_KEY, else the data dir's (made once).

    Raises InvalidSetting when FIREBOX_SECRETS_KEY is not a Fernet key.
    """
    configured = config.FIREBOX_SECRETS_KEY.get()
    if configured:
        try:
            Fernet(configured.encode())
        except (ValueError, TypeError):
            raise InvalidSetting(
                "FIREBOX_SECRETS_KEY", "a Fernet key (32 bytes, url-safe base64)", "<hidden>"
            ) from None
        return configured.encode()
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this node made it first
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    return key


@dataclass(frozen=True)
class SecretInfo:
    """What the API says of a secret: its name, version and last change; never its value."""

    name: str
    version: int
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able form."""
        return {"name": self.name, "version": self.version, "updated_at": self.updated_at}


def check_name(name: Any) -> str:
    """Return `name` if it is a usable secret name; raises BadRequest."""
    if not isinstance(name, str) or not SECRET_RE.match(name):
        raise BadRequest("a secret name is 1-128 letters, digits, '_', '.', '-', not a digit first")
    return name


class SecretStore:
    """Encrypted named values in one SQL table."""

    def __init__(self, engine: sa.Engine, key: bytes) -> None:
        self.engine = engine
        self._fernet = Fernet(key)
        data_metadata.create_all(engine, tables=[secrets_table], checkfirst=True)

    def put(self, name: str, value: str) -> SecretInfo:
        """Set (or rotate) secret `name`; return its metadata. Raises BadRequest,
        PayloadTooLarge."""
        check_name(name)
        if not isinstance(value, str):
            raise BadRequest("a secret value must be a string")
        data = value.encode("utf-8", "surrogatepass")
        limit = config.FIREBOX_SECRET_MAX_BYTES.get()
        if len(data) > limit:
            raise PayloadTooLarge("a secret value", len(data), limit)
        token = self._fernet.encrypt(data)
        now = time.time()
        where = secrets_table.c.name == name
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    row = conn.execute(sa.select(secrets_table.c.version).where(where)).first()
                    version = 1 if row is None else int(row.version) + 1
                    if row is None:
                        conn.execute(
                            secrets_table.insert().values(
                                name=name, ciphertext=token, version=1, updated_at=now
                            )
                        )
                    else:
                        conn.execute(
                            secrets_table.update()
                            .where(where)
                            .values(ciphertext=token, version=version, updated_at=now)
                        )
                return SecretInfo(name, version, now)
            except sa.exc.IntegrityError:
                continue
        raise HostCallFailed(f"secret {name} is being set concurrently; retry")

    def get(self, name: str) -> str | None:
        """Return the value of secret `name`, or None. Raises HostCallFailed when it was
        encrypted under another key (nodes with different FIREBOX_SECRETS_KEY)."""
        check_name(name)
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(secrets_table.c.ciphertext).where(secrets_table.c.name == name)
            ).first()
        if row is None:
            return None
        try:
            return self._fernet.decrypt(bytes(row.ciphertext)).decode("utf-8", "surrogatepass")
        except InvalidToken:
            raise HostCallFailed(
                f"secret {name} was encrypted under another key: every node needs the same"
                " FIREBOX_SECRETS_KEY"
            ) from None

    def info(self, name: str) -> SecretInfo | None:
        """Return a secret's metadata (never its value), or None."""
        check_name(name)
        query = sa.select(secrets_table.c.name, secrets_table.c.version, secrets_table.c.updated_at)
        with self.engine.connect() as conn:
            row = conn.execute(query.where(secrets_table.c.name == name)).first()
        return SecretInfo(row.name, int(row.version), float(row.updated_at)) if row else None

    def list_all(self) -> list[SecretInfo]:
        """Return every secret's metadata, by name."""
        query = sa.select(
            secrets_table.c.name, secrets_table.c.version, secrets_table.c.updated_at
        ).order_by(secrets_table.c.name)
        with self.engine.connect() as conn:
            return [
                SecretInfo(r.name, int(r.version), float(r.updated_at)) for r in conn.execute(query)
            ]

    def delete(self, name: str) -> bool:
        """Remove secret `name`; return True if it existed."""
        check_name(name)
        with self.engine.begin() as conn:
            done = conn.execute(secrets_table.delete().where(secrets_table.c.name == name))
        return bool(done.rowcount)
