"""The registry's tables and their versioned upgrades (storage layer).

One SQLAlchemy Core schema for SQLite and PostgreSQL. `upgrade()` brings any older
database to SCHEMA_VERSION in place, keeping its data: new tables are created, new
columns added with defaults. Each step is a function of its own, run once, in order.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

SCHEMA_VERSION = 3

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version", metadata, sa.Column("version", sa.Integer, nullable=False)
)

# Key/value counters shared by every node of a registry; `generation` moves on every
# write that changes what a node serves, so nodes notice each other's deploys.
meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

# $LATEST of every function (v1 columns first; tags and next_version came in v2).
functions = sa.Table(
    "functions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("bundle_digest", sa.String(64), nullable=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, default=1),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("tags", sa.Text, nullable=False, server_default="{}"),
    sa.Column("next_version", sa.Integer, nullable=False, server_default="1"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("function", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("bundle_digest", sa.String(64), nullable=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("function", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("routing", sa.Text, nullable=False, server_default="{}"),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

provisioned = sa.Table(
    "provisioned",
    metadata,
    sa.Column("function", sa.String(64), primary_key=True),
    sa.Column("qualifier", sa.String(128), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)

# Artifacts shared between nodes (only when the registry itself is shared).
blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Index("logs_function_ts", "function", "ts"),
    sa.Index("logs_request", "request_id"),
)

usage = sa.Table(
    "usage",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("version", sa.String(16), nullable=False),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),  # ok | error | throttled
    sa.Column("error_type", sa.String(64), nullable=True),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("billed_ms", sa.Integer, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("peak_memory_bytes", sa.BigInteger, nullable=False),
    sa.Column("fuel", sa.BigInteger, nullable=False),
    sa.Column("request_bytes", sa.Integer, nullable=False),
    sa.Column("response_bytes", sa.Integer, nullable=False),
    sa.Column("cold", sa.Boolean, nullable=False),
    sa.Index("usage_function_ts", "function", "ts"),
)


# --- v3: event-driven invocation -------------------------------------------------------

# Lambda's event-invoke config per function and qualifier: retries, event age, destinations.
event_configs = sa.Table(
    "event_configs",
    metadata,
    sa.Column("function", sa.String(64), primary_key=True),
    sa.Column("qualifier", sa.String(128), primary_key=True),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Event source mappings: a queue or stream feeding a function in batches.
mappings = sa.Table(
    "mappings",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("qualifier", sa.String(128), nullable=False, server_default="$LATEST"),
    sa.Column("source_kind", sa.String(16), nullable=False),  # queue | stream
    sa.Column("source", sa.String(256), nullable=False),
    sa.Column("config", sa.Text, nullable=False),  # batch size, window, retries, ...
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(32), nullable=False, server_default="Enabled"),
    sa.Column("state_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# Schedules: rate(...) / cron(...) expressions that invoke a function.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("qualifier", sa.String(128), nullable=False, server_default="$LATEST"),
    sa.Column("expression", sa.String(256), nullable=False),
    sa.Column("payload", sa.Text, nullable=True),  # JSON; None: the scheduled-event payload
    sa.Column("catch_up", sa.String(8), nullable=False, server_default="skip"),  # skip | once
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("last_fired", sa.Float, nullable=True),  # the tick time last fired (claimed)
    sa.Column("created_at", sa.Float, nullable=False),
)

# The schedules' outbox: a claimed tick's event, written in the claim's transaction and
# deleted once the async queue took it, so a node dying in between loses no tick (a
# new table, made by create_all on any schema version: no upgrade step needed).
schedule_outbox = sa.Table(
    "schedule_outbox",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("tick", sa.Float, primary_key=True),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("qualifier", sa.String(128), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # the event, JSON
    sa.Column("claimed_at", sa.Float, nullable=False),  # moved by whoever retries it
)


# Access keys the admin created (SigV4 and bearer); the bootstrap admin key stays in
# the environment or the data dir's credentials.json.
access_keys = sa.Table(
    "access_keys",
    metadata,
    sa.Column("access_key_id", sa.String(128), primary_key=True),
    sa.Column("secret", sa.String(256), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
)


def _v2_to_v3(conn: sa.Connection) -> None:
    """v3: event configs, mappings, schedules, access keys (new tables only, made by create_all)."""


def _v1_to_v2(conn: sa.Connection) -> None:
    """v2: versions, aliases, provisioned concurrency, logs, usage, tags (tables come
    from create_all); add the new columns of `functions` to a v1 table."""
    present = {c["name"] for c in sa.inspect(conn).get_columns("functions")}
    if "tags" not in present:
        conn.exec_driver_sql("ALTER TABLE functions ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'")
    if "next_version" not in present:
        conn.exec_driver_sql(
            "ALTER TABLE functions ADD COLUMN next_version INTEGER NOT NULL DEFAULT 1"
        )


UPGRADES: dict[int, Callable[[sa.Connection], None]] = {2: _v1_to_v2, 3: _v2_to_v3}


def upgrade(engine: sa.Engine) -> int:
    """Create or upgrade the schema in place; return the version found before (0 if new)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two nodes starting at once must not both run the upgrade.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7271001)")
        existed = sa.inspect(conn).has_table("schema_version")
        metadata.create_all(conn, checkfirst=True)
        row = conn.execute(sa.select(schema_version.c.version)).first()
        found = int(row.version) if row is not None else (1 if existed else 0)
        if row is None:
            conn.execute(
                schema_version.insert().values(version=SCHEMA_VERSION if not existed else found)
            )
        current = found or SCHEMA_VERSION
        for version in range(current + 1, SCHEMA_VERSION + 1):
            UPGRADES[version](conn)
        conn.execute(schema_version.update().values(version=SCHEMA_VERSION))
        if conn.execute(sa.select(meta.c.value).where(meta.c.key == "generation")).first() is None:
            conn.execute(meta.insert().values(key="generation", value=0))
    return found
