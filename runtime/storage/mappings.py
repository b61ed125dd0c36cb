"""Event source mappings in the registry: which queue or stream feeds which function (storage layer).

SQLAlchemy Core on the registry's engine, so one code path serves SQLite and PostgreSQL.
The store keeps what the user asked for (the source, the configuration, `enabled`) and
the state the manager last recorded; the manager, its pollers and their counters live
in `firebox.runtime.events` (`mappings`, `queue_poller`, `stream_poller`, `poller`).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from firebox.runtime.errors import MappingNotFound
from firebox.runtime.storage.schema import mappings

# Lambda's states for a mapping at rest.
ENABLED = "Enabled"
DISABLED = "Disabled"


@dataclass(frozen=True)
class MappingRecord:
    """One stored mapping; `config` is the validated configuration with its defaults."""

    id: str
    function: str
    qualifier: str
    source_kind: str
    source: str
    config: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    state: str = ENABLED
    state_reason: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0


def _record(row: sa.Row[Any]) -> MappingRecord:
    return MappingRecord(
        id=row.id,
        function=row.function,
        qualifier=row.qualifier,
        source_kind=row.source_kind,
        source=row.source,
        config=json.loads(row.config),
        enabled=bool(row.enabled),
        state=row.state,
        state_reason=row.state_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class MappingStore:
    """Event source mappings by id, on the registry's database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def create(
        self,
        function: str,
        qualifier: str,
        source_kind: str,
        source: str,
        config: dict[str, Any],
        *,
        enabled: bool = True,
    ) -> MappingRecord:
        """Store a new mapping under a fresh UUID and return it."""
        now = time.time()
        record = MappingRecord(
            id=str(uuid.uuid4()),
            function=function,
            qualifier=qualifier,
            source_kind=source_kind,
            source=source,
            config=config,
            enabled=enabled,
            state=ENABLED if enabled else DISABLED,
            state_reason="USER_INITIATED",
            created_at=now,
            updated_at=now,
        )
        with self.engine.begin() as conn:
            conn.execute(
                mappings.insert().values(
                    id=record.id,
                    function=function,
                    qualifier=qualifier,
                    source_kind=source_kind,
                    source=source,
                    config=json.dumps(config, sort_keys=True),
                    enabled=enabled,
                    state=record.state,
                    state_reason=record.state_reason,
                    created_at=now,
                    updated_at=now,
                )
            )
        return record

    def get(self, mapping_id: str) -> MappingRecord:
        """Return a mapping; raises MappingNotFound."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(mappings).where(mappings.c.id == mapping_id)).first()
        if row is None:
            raise MappingNotFound(mapping_id)
        return _record(row)

    def list(self, function: str | None = None) -> list[MappingRecord]:
        """Return every mapping (only `function`'s when given), oldest first."""
        query = sa.select(mappings).order_by(mappings.c.created_at, mappings.c.id)
        if function is not None:
            query = query.where(mappings.c.function == function)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query).all()]

    def update(
        self,
        mapping_id: str,
        *,
        function: str | None = None,
        qualifier: str | None = None,
        config: dict[str, Any] | None = None,
        enabled: bool | None = None,
        state: str | None = None,
        state_reason: str | None = None,
    ) -> MappingRecord:
        """Change the given fields (None leaves one as it is) and return the mapping.

        Raises MappingNotFound.
        """
        values: dict[str, Any] = {"updated_at": time.time()}
        if function is not None:
            values["function"] = function
        if qualifier is not None:
            values["qualifier"] = qualifier
        if config is not None:
            values["config"] = json.dumps(config, sort_keys=True)
        if enabled is not None:
            values["enabled"] = enabled
        if state is not None:
            values["state"] = state
        if state_reason is not None:
            values["state_reason"] = state_reason
        with self.engine.begin() as conn:
            done = conn.execute(mappings.update().where(mappings.c.id == mapping_id).values(values))
        if done.rowcount == 0:
            raise MappingNotFound(mapping_id)
        return self.get(mapping_id)

    def delete(self, mapping_id: str) -> None:
        """Delete a mapping; raises MappingNotFound."""
        with self.engine.begin() as conn:
            done = conn.execute(mappings.delete().where(mappings.c.id == mapping_id))
        if done.rowcount == 0:
            raise MappingNotFound(mapping_id)
