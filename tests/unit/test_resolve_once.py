"""A weighted alias is resolved once per invocation, at the front door, and the version it
picked is the one whose limits apply, for sync (Lambda and native) and Event invocations.

The node runs in-process without workers: the dispatch seam (`node.invoker`) is replaced
by one that records which version it was asked to run, and the catalog's RNG counts draws.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from firebox.runtime.config import NodeConfig
from firebox.runtime.events.async_invoke import VISIBILITY_MARGIN_S
from firebox.runtime.http.app import create_app
from firebox.runtime.manifest import parse_manifest
from firebox.runtime.node import Node
from firebox.runtime.specs import Deployed, InvocationResult

from tests.conftest import guest_wasm

TIMEOUTS = {"1": 1.0, "2": 900.0}
MEMORY = {"1": 64, "2": 128}
WAIT_S = 20.0


class CountingRandom(random.Random):
    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return super().random()


class RecordingInvoker:
    """Stands in for the worker dispatch: records the version each invocation ran."""

    def __init__(self) -> None:
        self.ran: list[Deployed] = []

    async def invoke(
        self,
        fn: Deployed,
        payload: bytes,
        export: str | None = None,
        request_id: str | None = None,
        invoked_arn: str = "",
        client_context: str | None = None,
    ) -> InvocationResult:
        self.ran.append(fn)
        return InvocationResult(request_id=request_id or "r", version=fn.version, output=b"{}")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(NodeConfig(data_dir=tmp_path / "data"))
    digest = node.artifacts.put(guest_wasm("echo"))
    registry = node.registry
    for version in ("1", "2"):
        manifest = {"name": "f", "timeout": TIMEOUTS[version], "memory": MEMORY[version]}
        config = parse_manifest(manifest).to_dict()
        if version == "1":
            registry.put_latest("f", "module", digest, config, None)
        else:
            registry.update_config("f", config)
        assert registry.publish("f").version == version
    registry.put_alias("f", "live", "1", {"2": 0.5}, "", create=True)
    node.catalog.reload()
    node.catalog.rng = CountingRandom(1234)
    node.invoker = RecordingInvoker()  # type: ignore[assignment]
    yield node
    node.queues.close()
    node.streams.close()
    node.registry.close()


def ran(node: Node) -> list[Deployed]:
    invoker = node.invoker
    assert isinstance(invoker, RecordingInvoker)
    return invoker.ran


def draws(node: Node) -> int:
    rng = node.catalog.rng
    assert isinstance(rng, CountingRandom)
    return rng.draws


def client(node: Node) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(node)), base_url="http://testserver"
    )


def bearer(node: Node) -> dict[str, str]:
    key = node.credentials
    return {"Authorization": f"Bearer {key.access_key_id}:{key.secret_access_key}"}


def signed(node: Node, url: str, body: bytes, headers: dict[str, str]) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    key = node.credentials
    credentials = Credentials(key.access_key_id, key.secret_access_key)
    SigV4Auth(credentials, "lambda", node.config.region).add_auth(request)
    return dict(request.headers.items())


def test_lambda_invoke_picks_once_and_tails_the_version_that_ran(node: Node) -> None:
    async def main() -> list[tuple[str, str]]:
        out = []
        async with client(node) as http:
            for _ in range(30):
                url = "http://testserver/2015-03-31/functions/f/invocations?Qualifier=live"
                headers = signed(node, url, b"{}", {"X-Amz-Log-Type": "Tail"})
                response = await http.post(url, content=b"{}", headers=headers)
                assert response.status_code == 200, response.text
                tail = base64.b64decode(response.headers["X-Amz-Log-Result"]).decode()
                memory = re.search(r"Memory Size: (\d+) MB", tail)
                assert memory is not None
                out.append((response.headers["X-Amz-Executed-Version"], memory.group(1)))
        return out

    results = asyncio.run(main())
    assert draws(node) == 30  # one pick per invocation (was two)
    assert [fn.version for fn in ran(node)] == [version for version, _ in results]
    assert {version for version, _ in results} == {"1", "2"}
    for version, memory in results:
        assert int(memory) == MEMORY[version]


def test_native_invoke_picks_once(node: Node) -> None:
    async def main() -> list[str]:
        async with client(node) as http:
            versions = []
            for _ in range(20):
                response = await http.post(
                    "/v1/functions/f/invoke?qualifier=live", content=b"{}", headers=bearer(node)
                )
                assert response.status_code == 200, response.text
                versions.append(response.headers["X-Firebox-Executed-Version"])
            return versions

    versions = asyncio.run(main())
    assert draws(node) == 20
    assert [fn.version for fn in ran(node)] == versions


def test_event_picks_once_and_delivers_the_recorded_version(node: Node) -> None:
    visibility: dict[str, float] = {}
    change = node.queues.change_visibility

    def spy(queue: str, receipt: str, timeout_s: float) -> bool:
        visibility[receipt] = timeout_s
        return change(queue, receipt, timeout_s)

    node.queues.change_visibility = spy  # type: ignore[method-assign,assignment]
    events = 16

    async def main() -> None:
        await node.async_invoker.start()
        try:
            async with client(node) as http:
                for _ in range(events):
                    response = await http.post(
                        "/v1/functions/f/invoke?qualifier=live",
                        content=b"{}",
                        headers={**bearer(node), "X-Firebox-Invocation-Type": "Event"},
                    )
                    assert response.status_code == 202, response.text
            deadline = time.monotonic() + WAIT_S
            while len(ran(node)) < events:
                assert time.monotonic() < deadline, "the events were not delivered in time"
                await asyncio.sleep(0.05)
        finally:
            await node.async_invoker.stop()
            # A receive may still be polling the queue: let it end before the queue closes.
            node.async_invoker._executor.shutdown(wait=True)

    asyncio.run(main())
    assert draws(node) == events  # one pick per event (was up to four)
    versions = [fn.version for fn in ran(node)]
    assert set(versions) == {"1", "2"}
    # Each delivery extended visibility over the timeout of a version that ran.
    assert sorted(visibility.values()) == sorted(
        TIMEOUTS[v] + VISIBILITY_MARGIN_S for v in versions
    )


def test_event_record_holds_the_picked_version(node: Node) -> None:
    sent: list[dict[str, Any]] = []

    async def capture(event: dict[str, Any], **_: Any) -> None:
        sent.append(event)

    node.async_invoker._send = capture  # type: ignore[method-assign]

    async def main() -> None:
        for _ in range(10):
            resolved = node.resolve("f", "live")
            await node.enqueue("f", "live", b"{}", resolved=resolved)
            assert sent[-1]["version"] == resolved.deployed.version
            assert sent[-1]["qualifier"] == "live"

    asyncio.run(main())
    assert draws(node) == 10
