"""Post-init snapshots of Python functions: real componentize-py, real wasmtime, in process."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from firebox.compiler.interpreter import build_interpreter, default_cache_dir
from firebox.compiler.interpreter_split import (
    RESET_PREOPENS_EXPORT,
    SplitInterpreter,
    SplitLayoutError,
    split_component,
    split_interpreter,
    wasm_tools,
)
from firebox.compiler.python import bundle_python_function
from firebox.runtime.artifacts import ArtifactStore, CompiledCache
from firebox.runtime.config import MiB
from firebox.runtime.engine import EngineSettings
from firebox.runtime.errors import HandlerError, MemoryLimitExceeded, ResponseTooLarge
from firebox.runtime.guest.component import PythonInstance
from firebox.runtime.guest.engine import EpochTicker, build_engine
from firebox.runtime.guest.function_config import PythonFunctionConfig
from firebox.runtime.snapshot.capture import CaptureEngine
from firebox.runtime.snapshot.key import snapshot_key
from firebox.runtime.snapshot.store import (
    SnapshotBuilder,
    SnapshotIndex,
    load_snapshot_program,
    store_split,
)

FUEL = 2_000_000_000
SETTINGS = EngineSettings(pool_slots=8)


class Sink:
    """A LogSink that keeps what it was given."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)


def call(instance: PythonInstance, event: Any = None) -> Any:
    raw = instance.call(json.dumps(event).encode(), "req-1", time.monotonic() + 5, FUEL, Sink())
    return json.loads(raw)


def _parse(tmp: Path, wat: str) -> bytes:
    (tmp / "c.wat").write_text(textwrap.dedent(wat))
    wasm_tools("parse", str(tmp / "c.wat"), "-o", str(tmp / "c.wasm"))
    return (tmp / "c.wasm").read_bytes()


# A component shaped like componentize-py's: module 0 holds the memory and the data, the
# library module (wasi-libc's place) imports them. `{write}` is the library's exported
# function body.
LAYOUT = """
(component
  (core module $main
    (memory (export "memory") 1)
    (global $sp (export "__stack_pointer") (mut i32) (i32.const 1024))
    (global $g (export "g") (mut i32) (i32.const 0))
    (data (i32.const 2048) "{data}"))
  (core module $lib
    (import "env" "__stack_pointer" (global $__stack_pointer (mut i32)))
    (import "env" "g" (global $g (mut i32)))
    (import "env" "memory" (memory 1))
    (func (export "__wasilibc_reset_preopens"))
    (func (export "f") {write}))
  (core instance $m (instantiate $main))
  (core instance $libc.so (instantiate $lib (with "env" (instance $m)))))
"""


IMPORTED_MEMORY = '(import "env" "memory" (memory 1))'


def test_layout_check_accepts_stack_pointer_writes(tmp_path: Path) -> None:
    component = _parse(
        tmp_path, LAYOUT.format(data="x" * 400, write="i32.const 8 global.set $__stack_pointer")
    )
    split, main = split_component(component)
    assert b"unbundled-module0" in split
    assert RESET_PREOPENS_EXPORT.encode() in split  # the capture's reset of libc's preopens
    assert main[:4] == b"\0asm"


@pytest.mark.parametrize(
    ("data", "write", "lib_memory", "problem"),
    [
        ("x" * 400, "i32.const 1 global.set $g", IMPORTED_MEMORY, "runs global.set $g"),
        ("x" * 400, "nop", "(memory 1)", "module $lib defines a memory"),
        ("x", "nop", IMPORTED_MEMORY, "is not the largest module"),
    ],
)
def test_layout_check_fails_loudly(
    tmp_path: Path, data: str, write: str, lib_memory: str, problem: str
) -> None:
    wat = LAYOUT.format(data=data, write=write).replace(IMPORTED_MEMORY, lib_memory)
    with pytest.raises(SplitLayoutError) as info:
        split_component(_parse(tmp_path, wat))
    assert problem in str(info.value)
    assert "componentize-py" in str(info.value)


# --- the real interpreter ------------------------------------------------------------


@pytest.fixture(scope="session")
def split() -> SplitInterpreter:
    return split_interpreter(build_interpreter())


@pytest.fixture(scope="session")
def serving() -> Iterator[wasmtime.Engine]:
    engine = build_engine(SETTINGS)
    ticker = EpochTicker(engine)
    yield engine
    ticker.stop()


@pytest.fixture(scope="session")
def node(
    split: SplitInterpreter, serving: wasmtime.Engine, tmp_path_factory: pytest.TempPathFactory
) -> tuple[SnapshotBuilder, ArtifactStore, CompiledCache]:
    data = tmp_path_factory.mktemp("node")
    artifacts = ArtifactStore(data)
    # The compiled split interpreter (~10-25 s per engine) is kept across runs.
    cache_root = default_cache_dir() / "test-compiled"
    cache = CompiledCache(cache_root, SETTINGS)
    capture = CaptureEngine(split, cache_root)
    builder = SnapshotBuilder(
        capture, serving, SETTINGS.fingerprint(), artifacts, cache, SnapshotIndex(data)
    )
    return builder, artifacts, cache


