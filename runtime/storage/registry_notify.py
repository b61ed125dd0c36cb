"""Push for registry changes: PostgreSQL LISTEN/NOTIFY, the poll stays as fallback (storage layer).

Writers notify in their own transaction (NOTIFY is delivered at commit, never for a
rolled-back write): `firebox_registry` whenever the generation counter moves (a deploy,
an alias, a setting) and `firebox_keys` with the key id when a key is revoked. Each node
listens on one dedicated connection from a thread of its own and calls back: the node's
poll loop wakes at once instead of after FIREBOX_REGISTRY_POLL_S, and a revoked key is
dropped from the key cache at once instead of after its 2 s lookup TTL. If the
connection drops, the thread reconnects (every second) and reports a change on
reconnecting, since notifications sent meanwhile are lost; the poll covers that gap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa
from firebox.runtime.config import FIREBOX_REGISTRY_PUSH

log = logging.getLogger("firebox.registry")

REGISTRY_CHANNEL = "firebox_registry"
KEYS_CHANNEL = "firebox_keys"
RECONNECT_S = 1.0
# How often the listening thread looks up from its wait to see whether it must stop.
WAKE_S = 0.5


def notify(conn: sa.Connection, channel: str, payload: str = "") -> None:
    """Queue a notification on `channel`, sent when `conn`'s transaction commits
    (nothing on databases other than PostgreSQL: one node has no one to tell)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_notify(:c, :p)"), {"c": channel, "p": payload})


class RegistryListener:
    """Listens for the registry's notifications on a thread; calls back from that thread."""

    def __init__(
        self,
        conninfo: str,
        on_change: Callable[[], None],
        on_key_revoked: Callable[[str], None],
    ) -> None:
        self.conninfo = conninfo
        self.on_change = on_change
        self.on_key_revoked = on_key_revoked
        self.received = 0  # notifications seen
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start listening in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="registry-listen", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within WAKE_S) and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        import psycopg

        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {REGISTRY_CHANNEL}")
                    conn.execute(f"LISTEN {KEYS_CHANNEL}")
                    self.connected.set()
                    if not first:
                        self.on_change()  # what was sent while disconnected is lost
                    first = False
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=WAKE_S):
                            self.received += 1
                            if note.channel == KEYS_CHANNEL:
                                self.on_key_revoked(note.payload)
                            else:
                                self.on_change()
            except Exception as exc:  # the database went away: poll meanwhile, reconnect
                self.connected.clear()
                log.warning("registry notifications lost, reconnecting: %s", exc)
                self._stop.wait(RECONNECT_S)


def open_registry_listener(
    engine: sa.Engine, on_change: Callable[[], None], on_key_revoked: Callable[[str], None]
) -> RegistryListener | None:
    """Return a listener for a PostgreSQL registry, or None for any other database (or
    with FIREBOX_REGISTRY_PUSH=0: poll only)."""
    if engine.dialect.name != "postgresql" or not FIREBOX_REGISTRY_PUSH.get():
        return None
    url = engine.url.set(drivername="postgresql")
    return RegistryListener(url.render_as_string(hide_password=False), on_change, on_key_revoked)
