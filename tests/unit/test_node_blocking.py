"""The node keeps blocking work off its event loop and checks each artifact once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from firebox.runtime.config import NodeConfig
from firebox.runtime.manifest import parse_manifest
from firebox.runtime.node import Node
from firebox.runtime.storage.registry import FunctionRecord

from tests.conftest import guest_wasm


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = Node(NodeConfig(data_dir=tmp_path / "data"))
    digest = node.artifacts.put(guest_wasm("echo"))
    node.registry.put_latest("f", "module", digest, parse_manifest({"name": "f"}).to_dict(), None)
    node.catalog.reload()
    yield node
    node.queues.close()
    node.streams.close()
    node.registry.close()


def test_make_local_checks_each_artifact_once(node: Node) -> None:
    checked: list[str | None] = []
    ensure = node.prepare.ensure_local

    def counting(digest: str | None) -> None:
        checked.append(digest)
        ensure(digest)

    node.prepare.ensure_local = counting  # type: ignore[method-assign]
    spec = node.catalog.version("f", "$LATEST").spec

    async def main() -> None:
        for _ in range(5):
            await node.make_local(spec)

    asyncio.run(main())
    assert checked == [spec.digest]
    node.forget_local(spec.digest)
    asyncio.run(main())
    assert checked == [spec.digest, spec.digest]


def test_registry_reads_run_on_the_node_threads(node: Node) -> None:
    threads: list[str] = []
    get = node.registry.get

    def recording(name: str) -> FunctionRecord:
        threads.append(threading.current_thread().name)
        return get(name)

    node.registry.get = recording  # type: ignore[method-assign]

    async def main() -> None:
        await node.functions.get("f")
        await node.functions.versions("f")
        await node.logs("f")

    asyncio.run(main())
    assert len(threads) == 3
    assert all(name.startswith("node-io") for name in threads), threads