Deploy = Callable[..., Any]


@pytest.fixture
def deploy(
    node: tuple[SnapshotBuilder, ArtifactStore, CompiledCache],
    split: SplitInterpreter,
    serving: wasmtime.Engine,
    tmp_path: Path,
) -> Deploy:
    builder, artifacts, cache = node
    digests = store_split(artifacts, split)

    def deploy(source: str, **config: Any) -> Any:
        (tmp_path / "main.py").write_text(textwrap.dedent(source))
        bundle = artifacts.put(bundle_python_function(tmp_path, "main.handler"))
        settings = PythonFunctionConfig(**{"function_name": "fn", **config})
        ref = builder.ensure(bundle, "main.handler", settings)
        return load_snapshot_program(
            serving, artifacts, cache, digests, ref.digest, settings, bundle
        )

    return deploy


@pytest.mark.slow
def test_module_state_is_in_every_instance_and_mutations_never_leak(
    deploy: Deploy, node: tuple[SnapshotBuilder, ArtifactStore, CompiledCache]
) -> None:
    program = deploy(
        """
        import hashlib
        print("initializing")
        TABLE = {str(i): hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)}
        CALLS = []
        def handler(event, context):
            CALLS.append(event)
            return {"size": len(TABLE), "first": TABLE["0"][:8], "calls": len(CALLS)}
        """
    )
    assert "initializing" in (node[0].last_capture.init_log if node[0].last_capture else "")
    for _ in range(3):
        instance = program.instantiate()
        try:
            assert call(instance, 1) == {"size": 2000, "first": "5feceb66", "calls": 1}
            assert call(instance, 2)["calls"] == 2  # the same instance keeps its state
        finally:
            instance.close()


@pytest.mark.slow
def test_randomness_differs_across_instances(deploy: Deploy) -> None:
    program = deploy(
        """
        import os, random, secrets, uuid
        AT_IMPORT = random.random()
        def handler(event, context):
            return [random.random(), str(uuid.uuid4()), secrets.token_hex(8),
                    os.urandom(8).hex(), AT_IMPORT]
        """
    )
    results = []
    for _ in range(3):
        instance = program.instantiate()
        results.append(call(instance))
        instance.close()
    for column in range(4):
        assert len({r[column] for r in results}) == 3, column
    # Computed once at init, like on SnapStart: the same in every instance.
    assert len({r[4] for r in results}) == 1


@pytest.mark.slow
def test_snapstart_hooks_run_before_snapshot_once_and_after_restore_per_instance(
    deploy: Deploy, node: tuple[SnapshotBuilder, ArtifactStore, CompiledCache]
) -> None:
    program = deploy(
        """
        from snapshot_restore_py import register_after_restore, register_before_snapshot
        EVENTS = []

        @register_before_snapshot
        def before():
            print("before-snapshot ran")
            EVENTS.append("before")

        def after(tag, suffix=""):
            EVENTS.append(tag + suffix)

        register_after_restore(after, "after", suffix="!")

        def handler(event, context):
            return EVENTS
        """
    )
    assert node[0].last_capture is not None
    assert "before-snapshot ran" in node[0].last_capture.init_log
    for _ in range(2):
        instance = program.instantiate()
        assert call(instance) == ["before", "after!"]
        assert call(instance) == ["before", "after!"]  # hooks run once per instance
        instance.close()


@pytest.mark.slow
def test_failing_after_restore_hook_is_a_lambda_error(deploy: Deploy) -> None:
    program = deploy(
        """
        from snapshot_restore_py import register_after_restore
        @register_after_restore
        def broken():
            raise RuntimeError("no connection")
        def handler(event, context):
            return 1
        """
    )
    with pytest.raises(HandlerError) as info:
        program.instantiate()
    assert info.value.payload["errorType"] == "Runtime.AfterRestoreError"
    assert "no connection" in info.value.payload["errorMessage"]


@pytest.mark.slow
def test_restored_instances_use_the_filesystem(deploy: Deploy, tmp_path: Path) -> None:
    # The capture's import read /var/task; every restored instance is a new Store that
    # must fetch its own preopens (the bundle, its /tmp, the runtime layer's tzdata).
    (tmp_path / "data.txt").write_text("from the bundle")
    program = deploy(
        """
        import os
        BUNDLE = open("data.txt").read()
        def handler(event, context):
            with open("/tmp/scratch", "a") as f:
                f.write(event)
            from zoneinfo import ZoneInfo
            import datetime
            when = datetime.datetime(2024, 1, 1, 12, tzinfo=ZoneInfo("Europe/Paris"))
            return [BUNDLE, open("data.txt").read(), open("/tmp/scratch").read(),
                    os.getcwd(), sorted(os.listdir("."))[:2], when.utcoffset().seconds]
        """
    )
    for tag in ("a", "b"):
        instance = program.instantiate()
        try:
            bundle, again, scratch, cwd, listing, offset = call(instance, tag)
            assert (bundle, again, cwd, offset) == (
                "from the bundle",
                "from the bundle",
                "/var/task",
                3600,
            )
            assert scratch == tag  # each instance's /tmp is its own
            assert listing == ["data.txt", "main.py"]
        finally:
            instance.close()


