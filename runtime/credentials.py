"""Admin credentials: from the environment, or generated on first start into the data dir (security layer)."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from firebox.runtime import config
from firebox.runtime.errors import Forbidden, Unauthorized

CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """An access key pair (an id that names the key, a secret that proves it)."""

    access_key_id: str
    secret_access_key: str


# What the node writes in its data dir is its own: other local users may not even list it.
PRIVATE_DIR_MODE = 0o700


def make_private(data_dir: Path) -> None:
    """Create the data dir (0700 whatever the umask) and take group and other access away
    from it and from the databases and credentials already in it."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    os.chmod(data_dir, PRIVATE_DIR_MODE)
    for path in data_dir.iterdir():
        if path.is_file() and not path.is_symlink():
            os.chmod(path, path.stat().st_mode & 0o700)


def credentials_path(data_dir: Path) -> Path:
    """Return where generated credentials are kept in a data dir."""
    return data_dir / CREDENTIALS_FILE


def load_or_create(data_dir: Path) -> tuple[Credentials, bool]:
    """Return the admin credentials and whether they were generated just now.

    FIREBOX_ACCESS_KEY_ID / FIREBOX_SECRET_ACCESS_KEY win; otherwise the data dir's
    credentials.json (mode 0600), created with fresh random keys if absent.
    """
    from_env = read_env()
    if from_env is not None:
        return from_env, False
    path = credentials_path(data_dir)
    if path.exists():
        return read_file(path), False
    creds = Credentials(
        access_key_id="FBX" + secrets.token_hex(8).upper(),
        secret_access_key=secrets.token_urlsafe(30),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(
            {"access_key_id": creds.access_key_id, "secret_access_key": creds.secret_access_key},
            f,
            indent=2,
        )
    return creds, True


def read_env() -> Credentials | None:
    """Return credentials from FIREBOX_ACCESS_KEY_ID / FIREBOX_SECRET_ACCESS_KEY, if both are set."""
    key_id = config.FIREBOX_ACCESS_KEY_ID.get()
    secret = config.FIREBOX_SECRET_ACCESS_KEY.get()
    if key_id and secret:
        return Credentials(key_id, secret)
    return None


def read_file(path: Path) -> Credentials:
    """Return the credentials stored in `path`."""
    data = json.loads(path.read_text())
    return Credentials(data["access_key_id"], data["secret_access_key"])


def bearer_token(creds: Credentials) -> str:
    """Return the `Authorization` header value for these credentials."""
    return f"Bearer {creds.access_key_id}:{creds.secret_access_key}"


def verify_bearer(header: str | None, known: dict[str, str]) -> str:
    """Check an `Authorization: Bearer KEY_ID:SECRET` header; return the key id.

    Raises Unauthorized when the header is missing or names an unknown key, and
    Forbidden when the secret does not match (compared in constant time).
    """
    if not header:
        raise Unauthorized(
            "missing credentials: send `Authorization: Bearer ACCESS_KEY_ID:SECRET`"
            " (the CLI and SDK do this for you)"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or ":" not in token:
        raise Unauthorized("unsupported Authorization scheme; expected `Bearer KEY_ID:SECRET`")
    key_id, _, secret = token.strip().partition(":")
    expected = known.get(key_id)
    if expected is None:
        raise Unauthorized(f"unknown access key id {key_id!r}")
    if not hmac.compare_digest(expected.encode(), secret.encode()):
        raise Forbidden("the secret does not match the access key id")
    return key_id
