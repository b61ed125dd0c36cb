"""The shard-lease balancing plan (pure): take free leases up to the fair share, ask the
busiest node for one when none is free, never trade leases between balanced nodes."""

from __future__ import annotations

from firebox.runtime.events.shard_leases import Lease, plan


def table(*owners: str, dead: tuple[int, ...] = ()) -> list[Lease]:
    return [
        Lease(f"s{i}", o, 1 if o else 0, bool(o) and i not in dead) for i, o in enumerate(owners)
    ]


def test_a_lone_node_takes_every_free_shard() -> None:
    decision = plan(table("", "", "", ""), "a")
    assert [s for s, _ in decision.take] == ["s0", "s1", "s2", "s3"]
    assert decision.ask is None


def test_a_joining_node_asks_the_busiest_for_one_shard() -> None:
    decision = plan(table("a", "a", "a", "a"), "b")
    assert decision.take == [] and decision.target == 2
    assert decision.ask == ("s3", 1)


def test_balanced_nodes_do_nothing() -> None:
    for me in ("a", "b"):
        decision = plan(table("a", "a", "b"), me)
        assert decision.take == [] and decision.ask is None


def test_expired_leases_are_taken_before_asking() -> None:
    decision = plan(table("a", "a", "b", "b", dead=(0, 1)), "b")
    assert [s for s, _ in decision.take] == ["s0", "s1"]  # a is gone: b's share is all four
    assert decision.ask is None


def test_a_lease_asked_for_by_another_node_is_not_asked_for_again() -> None:
    leases = table("a", "a", "a", "a")
    leases[3] = Lease("s3", "a", 1, True, wanted_by="c")
    assert plan(leases, "b").ask == ("s2", 1)
