"""The native API for schedules under /v1/schedules (front-end layer).

A schedule is {name, function, qualifier, expression, payload, catch_up, enabled}; reads
add `created_at` (epoch seconds), `last_fired` (the last fired tick) and `next_fire`
(ISO 8601 UTC, or null when disabled or never again).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from firebox.runtime.errors import BadRequest, ServiceUnavailable
from firebox.runtime.events.scheduler import Scheduler, iso, schedule_of
from firebox.runtime.http.native import node_of, read_object, reply
from firebox.runtime.storage.registry import LATEST
from firebox.runtime.storage.schedules import CATCH_UP_RULES, UPDATABLE, ScheduleRecord
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

# EventBridge's rule names.
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def scheduler_of(request: Request) -> Scheduler:
    """Return the node's scheduler; raises ServiceUnavailable if the node runs none."""
    scheduler = getattr(node_of(request), "scheduler", None)
    if not isinstance(scheduler, Scheduler):
        raise ServiceUnavailable("this node runs no scheduler")
    return scheduler


def describe_schedule(scheduler: Scheduler, record: ScheduleRecord) -> dict[str, Any]:
    """Return the public description of a schedule, with its next and last fire times."""
    next_fire = scheduler.next_fire(record)
    last = record.last_fired
    return {
        "name": record.name,
        "function": record.function,
        "qualifier": record.qualifier,
        "expression": record.expression,
        "payload": record.payload,
        "catch_up": record.catch_up,
        "enabled": record.enabled,
        "created_at": record.created_at,
        "last_fired": iso(datetime.fromtimestamp(last, UTC)) if last is not None else None,
        "next_fire": iso(next_fire) if next_fire is not None else None,
    }


def _fields(data: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """Validate the fields of a create or update body; raises BadRequest naming the field."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)} (known: {', '.join(allowed)})")
    for key in ("name", "function", "qualifier", "expression"):
        if key in data and (not isinstance(data[key], str) or not data[key]):
            raise BadRequest(f"`{key}` must be a non-empty string")
    if ":" in data.get("function", ""):
        raise BadRequest("`function` is a bare name; put a version or alias in `qualifier`")
    if "name" in data and not NAME_RE.match(data["name"]):
        raise BadRequest("`name` must be 1-64 letters, digits, '.', '-' or '_'")
    if "catch_up" in data and data["catch_up"] not in CATCH_UP_RULES:
        raise BadRequest(f"`catch_up` must be one of {', '.join(CATCH_UP_RULES)}")
    if "enabled" in data and not isinstance(data["enabled"], bool):
        raise BadRequest("`enabled` must be true or false")
    return data


async def create_schedule(request: Request) -> Response:
    """POST /v1/schedules: {name, function, qualifier?, expression, payload?, catch_up?, enabled?}.

    400 for a bad expression or field, 404 if the function is missing, 409 if the name exists.
    """
    scheduler = scheduler_of(request)
    data = _fields(await read_object(request), ("name", *UPDATABLE))
    for key in ("name", "function", "expression"):
        if key not in data:
            raise BadRequest(f"`{key}` is required")
    record = ScheduleRecord(
        name=data["name"],
        function=data["function"],
        expression=data["expression"].strip(),
        qualifier=data.get("qualifier", LATEST),
        payload=data.get("payload"),
        catch_up=data.get("catch_up", "skip"),
        enabled=data.get("enabled", True),
    )
    schedule_of(record)  # BadRequest naming the bad field
    node_of(request).resolve(record.function, record.qualifier)  # FunctionNotFound
    stored = await asyncio.to_thread(scheduler.store.create, record)
    scheduler.notify()
    return reply(request, describe_schedule(scheduler, stored), status=201)


async def list_schedules(request: Request) -> Response:
    """GET /v1/schedules: every schedule, by name."""
    scheduler = scheduler_of(request)
    records = await asyncio.to_thread(scheduler.store.list)
    return reply(request, {"schedules": [describe_schedule(scheduler, r) for r in records]})


async def get_schedule(request: Request) -> Response:
    """GET /v1/schedules/{name}; 404 if missing."""
    scheduler = scheduler_of(request)
    record = await asyncio.to_thread(scheduler.store.get, request.path_params["name"])
    return reply(request, describe_schedule(scheduler, record))


async def update_schedule(request: Request) -> Response:
    """PATCH /v1/schedules/{name}: any of {function, qualifier, expression, payload, catch_up,
    enabled}; `payload: null` restores the scheduled-event payload. 400, 404 as for create."""
    scheduler = scheduler_of(request)
    name = request.path_params["name"]
    changes = _fields(await read_object(request), UPDATABLE)
    if "expression" in changes:
        changes["expression"] = changes["expression"].strip()
    current = await asyncio.to_thread(scheduler.store.get, name)
    candidate = replace(current, **changes)
    schedule_of(candidate)
    if "function" in changes or "qualifier" in changes:
        node_of(request).resolve(candidate.function, candidate.qualifier)
    record = await asyncio.to_thread(scheduler.store.update, name, changes)
    scheduler.notify()
    return reply(request, describe_schedule(scheduler, record))


async def delete_schedule(request: Request) -> Response:
    """DELETE /v1/schedules/{name}; 404 if missing."""
    scheduler = scheduler_of(request)
    await asyncio.to_thread(scheduler.store.delete, request.path_params["name"])
    scheduler.notify()
    return Response(status_code=204)


def routes() -> list[Route]:
    """Return the schedule routes."""
    one = "/v1/schedules/{name}"
    return [
        Route("/v1/schedules", create_schedule, methods=["POST"]),
        Route("/v1/schedules", list_schedules, methods=["GET"]),
        Route(one, get_schedule, methods=["GET"]),
        Route(one, update_schedule, methods=["PATCH"]),
        Route(one, delete_schedule, methods=["DELETE"]),
    ]