@pytest.mark.slow
def test_six_megabyte_events_and_results_cross_and_the_limit_is_the_one_named(
    deploy: Deploy,
) -> None:
    program = deploy(
        """
        def handler(event, context):
            if isinstance(event, dict):
                return "y" * event["n"]
            return [len(event), event[:3] if isinstance(event, str) else event[0],
                    context.get_remaining_time_in_millis()]
        """
    )
    instance = program.instantiate()
    limit = 6 * MiB
    try:
        text = "x" * (6 * 10**6)
        raw = instance.call(json.dumps(text).encode(), "r", time.monotonic() + 5, FUEL, Sink())
        assert json.loads(raw)[:2] == [6 * 10**6, "xxx"]
        # Decoding ~6 MB of small objects takes longer than this handler's 0.3 s timeout
        # here; it runs on a budget of its own, and the handler gets its whole timeout.
        items = [{"id": i, "name": "abcdefgh", "ok": True} for i in range(150_000)]
        event = json.dumps(items).encode()
        assert len(event) > 5 * MiB
        raw = instance.call(event, "r", time.monotonic() + 0.3, FUEL, Sink(), limit)
        size, first, remaining = json.loads(raw)
        assert (size, first) == (150_000, items[0])
        assert 200 < remaining <= 300
        # A result of the limit's size passes; one byte more fails naming that limit.
        result = instance.call(
            json.dumps({"n": limit - 2}).encode(), "r", time.monotonic() + 5, FUEL, Sink(), limit
        )
        assert len(result) == limit
        with pytest.raises(ResponseTooLarge, match=f"of {limit + 1} bytes exceeds the limit of"
                           f" {limit} bytes"):  # fmt: skip
            instance.call(
                json.dumps({"n": limit - 1}).encode(), "r", time.monotonic() + 5, FUEL, Sink(),
                limit,
            )  # fmt: skip
        assert instance.reusable  # a refused result is the function's error, not a trap
        with pytest.raises(HandlerError) as info:
            instance.call(b'"\xff\xfe"', "r", time.monotonic() + 5, FUEL, Sink(), limit)
        assert info.value.payload["errorType"] == "Runtime.UnmarshalError"
        with pytest.raises(HandlerError) as info:  # a large event that is not JSON
            instance.call(b"[" * (64 * 1024), "r", time.monotonic() + 5, FUEL, Sink(), limit)
        assert info.value.payload["errorType"] == "Runtime.UnmarshalError"
    finally:
        instance.close()


@pytest.mark.slow
def test_init_error_fails_the_capture(deploy: Deploy) -> None:
    with pytest.raises(HandlerError) as info:
        deploy("raise ValueError('bad config')\ndef handler(e, c):\n    return 1\n")
    assert info.value.payload["errorType"] == "ValueError"


@pytest.mark.slow
def test_memory_below_the_snapshot_size_says_so(deploy: Deploy) -> None:
    program = deploy("def handler(e, c):\n    return 1\n", memory_mb=128)
    program.config = PythonFunctionConfig(function_name="fn", memory_mb=16)
    with pytest.raises(MemoryLimitExceeded, match="initialized state needs"):
        program.instantiate()


@pytest.mark.slow
def test_bundle_or_environment_change_makes_a_new_snapshot(
    node: tuple[SnapshotBuilder, ArtifactStore, CompiledCache], deploy: Deploy
) -> None:
    builder = node[0]
    base = PythonFunctionConfig(function_name="fn", environment={"A": "1", "B": "2"})
    same = PythonFunctionConfig(function_name="fn", environment={"B": "2", "A": "1"})
    other_env = PythonFunctionConfig(function_name="fn", environment={"A": "1", "B": "3"})
    key = builder.key("bundle-1", "main.handler", base)
    assert builder.key("bundle-1", "main.handler", same) == key
    assert builder.key("bundle-2", "main.handler", base) != key
    assert builder.key("bundle-1", "main.handler", other_env) != key
    assert builder.key("bundle-1", "other.handler", base) != key
    fields: dict[str, Any] = {
        "interpreter_digest": "a",
        "bundle_digest": "b",
        "handler": "h",
        "config": {},
    }
    reference = snapshot_key(**fields, engine_fingerprint="e1")
    assert snapshot_key(**fields, engine_fingerprint="e2") != reference
    changed = {**fields, "interpreter_digest": "a2"}
    assert snapshot_key(**changed, engine_fingerprint="e1") != reference
    # The same inputs capture once: the second deploy reuses the stored snapshot.
    deploy("def handler(e, c):\n    return 7\n")
    first = builder.last_capture
    program = deploy("def handler(e, c):\n    return 7\n")
    assert builder.last_capture is first
    instance = program.instantiate()
    assert call(instance) == 7
    instance.close()
