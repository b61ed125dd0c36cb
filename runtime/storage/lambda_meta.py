"""What the Lambda-compatible API keeps beside a function: resource-policy statements,
function URL configs, layer versions, when provisioned configs changed (storage layer).

One table of its own, `lambda_resources`, on the registry's database (so nodes sharing a
registry share it), created on first open; rows are JSON documents keyed by
(kind, function, qualifier, key). Deleting a function deletes its rows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

#: The kinds of rows (one per concept of the Lambda API).
POLICY = "policy"  # key: statement id
URL = "url"  # key: the URL's id
PROVISIONED = "provisioned"  # key: "" (the doc holds when it was last put)
EVENT_CONFIG = "event-config"  # key: "" (the doc holds when it was last put)
LAYER = "layer"  # function: the layer's name; qualifier: its version number ("" the counter)
LAYER_POLICY = "layer-policy"  # function: the layer's name; qualifier: version; key: sid
#: The kinds that belong to a function (deleted with it); layers have their own names.
FUNCTION_KINDS = (POLICY, URL, PROVISIONED, EVENT_CONFIG)

metadata = sa.MetaData()
lambda_resources = sa.Table(
    "lambda_resources",
    metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("function", sa.String(140), primary_key=True),
    sa.Column("qualifier", sa.String(128), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # A function URL is looked up by its id alone on every request to it.
    sa.Index("lambda_resources_by_key", "kind", "key"),
)


@dataclass(frozen=True)
class Resource:
    """One stored row: its identity, its JSON document and when it was written."""

    kind: str
    function: str
    qualifier: str
    key: str
    document: dict[str, Any]
    created_at: float
    updated_at: float


def _resource(row: Any) -> Resource:
    return Resource(row.kind, row.function, row.qualifier, row.key, json.loads(row.document),
                    row.created_at, row.updated_at)  # fmt: skip


class LambdaMetaStore:
    """The Lambda API's per-function documents, on the registry's database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        try:
            metadata.create_all(engine, checkfirst=True)
        except sa.exc.DBAPIError:
            # Another node sharing the registry created it at the same moment.
            if not sa.inspect(engine).has_table(lambda_resources.name):
                raise

    def _where(
        self, kind: str, function: str | None, qualifier: str | None, key: str | None
    ) -> Any:
        table = lambda_resources
        clause = table.c.kind == kind
        for column, value in ((table.c.function, function), (table.c.qualifier, qualifier),
                              (table.c.key, key)):  # fmt: skip
            if value is not None:
                clause = sa.and_(clause, column == value)
        return clause

    def put(
        self, kind: str, function: str, qualifier: str, key: str, document: dict[str, Any],
        *, create: bool = False,
    ) -> Resource | None:  # fmt: skip
        """Write a document; with `create`, only if none exists (returns None if one did)."""
        now = time.time()
        where = self._where(kind, function, qualifier, key)
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(lambda_resources).where(where)).first()
            if row is not None and create:
                return None
            created = row.created_at if row is not None else now
            conn.execute(lambda_resources.delete().where(where))
            conn.execute(
                lambda_resources.insert().values(
                    kind=kind, function=function, qualifier=qualifier, key=key,
                    document=json.dumps(document, sort_keys=True),
                    created_at=created, updated_at=now,
                )
            )  # fmt: skip
        return Resource(kind, function, qualifier, key, document, created, now)

    def get(self, kind: str, function: str, qualifier: str, key: str) -> Resource | None:
        """Return one document, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(lambda_resources).where(self._where(kind, function, qualifier, key))
            ).first()
        return _resource(row) if row is not None else None

    def list(
        self, kind: str, function: str | None = None, qualifier: str | None = None,
        key: str | None = None,
    ) -> list[Resource]:  # fmt: skip
        """Return the documents of a kind (of a function, qualifier, key), oldest first."""
        query = (
            sa.select(lambda_resources)
            .where(self._where(kind, function, qualifier, key))
            .order_by(lambda_resources.c.created_at, lambda_resources.c.key)
        )
        with self.engine.connect() as conn:
            return [_resource(r) for r in conn.execute(query)]

    def delete(
        self, kind: str, function: str, qualifier: str | None = None, key: str | None = None
    ) -> int:
        """Delete documents; returns how many went."""
        with self.engine.begin() as conn:
            done = conn.execute(
                lambda_resources.delete().where(self._where(kind, function, qualifier, key))
            )
        return int(done.rowcount or 0)

    def delete_function(self, function: str, qualifier: str | None = None) -> None:
        """Delete every document of a function (of one of its versions), layers aside."""
        clause = sa.and_(
            lambda_resources.c.function == function, lambda_resources.c.kind.in_(FUNCTION_KINDS)
        )
        if qualifier is not None:
            clause = sa.and_(clause, lambda_resources.c.qualifier == qualifier)
        with self.engine.begin() as conn:
            conn.execute(lambda_resources.delete().where(clause))
