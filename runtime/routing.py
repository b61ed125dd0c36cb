"""HTTP-trigger routing: compiled routes of every function's $LATEST and how a path finds
its function (service layer)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from firebox.runtime.errors import Conflict
from firebox.runtime.manifest import FunctionConfig, HttpTrigger, parse_manifest
from firebox.runtime.specs import Deployed


@dataclass(frozen=True)
class Route:
    """A compiled HTTP trigger route of a deployed function."""

    pattern: re.Pattern[str]
    trigger: HttpTrigger
    function: str


def compile_route(route: str) -> re.Pattern[str]:
    """Turn `/users/{id}/*` into a regex: `{x}` matches one segment, a final `*` the rest."""
    parts = []
    for segment in route.strip("/").split("/") if route != "/" else []:
        if segment == "*":
            parts.append("(?:/.*)?")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append("/[^/]+")
        else:
            parts.append("/" + re.escape(segment))
    body = "".join(parts)
    if body.endswith("(?:/.*)?"):
        return re.compile("^" + body + "$")
    return re.compile("^" + (body or "/") + "/?$")


class RouteTable:
    """The trigger routes this node serves, longest literal route first."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def rebuild(self, latest: Iterable[Deployed]) -> None:
        """Recompile the table from every function's $LATEST configuration."""
        routes = []
        for deployed in latest:
            config = parse_manifest(deployed.config)
            for trigger in config.triggers:
                routes.append(Route(compile_route(trigger.route), trigger, deployed.name))
        # Longest literal route first, so /api/users wins over /api/*.
        routes.sort(key=lambda r: -len(r.trigger.route.replace("*", "")))
        self.routes = routes

    def check(self, config: FunctionConfig) -> None:
        """Refuse a configuration whose trigger routes another function already serves.

        Raises Conflict naming the route and the function that has it.
        """
        for trigger in config.triggers:
            for route in self.routes:
                if route.function == config.name:
                    continue
                if route.trigger.route == trigger.route and set(route.trigger.methods) & set(
                    trigger.methods
                ):
                    raise Conflict(
                        f"route {trigger.route} is already served by function {route.function}"
                    )

    def match(self, path: str) -> list[Route]:
        """Return the trigger routes whose pattern matches `path` (any method)."""
        return [r for r in self.routes if r.pattern.match(path)]


__all__ = ["Route", "RouteTable", "compile_route"]
