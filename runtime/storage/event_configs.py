"""Per-function event-invoke configuration in the registry (storage layer)."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from firebox.runtime.storage.schema import event_configs


class EventConfigStore:
    """Event-invoke configs by (function, qualifier), on the registry's database."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def put(self, function: str, qualifier: str, config: dict[str, Any]) -> None:
        """Create or replace the config of a function (and qualifier)."""
        with self.engine.begin() as conn:
            conn.execute(
                event_configs.delete().where(
                    event_configs.c.function == function, event_configs.c.qualifier == qualifier
                )
            )
            conn.execute(
                event_configs.insert().values(
                    function=function,
                    qualifier=qualifier,
                    config=json.dumps(config, sort_keys=True),
                    updated_at=time.time(),
                )
            )

    def get(self, function: str, qualifier: str) -> dict[str, Any] | None:
        """Return the config of exactly this function and qualifier, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(event_configs.c.config).where(
                    event_configs.c.function == function, event_configs.c.qualifier == qualifier
                )
            ).first()
        return json.loads(row.config) if row is not None else None

    def delete(self, function: str, qualifier: str | None = None) -> None:
        """Delete a function's config (every qualifier's when `qualifier` is None)."""
        query = event_configs.delete().where(event_configs.c.function == function)
        if qualifier is not None:
            query = query.where(event_configs.c.qualifier == qualifier)
        with self.engine.begin() as conn:
            conn.execute(query)
