"""Manifest validation: defaults, clear errors for every bad value."""

from __future__ import annotations

from typing import Any

import pytest
from firebox.runtime.errors import InvalidManifest
from firebox.runtime.manifest import parse_manifest, parse_toml
from firebox.runtime.routing import compile_route


def test_defaults_are_lambdas() -> None:
    config = parse_manifest({"name": "f"})
    assert config.limits.memory_mb == 128
    assert config.limits.timeout_s == 3.0
    assert config.isolation == "fresh"
    assert config.kind == "module"


def test_round_trip_through_stored_form() -> None:
    text = """
name = "api"
memory = 64
timeout = 2.5
fuel = 5000
[environment]
GREETING = "hi"
[[triggers]]
route = "/users/{id}"
methods = ["GET", "delete"]
export = "users"
"""
    config = parse_manifest(parse_toml(text))
    assert config.triggers[0].methods == ("GET", "DELETE")
    assert parse_manifest(config.to_dict()) == config


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"name": "f", "memroy": 1}, "unknown manifest key"),
        ({"name": "bad name"}, "`name` must be"),
        ({"name": "f", "memory": -5}, "memory must be between"),
        ({"name": "f", "memory": "64"}, "`memory` must be of type int"),
        ({"name": "f", "timeout": 10_000}, "timeout must be between"),
        ({"name": "f", "timeout": True}, "must be a number"),
        ({"name": "f", "fuel": 0}, "fuel must be a positive"),
        ({"name": "f", "environment": {"1BAD": "x"}}, "environment variable"),
        ({"name": "f", "provisioned": 5, "concurrency": 2}, "cannot exceed"),
        ({"name": "f", "isolation": "shared"}, "isolation"),
        ({"name": "f", "triggers": [{"route": "nope"}]}, "must be a path"),
        ({"name": "f", "triggers": [{"route": "/v1/x"}]}, "reserved"),
        ({"name": "f", "triggers": [{"route": "/x", "methods": ["FETCH"]}]}, "unsupported method"),
        ({"name": "f", "triggers": [{"route": "/x", "type": "queue"}]}, "not supported yet"),
        ({"name": "f", "runtime": "cobol"}, "`runtime` must be one of"),
    ],
)
def test_bad_manifests_are_refused_with_a_clear_message(
    manifest: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidManifest, match=message):
        parse_manifest(manifest)


def test_invalid_toml_names_the_position() -> None:
    with pytest.raises(InvalidManifest, match="line 2"):
        parse_toml('name = "x"\nmemory = = 3\n')


@pytest.mark.parametrize(
    ("route", "path", "matches"),
    [
        ("/echo", "/echo", True),
        ("/echo", "/echo/", True),
        ("/echo", "/echoes", False),
        ("/users/{id}", "/users/42", True),
        ("/users/{id}", "/users/42/x", False),
        ("/api/*", "/api", True),
        ("/api/*", "/api/a/b", True),
        ("/api/*", "/apix", False),
        ("/", "/", True),
    ],
)
def test_routes(route: str, path: str, matches: bool) -> None:
    assert bool(compile_route(route).match(path)) is matches


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"fuel": 2**64}, "fuel"),
        ({"memory": 2**64}, "memory"),
        ({"timeout": 10**400}, "timeout"),
        ({"max_request_bytes": 2**64}, "max_request_bytes"),
        ({"max_response_bytes": 2**64}, "max_response_bytes"),
        ({"max_log_bytes": 2**40}, "max_log_bytes"),
        ({"concurrency": 2**64}, "concurrency"),
        ({"environment": {"BIG": "x" * 5000}}, "4096 bytes"),
        ({"environment": {f"V{i}": "y" * 100 for i in range(40)}}, "4096 bytes"),
    ],
)
def test_huge_values_are_refused_naming_the_limit(extra: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidManifest, match=named):
        parse_manifest({"name": "f", **extra})


def test_the_limits_themselves_are_accepted() -> None:
    config = parse_manifest(
        {"name": "f", "concurrency": 10_000, "environment": {"A": "x" * 4000},
         "max_request_bytes": 32 * 1024 * 1024}
    )  # fmt: skip
    assert config.concurrency == 10_000


def test_dated_routes_are_reserved() -> None:
    for route in ("/2021-10-31/functions", "/2026-07-09", "/2018-10-31/layers/{x}"):
        with pytest.raises(InvalidManifest, match="reserved"):
            parse_manifest({"name": "f", "triggers": [{"route": route}]})
