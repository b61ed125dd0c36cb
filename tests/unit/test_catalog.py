"""Unit tests of the catalog: weighted alias picking and resolving a name to one version."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from firebox.runtime.catalog import Catalog, function_spec, parse_qualified
from firebox.runtime.errors import FunctionNotFound
from firebox.runtime.manifest import parse_manifest
from firebox.runtime.storage.backends import registry_url
from firebox.runtime.storage.registry import AliasRecord, FunctionRecord, Registry


class CountingRandom(random.Random):
    """A seeded Random that counts its draws (one draw is one alias pick)."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return super().random()


class FixedRandom(random.Random):
    """Answers the given draws in order."""

    def __init__(self, *draws: float) -> None:
        super().__init__(0)
        self.draws = list(draws)

    def random(self) -> float:
        return self.draws.pop(0)


def alias(routing: dict[str, float], version: str = "1") -> AliasRecord:
    return AliasRecord("f", "live", version, routing)


def catalog_with(*draws: float) -> Catalog:
    return Catalog(None, FixedRandom(*draws))  # type: ignore[arg-type]  # pick needs no registry


def test_pick_without_routing_is_the_alias_version() -> None:
    assert catalog_with(0.0, 0.99).pick(alias({})) == "1"


def test_pick_splits_draws_by_weight() -> None:
    catalog = catalog_with(0.0, 0.29, 0.3, 0.99)
    picks = [catalog.pick(alias({"2": 0.3})) for _ in range(4)]
    assert picks == ["2", "2", "1", "1"]


def test_pick_walks_several_weights_in_order() -> None:
    catalog = catalog_with(0.05, 0.15, 0.45, 0.5)
    routing = {"2": 0.1, "3": 0.3}
    assert [catalog.pick(alias(routing)) for _ in range(4)] == ["2", "3", "1", "1"]


def test_pick_full_weight_always_routes() -> None:
    catalog = catalog_with(0.0, 0.5, 0.999999)
    assert {catalog.pick(alias({"2": 1.0})) for _ in range(3)} == {"2"}


def test_pick_frequencies_follow_weights() -> None:
    catalog = Catalog(None, random.Random(42))  # type: ignore[arg-type]
    picks = [catalog.pick(alias({"2": 0.25})) for _ in range(4000)]
    assert 0.22 < picks.count("2") / len(picks) < 0.28


def test_parse_qualified() -> None:
    assert parse_qualified("f") == ("f", "$LATEST")
    assert parse_qualified("f:live") == ("f", "live")
    assert parse_qualified("f", "3") == ("f", "3")
    with pytest.raises(FunctionNotFound):
        parse_qualified("f:live", "3")


def _registry(tmp_path: Path) -> Registry:
    registry = Registry(registry_url(tmp_path, None))
    registry.put_latest(
        "f", "module", "d" * 64, parse_manifest({"name": "f", "timeout": 1}).to_dict(), None
    )
    registry.publish("f")
    registry.update_config("f", parse_manifest({"name": "f", "timeout": 900}).to_dict())
    registry.publish("f")
    registry.put_alias("f", "live", "1", {"2": 0.5}, "", create=True)
    return registry


def test_resolve_draws_once_per_call(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    rng = CountingRandom(7)
    catalog = Catalog(registry, rng)
    catalog.reload()
    seen = {catalog.resolve("f", "live").deployed.version for _ in range(40)}
    assert rng.draws == 40
    assert seen == {"1", "2"}
    # A plain version or $LATEST never draws.
    catalog.resolve("f", "2")
    catalog.resolve("f")
    assert rng.draws == 40
    registry.close()


def test_resolve_with_a_recorded_version_does_not_pick(tmp_path: Path) -> None:
    registry = _registry(tmp_path)
    rng = CountingRandom(7)
    catalog = Catalog(registry, rng)
    catalog.reload()
    resolved = catalog.resolve("f", "live", "2")
    assert rng.draws == 0
    assert (resolved.qualifier, resolved.deployed.version) == ("live", "2")
    assert resolved.deployed.timeout_s == 900
    assert catalog.resolve("f", "live", "1").deployed.timeout_s == 1
    registry.close()


def test_function_spec_round_trips_its_wire_form() -> None:
    config = parse_manifest({"name": "f", "timeout": 3, "memory": 64, "environment": {"A": "1"}})
    record = FunctionRecord("f", "module", "d" * 64, None, config.to_dict())
    spec = function_spec(record, provisioned=2)
    assert spec.limits.timeout_s == 3 and spec.limits.memory_mb == 64
    assert spec.provisioned == 2 and spec.environment == {"A": "1"}
    assert type(spec).from_wire(spec.to_wire()) == spec
    assert spec.key.startswith("f:$LATEST@")
    assert function_spec(record, provisioned=3).key != spec.key
