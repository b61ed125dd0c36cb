"""`firebox.kv`: the key-value tables a function was granted (guest side).

    import firebox
    orders = firebox.kv.table("orders")
    orders.put("o-1", {"total": 12}, ttl=3600)
    orders.get("o-1")                      # {"total": 12}, or None
    for item in orders.items(prefix="o-"):  # every page, in key order
        ...

Values are JSON (dicts, lists, strings, numbers, booleans, None). Each item has a
version (1 on its first put) for optimistic writes: `put(..., if_version=item.version)`
or `put(..., if_absent=True)` raise `firebox.ConditionFailed` when someone wrote first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from firebox_guest_capability import call


class Item(NamedTuple):
    """One item: its key, value, version and expiry (seconds since the epoch, or None)."""

    key: str
    value: Any
    version: int
    expires_at: float | None


class Page(NamedTuple):
    """Items in key order and the cursor of the next page (None at the end)."""

    items: list[Item]
    cursor: str | None


def _item(data: Any) -> Item | None:
    if data is None:
        return None
    return Item(data["key"], data["value"], int(data["version"]), data.get("expires_at"))


class Table:
    """A granted key-value table (reads need `read`, writes `write`; `readwrite` both)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def get(self, key: str, default: Any = None) -> Any:
        """Return the value at `key`, or `default` when there is none (or it expired)."""
        item = self.get_item(key)
        return default if item is None else item.value

    def get_item(self, key: str) -> Item | None:
        """Return the item at `key` with its version, or None."""
        return _item(call("kv.get", table=self.name, key=key)["item"])

    def put(
        self,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        if_absent: bool = False,
        if_version: int | None = None,
    ) -> Item:
        """Store `value` at `key` (expiring after `ttl` seconds if given) and return the
        new item; raises ConditionFailed when `if_absent`/`if_version` does not hold."""
        reply = call(
            "kv.put", table=self.name, key=key, value=value, ttl=ttl,
            if_absent=if_absent, if_version=if_version,
        )  # fmt: skip
        item = _item(reply["item"])
        assert item is not None
        return item

    def delete(self, key: str, *, if_version: int | None = None) -> bool:
        """Remove `key`; return True if it was there."""
        return bool(call("kv.delete", table=self.name, key=key, if_version=if_version)["deleted"])

    def query(
        self, prefix: str = "", *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        """Return one page of items whose key starts with `prefix` (at most `limit`, 100
        by default, 1000 at most), resuming after `cursor`."""
        reply = call("kv.query", table=self.name, prefix=prefix, limit=limit, cursor=cursor)
        items = [item for item in map(_item, reply["items"]) if item is not None]
        return Page(items, reply.get("cursor"))

    def scan(self, *, limit: int | None = None, cursor: str | None = None) -> Page:
        """Return one page of the whole table in key order (a query with no prefix)."""
        return self.query("", limit=limit, cursor=cursor)

    def items(self, prefix: str = "", *, page_size: int | None = None) -> Iterator[Item]:
        """Yield every item whose key starts with `prefix`, reading page after page."""
        cursor: str | None = None
        while True:
            page = self.query(prefix, limit=page_size, cursor=cursor)
            yield from page.items
            if page.cursor is None:
                return
            cursor = page.cursor


def table(name: str) -> Table:
    """Return the granted table `name` (nothing is checked until the first call)."""
    return Table(name)
