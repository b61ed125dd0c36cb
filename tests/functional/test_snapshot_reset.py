"""Python instances reset in place to their snapshot between invocations (snapshot/reset.py):
real componentize-py, real wasmtime, in process."""

from __future__ import annotations

import ctypes
import json
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from firebox.compiler.interpreter_split import SplitInterpreter
from firebox.compiler.python import bundle_python_function
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.errors import OutOfFuel
from firebox.runtime.guest.component import PythonInstance
from firebox.runtime.guest.function_config import PythonFunctionConfig
from firebox.runtime.snapshot import reset
from firebox.runtime.snapshot.reset import ResetSnapshotProgram, Resetter
from firebox.runtime.snapshot.store import SnapshotBuilder, store_split

from tests.functional.test_snapshot import FUEL, Sink, node, serving, split  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not reset.enabled(), reason="reset in place needs Linux's page map"),
]


def call(instance: PythonInstance, event: Any = None, sink: Sink | None = None) -> Any:
    raw = instance.call(
        json.dumps(event).encode(), "req", time.monotonic() + 5, FUEL, sink or Sink()
    )
    return json.loads(raw)


@pytest.fixture
def deploy(
    node: tuple[SnapshotBuilder, ArtifactStore, CompiledCache],  # noqa: F811
    split: SplitInterpreter,  # noqa: F811
    tmp_path: Path,
) -> Any:
    builder, artifacts, _cache = node
    digests = store_split(artifacts, split)

    def deploy(source: str) -> ResetSnapshotProgram:
        folder = tmp_path / "fn"
        folder.mkdir(exist_ok=True)
        (folder / "main.py").write_text(textwrap.dedent(source))
        bundle = bundle_python_function(folder, "main.handler")
        digest = artifacts.put(bundle)
        config = PythonFunctionConfig(function_name="fn")
        ref = builder.ensure(digest, "main.handler", config)
        program = reset.load_reset_program(
            artifacts, tmp_path, digests.component, digests.main_module, digests.import_name,
            ref.digest, config, bundle,
        )  # fmt: skip
        assert program is not None
        return program

    return deploy


STATEFUL = """
import os, random, uuid
from snapshot_restore_py import register_after_restore
TABLE = {i: str(i) * 3 for i in range(3000)}
CALLS = []
HOOKS = []

@register_after_restore
def after():
    HOOKS.append("after")
    print("after-restore ran")

def handler(event, context):
    CALLS.append(event)
    size = len(TABLE)
    # Touch a lot of the heap: new objects, a rebuilt dict, a megabyte of bytes.
    TABLE.update({i: "x" * (i % 50) for i in range(3000, 9000)})
    blob = bytearray(1 << 20)
    blob[::4096] = b"y" * len(blob[::4096])
    before = sorted(os.listdir("/tmp"))
    with open("/tmp/left-behind", "w") as f:
        f.write("from the previous invocation")
    return {
        "calls": len(CALLS), "table": size, "hooks": HOOKS, "tmp": before,
        "random": random.random(), "uuid": str(uuid.uuid4()),
    }
"""


def test_reset_puts_the_memory_back_to_the_snapshot_byte_for_byte(deploy: Any) -> None:
    program = deploy(STATEFUL)
    instance = program.instantiate()
    try:
        resetter = instance.resetter
        assert isinstance(resetter, Resetter)
        memory, image = resetter.memory, resetter.image
        with open(image.path, "rb") as f:
            snapshot = f.read()
        results = []
        for _ in range(5):
            sink = Sink()
            results.append(call(instance, 1, sink))
            assert resetter()  # the memory part of `recycle`, before `restore` runs again
            assert resetter.last_pages > 100  # what the call wrote was copied back
            # Exactly the image's bytes: nothing an invocation did survives its reset.
            assert ctypes.string_at(memory.base, memory.size) == snapshot
            assert instance.recycle()
        for result in results:
            assert result["calls"] == 1 and result["table"] == 3000
            assert result["hooks"] == ["after"]  # after-restore ran again, once, per reset
            assert result["tmp"] == []  # /tmp was emptied
        assert len({r["random"] for r in results}) == 5
        assert len({r["uuid"] for r in results}) == 5
        # What the after-restore hook printed opens the next invocation's log.
        sink = Sink()
        call(instance, 1, sink)
        assert "after-restore ran" in "".join(sink.parts)
    finally:
        instance.close()


def test_an_instance_whose_memory_grew_is_not_recycled(deploy: Any) -> None:
    program = deploy(
        """
        KEEP = []
        def handler(event, context):
            if event == "grow":
                KEEP.append(bytearray(64 << 20))  # past the snapshot's memory: it grows
            return len(KEEP)
        """
    )
    instance = program.instantiate()
    try:
        assert call(instance, "small") == 0
        assert instance.recycle()
        assert call(instance, "grow") == 1
        # The memory's size is visible to the guest and cannot shrink: replace it instead.
        assert not instance.recycle()
        assert not instance.reusable
    finally:
        instance.close()
    fresh = program.instantiate()
    try:
        assert call(fresh, "small") == 0
    finally:
        fresh.close()


def test_an_instance_that_trapped_is_not_recycled(deploy: Any) -> None:
    program = deploy(
        """
        def handler(event, context):
            return sum(range(event))
        """
    )
    instance = program.instantiate()
    try:
        with pytest.raises(OutOfFuel):
            instance.call(b"100000000", "req", time.monotonic() + 5, 1_000_000, Sink())
        assert not instance.recycle()
    finally:
        instance.close()
