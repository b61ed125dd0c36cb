"""Weighted aliases over a real server: an Event invocation runs the version picked when it
was accepted (stored in its queue record), under that version's timeout and memory, and
its message stays invisible for that version's timeout (no redelivery while it runs)."""

from __future__ import annotations

import base64
import re
import sqlite3
import time
from collections.abc import Iterator

import msgpack
import pytest
from firebox.runtime.events.async_invoke import ASYNC_QUEUE, VISIBILITY_MARGIN_S
from firebox.runtime.storage.backends import EVENTS_DB

from tests.conftest import Server, guest_wasm

pytestmark = pytest.mark.slow

# v1 (echo) answers at once under a 1 s timeout; v2 (nap) sleeps 3 s in a host call
# under 120 s: run under v1's limits, v2 would time out.
VERSIONS = {"1": {"timeout": 1, "memory": 64}, "2": {"timeout": 120, "memory": 128}}
GUESTS = {"1": "echo", "2": "nap"}
EVENTS = 12
WAIT_S = 60.0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("alias") / "data")
    server.data_dir.mkdir(parents=True)
    server.start()
    with server.http() as http:
        for version, settings in VERSIONS.items():
            manifest = {"name": "split", **settings}
            code = base64.b64encode(guest_wasm(GUESTS[version])).decode()
            response = http.post("/v1/functions", json={"manifest": manifest, "code_base64": code})
            assert response.status_code == 201, response.text
            response = http.post("/v1/functions/split/versions", json={})
            assert response.status_code == 201, response.text
            assert response.json()["version"] == version
        response = http.post(
            "/v1/functions/split/aliases",
            json={"name": "live", "version": "1", "routing": {"2": 0.5}},
        )
        assert response.status_code == 201, response.text
    yield server
    server.stop()


def test_event_runs_the_recorded_version_with_its_limits(node: Server) -> None:
    with node.http() as http:
        request_ids = []
        for i in range(EVENTS):
            response = http.post(
                "/v1/functions/split/invoke?qualifier=live",
                json={"i": i},
                headers={"X-Firebox-Invocation-Type": "Event"},
            )
            assert response.status_code == 202, response.text
            request_ids.append(response.json()["request_id"])

    # Watch the internal queue: each record names its version; a running event's message
    # stays invisible for its version's timeout plus the margin.
    recorded: dict[str, str] = {}
    invisible_for: dict[str, float] = {}
    db = sqlite3.connect(f"file:{node.data_dir / EVENTS_DB}?mode=ro", uri=True, timeout=10)
    deadline = time.monotonic() + WAIT_S
    logs: dict[str, str] = {}
    with node.http() as http:
        while len(logs) < EVENTS:
            assert time.monotonic() < deadline, f"only {len(logs)} of {EVENTS} events ran"
            rows = db.execute(
                "SELECT body, visible_at FROM queue_messages WHERE queue = ?", (ASYNC_QUEUE,)
            ).fetchall()
            now = time.time()
            for body, visible_at in rows:
                event = msgpack.unpackb(body, raw=False)
                rid = event["request_id"]
                recorded[rid] = event["version"]
                invisible_for[rid] = max(invisible_for.get(rid, 0.0), visible_at - now)
            for rid in request_ids:
                if rid not in logs:
                    found = http.get("/v1/functions/split/logs", params={"request_id": rid})
                    entries = found.json()["logs"]
                    if entries:
                        assert len(entries) == 1, "an event ran more than once"
                        logs[rid] = entries[0]["text"]
            time.sleep(0.1)
    db.close()

    ran: dict[str, str] = {}
    for rid, text in logs.items():
        version = re.search(r"START RequestId: \S+ Version: (\d+)", text)
        memory = re.search(r"Memory Size: (\d+) MB", text)
        assert version is not None and memory is not None, text
        ran[rid] = version.group(1)
        assert int(memory.group(1)) == VERSIONS[ran[rid]]["memory"]
        assert "Error:" not in text, f"version {ran[rid]} failed under its own limits: {text}"
    assert set(ran.values()) == {"1", "2"}, "50/50 routing ran only one version"
    # Every v2 event sleeps 3 s, so its record was seen while it ran.
    sleepers = [rid for rid, version in ran.items() if version == "2"]
    for rid in sleepers:
        assert recorded[rid] == "2", f"the record of {rid} names {recorded[rid]}"
        visibility = VERSIONS["2"]["timeout"] + VISIBILITY_MARGIN_S
        assert visibility - 10 < invisible_for[rid] <= visibility + 1
    for rid, picked in recorded.items():
        assert ran[rid] == picked
