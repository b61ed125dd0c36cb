"""Lambda SnapStart's Python runtime hooks, as firebox's interpreter runs them (guest side).

The same API as the `snapshot-restore-py` package on PyPI, so code written for SnapStart
works unchanged: `register_before_snapshot(func, *args, **kwargs)` and
`register_after_restore(func, *args, **kwargs)` (both usable as decorators). The
interpreter pre-imports this module, so it wins over a copy vendored in a bundle and the
hooks registered at import reach firebox: before-snapshot hooks run once, when a function
version's snapshot is taken at deploy; after-restore hooks run in every instance made
from the snapshot, before its first invocation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["register_after_restore", "register_before_snapshot"]

Hook = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_before_snapshot_registry: list[Hook] = []
_after_restore_registry: list[Hook] = []


def register_before_snapshot(
    func: Callable[..., Any], *args: Any, **kwargs: Any
) -> Callable[..., Any]:
    """Register `func(*args, **kwargs)` to run before the snapshot is taken; return `func`."""
    _before_snapshot_registry.append((func, args, kwargs))
    return func


def register_after_restore(
    func: Callable[..., Any], *args: Any, **kwargs: Any
) -> Callable[..., Any]:
    """Register `func(*args, **kwargs)` to run after an instance is restored; return `func`."""
    _after_restore_registry.append((func, args, kwargs))
    return func


def get_before_snapshot() -> list[Hook]:
    """Return the registered before-snapshot hooks as (func, args, kwargs), in order."""
    return _before_snapshot_registry


def get_after_restore() -> list[Hook]:
    """Return the registered after-restore hooks as (func, args, kwargs), in order."""
    return _after_restore_registry
