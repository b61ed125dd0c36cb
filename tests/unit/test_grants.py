"""Capability grants: the manifest's `[capabilities]`, host rules and the refusals."""

from __future__ import annotations

import pytest
from firebox.runtime.errors import CapabilityDenied, InvalidManifest
from firebox.runtime.grants import Grants, parse_grants, parse_rule
from firebox.runtime.host.http import address_allowed
from firebox.runtime.manifest import parse_manifest
from firebox.runtime.specs import FunctionSpec


def test_nothing_is_granted_by_default() -> None:
    grants = parse_manifest({"name": "f"}).capabilities
    assert not grants
    with pytest.raises(CapabilityDenied, match=r"http capability for https://example\.com"):
        grants.http_rule("https", "example.com", 443)
    with pytest.raises(CapabilityDenied, match=r"table capability for t \(read\)"):
        grants.table("t", write=False)


def test_host_rules_match_scheme_host_and_port() -> None:
    grants = parse_grants(
        {"http": ["api.example.com", "http://127.0.0.1:8080", "https://*.example.org:*"]}
    )
    assert grants.http_rule("https", "api.example.com", 443).exact
    assert grants.http_rule("http", "127.0.0.1", 8080).exact
    assert not grants.http_rule("https", "a.b.example.org", 9443).exact
    for scheme, host, port in [
        ("http", "api.example.com", 80),  # the default scheme is https only
        ("https", "api.example.com", 8443),
        ("http", "127.0.0.1", 8081),
        ("https", "example.org", 443),  # a wildcard needs a label before the suffix
        ("https", "evilexample.org", 443),
    ]:
        with pytest.raises(CapabilityDenied, match=r"\[capabilities\]"):
            grants.http_rule(scheme, host, port)


@pytest.mark.parametrize(
    "bad", ["ftp://x.com", "https://x.com/path", "https://x.com:99999", "", "a b", 7]
)
def test_bad_rules_are_manifest_errors(bad: object) -> None:
    with pytest.raises(InvalidManifest, match=r"capabilities\.http"):
        parse_rule(bad)


def test_modes_lists_and_unknown_keys() -> None:
    grants = parse_grants(
        {"tables": {"a": "read", "b": "write"}, "buckets": ["m"], "queues": ["q"], "secrets": ["S"]}
    )
    grants.table("a", write=False)
    grants.table("b", write=True)
    grants.bucket("m", write=True)
    grants.queue("q")
    grants.secret("S")
    with pytest.raises(CapabilityDenied, match=r"a \(write\)"):
        grants.table("a", write=True)
    with pytest.raises(CapabilityDenied, match=r"b \(read\)"):
        grants.table("b", write=False)
    with pytest.raises(InvalidManifest, match="unknown capabilities"):
        parse_grants({"sockets": []})
    with pytest.raises(InvalidManifest, match="'read', 'write' or 'readwrite'"):
        parse_grants({"tables": {"a": "all"}})


def test_grants_travel_with_the_manifest_and_the_spec() -> None:
    data = {"tables": {"t": "readwrite"}, "http": ["https://*.example.com"], "queues": ["q"]}
    config = parse_manifest({"name": "f", "capabilities": data})
    assert parse_manifest(config.to_dict()).capabilities == config.capabilities
    spec = FunctionSpec(
        name="f", version="1", kind="python", digest="d", handler="app.handler",
        export="handle", limits=config.limits, grants=config.capabilities,
    )  # fmt: skip
    again = FunctionSpec.from_wire(spec.to_wire())
    assert again.grants == config.capabilities
    assert FunctionSpec.from_wire({**spec.to_wire(), "grants": None}).grants == Grants()


def test_private_addresses_need_a_rule_naming_the_host() -> None:
    exact = parse_rule("http://internal.example:80")
    wildcard = parse_rule("http://*.example:80")
    for address in ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fd00::1"]:
        assert address_allowed(address, exact)
        assert not address_allowed(address, wildcard)
    assert not address_allowed("::ffff:127.0.0.1", wildcard)
    assert address_allowed("93.184.216.34", wildcard)
