"""The function registry: $LATEST, published versions, aliases, tags, provisioned concurrency
(storage layer).

One SQLAlchemy Core code path for SQLite (the default, in the data dir) and PostgreSQL
(`FIREBOX_DATABASE_URL=postgresql://...`, shared by many nodes); `backends.py` picks the
URL. The schema and its upgrades live in `schema.py`; shared artifacts are a `BlobStore`
(`blobs.py`), not the registry's business.
"""

from __future__ import annotations

import builtins
import json
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from firebox.runtime.errors import Conflict, FunctionNotFound
from firebox.runtime.storage.registry_notify import REGISTRY_CHANNEL, notify
from firebox.runtime.storage.schema import (
    aliases,
    functions,
    meta,
    provisioned,
    upgrade,
    versions,
)

LATEST = "$LATEST"


@dataclass(frozen=True)
class FunctionRecord:
    """One version of a function as the registry stores it ($LATEST or a published number)."""

    name: str
    kind: str
    digest: str
    bundle_digest: str | None
    config: dict[str, Any]
    version: str = LATEST
    revision: int = 1
    created_at: float = 0.0
    updated_at: float = 0.0
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AliasRecord:
    """A named pointer at a version, with optional weighted routing to others."""

    function: str
    name: str
    version: str
    routing: dict[str, float]
    description: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class Registry:
    """Functions, versions and aliases on any SQLAlchemy-supported database."""

    def __init__(self, url: str) -> None:
        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        self.engine = sa.create_engine(url, future=True, **kwargs)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.upgraded_from = upgrade(self.engine)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # --- generation: how nodes notice each other's writes -------------------------

    def generation(self) -> int:
        """Return the registry's write counter (moves on every change a node must see)."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(sa.select(meta.c.value).where(meta.c.key == "generation")).scalar_one()
            )

    @staticmethod
    def _bump(conn: sa.Connection) -> None:
        conn.execute(meta.update().where(meta.c.key == "generation").values(value=meta.c.value + 1))
        notify(conn, REGISTRY_CHANNEL)  # other nodes reload at commit, not at their next poll

    # --- $LATEST ------------------------------------------------------------------

    def put_latest(
        self,
        name: str,
        kind: str,
        digest: str,
        config: dict[str, Any],
        bundle_digest: str | None,
        tags: dict[str, str] | None = None,
    ) -> FunctionRecord:
        """Create a function or replace its $LATEST code and configuration (revision + 1)."""
        now = time.time()
        values = {
            "kind": kind,
            "digest": digest,
            "bundle_digest": bundle_digest,
            "config": _dumps(config),
            "updated_at": now,
        }
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(functions.c.revision).where(functions.c.name == name).with_for_update()
            ).first()
            if row is None:
                conn.execute(
                    functions.insert().values(
                        name=name,
                        revision=1,
                        created_at=now,
                        tags=_dumps(tags or {}),
                        next_version=1,
                        **values,
                    )
                )
            else:
                if tags is not None:
                    values["tags"] = _dumps(tags)
                conn.execute(
                    functions.update()
                    .where(functions.c.name == name)
                    .values(revision=row.revision + 1, **values)
                )
            self._bump(conn)
        return self.get(name)

    def update_config(self, name: str, config: dict[str, Any]) -> FunctionRecord:
        """Replace $LATEST's configuration only; raises FunctionNotFound."""
        with self.engine.begin() as conn:
            result = conn.execute(
                functions.update()
                .where(functions.c.name == name)
                .values(
                    config=_dumps(config), updated_at=time.time(), revision=functions.c.revision + 1
                )
            )
            if not result.rowcount:
                raise FunctionNotFound(name)
            self._bump(conn)
        return self.get(name)

    def set_tags(self, name: str, tags: dict[str, str]) -> None:
        """Replace a function's tags; raises FunctionNotFound."""
        with self.engine.begin() as conn:
            result = conn.execute(
                functions.update().where(functions.c.name == name).values(tags=_dumps(tags))
            )
            if not result.rowcount:
                raise FunctionNotFound(name)

    def find(self, name: str) -> FunctionRecord | None:
        """Return $LATEST of `name`, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(functions).where(functions.c.name == name)).first()
        return _latest(row) if row is not None else None

    def get(self, name: str) -> FunctionRecord:
        """Return $LATEST of `name`; raises FunctionNotFound."""
        record = self.find(name)
        if record is None:
            raise FunctionNotFound(name)
        return record

    def list(
        self, after: str | None = None, limit: int | None = None
    ) -> builtins.list[FunctionRecord]:
        """Return functions ($LATEST) by name, after the name `after`, at most `limit`."""
        query = sa.select(functions).order_by(functions.c.name)
        if after:
            query = query.where(functions.c.name > after)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_latest(r) for r in conn.execute(query).all()]

    def delete(self, name: str) -> builtins.list[FunctionRecord]:
        """Delete a function with its versions, aliases and provisioned settings.

        Returns every version that was deleted ($LATEST first); raises FunctionNotFound.
        """
        gone = [self.get(name), *self.versions(name)]
        with self.engine.begin() as conn:
            for table in (aliases, versions, provisioned):
                conn.execute(table.delete().where(table.c.function == name))
            conn.execute(functions.delete().where(functions.c.name == name))
            self._bump(conn)
        return gone

    # --- published versions --------------------------------------------------------

    def publish(self, name: str, description: str = "") -> FunctionRecord:
        """Publish $LATEST as the next immutable version; returns it.

        Publishing unchanged code and configuration returns the newest version instead
        of a duplicate, as Lambda does. Raises FunctionNotFound.
        """
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(functions).where(functions.c.name == name).with_for_update()
            ).first()
            if row is None:
                raise FunctionNotFound(name)
            newest = conn.execute(
                sa.select(versions)
                .where(versions.c.function == name)
                .order_by(versions.c.version.desc())
                .limit(1)
            ).first()
            same = newest is not None and (newest.digest, newest.bundle_digest, newest.config) == (
                row.digest,
                row.bundle_digest,
                row.config,
            )
            if same:
                return _version(newest)
            number = row.next_version
            conn.execute(
                versions.insert().values(
                    function=name,
                    version=number,
                    kind=row.kind,
                    digest=row.digest,
                    bundle_digest=row.bundle_digest,
                    config=row.config,
                    description=description,
                    created_at=time.time(),
                )
            )
            conn.execute(
                functions.update().where(functions.c.name == name).values(next_version=number + 1)
            )
            self._bump(conn)
        return self.version(name, str(number))

    def versions(self, name: str) -> builtins.list[FunctionRecord]:
        """Return the published versions of `name`, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(versions).where(versions.c.function == name).order_by(versions.c.version)
            ).all()
        return [_version(r) for r in rows]

    def version(self, name: str, version: str) -> FunctionRecord:
        """Return one version ($LATEST or a number); raises FunctionNotFound."""
        if version == LATEST:
            return self.get(name)
        # ASCII digits that fit the column: `²` or a 25-digit number names no version.
        if not (version.isascii() and version.isdigit()) or len(version) > 18:
            raise FunctionNotFound(f"{name}:{version}")
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(versions).where(
                    versions.c.function == name, versions.c.version == int(version)
                )
            ).first()
        if row is None:
            raise FunctionNotFound(f"{name}:{version}")
        return _version(row)

    def delete_version(self, name: str, version: str) -> FunctionRecord:
        """Delete one published version and its provisioned setting; returns it.

        Raises FunctionNotFound, or Conflict while an alias routes to the version.
        """
        gone = self.version(name, version)
        if version == LATEST:
            raise Conflict("$LATEST cannot be deleted alone: delete the function")
        with self.engine.begin() as conn:
            for row in conn.execute(sa.select(aliases).where(aliases.c.function == name)):
                if row.version == version or version in json.loads(row.routing or "{}"):
                    raise Conflict(
                        f"Unable to delete version because the following aliases reference"
                        f" it: [{row.name}]"
                    )
            conn.execute(
                versions.delete().where(
                    versions.c.function == name, versions.c.version == int(version)
                )
            )
            conn.execute(
                provisioned.delete().where(
                    provisioned.c.function == name, provisioned.c.qualifier == version
                )
            )
            self._bump(conn)
        return gone

    # --- aliases -------------------------------------------------------------------

    def put_alias(
        self,
        function: str,
        name: str,
        version: str,
        routing: dict[str, float] | None = None,
        description: str | None = None,
        *,
        create: bool,
    ) -> AliasRecord:
        """Create (`create=True`, Conflict if it exists) or update an alias; returns it."""
        self.version(function, version)  # the target must exist
        for extra in routing or {}:
            self.version(function, extra)
        now = time.time()
        with self.engine.begin() as conn:
            exists = (
                conn.execute(
                    sa.select(aliases.c.name).where(
                        aliases.c.function == function, aliases.c.name == name
                    )
                ).first()
                is not None
            )
            if create and exists:
                raise Conflict(f"alias {name} of function {function} already exists")
            if not create and not exists:
                raise FunctionNotFound(f"{function}:{name}")
            values: dict[str, Any] = {"version": version, "updated_at": now}
            if routing is not None:
                values["routing"] = _dumps(routing)
            if description is not None:
                values["description"] = description
            if exists:
                conn.execute(
                    aliases.update()
                    .where(aliases.c.function == function, aliases.c.name == name)
                    .values(**values)
                )
            else:
                values.setdefault("routing", "{}")
                values.setdefault("description", "")
                conn.execute(
                    aliases.insert().values(function=function, name=name, created_at=now, **values)
                )
            self._bump(conn)
        alias = self.alias(function, name)
        assert alias is not None
        return alias

    def alias(self, function: str, name: str) -> AliasRecord | None:
        """Return an alias, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(aliases).where(aliases.c.function == function, aliases.c.name == name)
            ).first()
        return _alias(row) if row is not None else None

    def aliases(self, function: str) -> builtins.list[AliasRecord]:
        """Return a function's aliases by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(aliases).where(aliases.c.function == function).order_by(aliases.c.name)
            ).all()
        return [_alias(r) for r in rows]

    def delete_alias(self, function: str, name: str) -> None:
        """Delete an alias; raises FunctionNotFound if there is none."""
        with self.engine.begin() as conn:
            result = conn.execute(
                aliases.delete().where(aliases.c.function == function, aliases.c.name == name)
            )
            if not result.rowcount:
                raise FunctionNotFound(f"{function}:{name}")
            conn.execute(
                provisioned.delete().where(
                    provisioned.c.function == function, provisioned.c.qualifier == name
                )
            )
            self._bump(conn)

    # --- provisioned concurrency -----------------------------------------------------

    def set_provisioned(self, function: str, qualifier: str, count: int) -> None:
        """Keep `count` instances ready for a version or alias (0 removes the setting)."""
        with self.engine.begin() as conn:
            conn.execute(
                provisioned.delete().where(
                    provisioned.c.function == function, provisioned.c.qualifier == qualifier
                )
            )
            if count > 0:
                conn.execute(
                    provisioned.insert().values(function=function, qualifier=qualifier, count=count)
                )
            self._bump(conn)

    def provisioned(self, function: str) -> dict[str, int]:
        """Return the provisioned concurrency per qualifier of a function."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(provisioned).where(provisioned.c.function == function)
            ).all()
        return {str(r.qualifier): int(r[2]) for r in rows}

    def all_provisioned(self) -> dict[str, dict[str, int]]:
        """Return the provisioned concurrency of every function, in one query."""
        out: dict[str, dict[str, int]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(provisioned)).all():
                out.setdefault(str(row[0]), {})[str(row[1])] = int(row[2])
        return out

    # --- artifacts in use -------------------------------------------------------------

    def digests_in_use(self) -> set[str]:
        """Return every artifact digest some version still references."""
        with self.engine.connect() as conn:
            rows = [
                *conn.execute(sa.select(functions.c.digest, functions.c.bundle_digest)).all(),
                *conn.execute(sa.select(versions.c.digest, versions.c.bundle_digest)).all(),
            ]
        return {d for row in rows for d in row if d}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _latest(row: Any) -> FunctionRecord:
    config = json.loads(row.config)
    return FunctionRecord(
        name=row.name,
        kind=row.kind,
        digest=row.digest,
        bundle_digest=row.bundle_digest,
        config=config,
        version=LATEST,
        revision=row.revision,
        created_at=row.created_at,
        updated_at=row.updated_at,
        description=str(config.get("description", "")),
        tags=json.loads(row.tags or "{}"),
    )


def _version(row: Any) -> FunctionRecord:
    return FunctionRecord(
        name=row.function,
        kind=row.kind,
        digest=row.digest,
        bundle_digest=row.bundle_digest,
        config=json.loads(row.config),
        version=str(row.version),
        created_at=row.created_at,
        updated_at=row.created_at,
        description=row.description,
    )


def _alias(row: Any) -> AliasRecord:
    return AliasRecord(
        function=row.function,
        name=row.name,
        version=row.version,
        routing={str(k): float(v) for k, v in json.loads(row.routing or "{}").items()},
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
