"""Python handlers on the shared interpreter component: real componentize-py, real wasmtime."""

from __future__ import annotations

import hashlib
import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from firebox.compiler.errors import DependencyInstallError, InvalidHandler, NativeDependencyError
from firebox.compiler.interpreter import build_interpreter
from firebox.compiler.python import bundle_python_function, validate_bundle
from firebox.runtime.errors import HandlerError, OutOfFuel, TimedOut
from firebox.runtime.guest.component import PythonInstance, PythonProgram
from firebox.runtime.guest.function_config import PythonFunctionConfig
from wasmtime.component import Component

pytestmark = pytest.mark.slow

FUEL = 2_000_000_000


class Sink:
    """A LogSink that keeps what it was given."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


@pytest.fixture(scope="session")
def engine() -> Iterator[wasmtime.Engine]:
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.wasm_component_model = True
    eng = wasmtime.Engine(config)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.01):
            eng.increment_epoch()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    yield eng
    stop.set()
    thread.join(timeout=1)


@pytest.fixture(scope="session")
def component(engine: wasmtime.Engine, tmp_path_factory: pytest.TempPathFactory) -> Component:
    # FIREBOX_INTERPRETER_CACHE (honoured by build_interpreter) lets CI build it once.
    import os

    cache = None if os.environ.get("FIREBOX_INTERPRETER_CACHE") else tmp_path_factory.mktemp("i")
    wasm = build_interpreter(cache)
    # Compiling the 38 MB component takes ~10 s; keep a serialized copy for this engine.
    digest = hashlib.sha256(wasm.read_bytes()).hexdigest()[:16]
    compiled = wasm.with_name(f"{wasm.stem}.{digest}.test.cwasm")
    if compiled.is_file():
        return Component.deserialize_file(engine, str(compiled))
    comp = Component.from_file(engine, str(wasm))
    compiled.write_bytes(comp.serialize())
    return comp


Make = Callable[..., PythonProgram]


@pytest.fixture
def make(engine: wasmtime.Engine, component: Component, tmp_path: Path) -> Make:
    def make(
        source: str,
        handler: str = "main.handler",
        files: dict[str, str] | None = None,
        **config: Any,
    ) -> PythonProgram:
        (tmp_path / "main.py").write_text(textwrap.dedent(source))
        for name, text in (files or {}).items():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(textwrap.dedent(text))
        bundle = bundle_python_function(tmp_path, handler)
        validate_bundle(bundle, handler)
        settings = PythonFunctionConfig(**{"function_name": "fn", **config})
        return PythonProgram(engine, component, bundle, handler, settings)

    return make


def call(
    instance: PythonInstance,
    event: Any = None,
    *,
    timeout: float = 5.0,
    fuel: int = FUEL,
    sink: Sink | None = None,
    request_id: str = "req-1",
) -> Any:
    raw = instance.call(
        json.dumps(event).encode(), request_id, time.monotonic() + timeout, fuel, sink or Sink()
    )
    return json.loads(raw)


def test_hello(make: Make) -> None:
    instance = make(
        "def handler(event, context):\n    return {'hello': event['name']}\n"
    ).instantiate()
    assert call(instance, {"name": "world"}) == {"hello": "world"}
    instance.close()


def test_aws_documentation_example_runs_unchanged(make: Make) -> None:
    # From "Using the Lambda context object to retrieve Python function information".
    source = """
    import time

    def lambda_handler(event, context):
        print("Lambda function ARN:", context.invoked_function_arn)
        print("CloudWatch log stream name:", context.log_stream_name)
        print("CloudWatch log group name:",  context.log_group_name)
        print("Lambda Request ID:", context.aws_request_id)
        print("Lambda function memory limits in MB:", context.memory_limit_in_mb)
        # We have added a 1 second delay so you can see the time remaining in get_remaining_time_in_millis.
        time.sleep(1)
        print("Lambda time remaining in MS:", context.get_remaining_time_in_millis())
    """
    instance = make(source, "main.lambda_handler", function_name="docs").instantiate()
    sink = Sink()
    assert call(instance, {}, timeout=3.0, sink=sink, request_id="abc-123") is None
    assert "Lambda function ARN: arn:aws:lambda:us-east-1:000000000000:function:docs" in sink.text
    assert "CloudWatch log group name: /aws/lambda/docs" in sink.text
    assert "Lambda Request ID: abc-123" in sink.text
    assert "Lambda function memory limits in MB: 128" in sink.text
    remaining = int(sink.text.split("Lambda time remaining in MS: ")[1].split()[0])
    assert 1000 <= remaining <= 2050


def test_context_fields_and_remaining_time_decreases(make: Make) -> None:
    source = """
    import os, time
    def handler(event, context):
        first = context.get_remaining_time_in_millis()
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            pass
        return {"first": first, "second": context.get_remaining_time_in_millis(),
                "id": context.aws_request_id, "name": context.function_name,
                "version": context.function_version, "env": os.environ.get("GREETING"),
                "lambda_env": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}
    """
    program = make(
        source, function_name="ctx", function_version="7", environment={"GREETING": "hi"}
    )
    instance = program.instantiate()
    result = call(instance, timeout=2.0, request_id="r-42")
    assert 1800 < result["first"] <= 2000
    assert result["second"] <= result["first"] - 40
    assert result["id"] == "r-42"
    assert (result["name"], result["version"]) == ("ctx", "7")
    assert (result["env"], result["lambda_env"]) == ("hi", "ctx")
    assert call(instance, timeout=2.0, request_id="r-43")["id"] == "r-43"


def test_print_and_logging_are_captured_per_invocation(make: Make) -> None:
    source = """
    import logging, sys
    logger = logging.getLogger()
    logger.setLevel(logging.INFO)
    def handler(event, context):
        print("printed", event)
        print("to stderr", file=sys.stderr)
        logger.info("logged %s", event)
        return None
    """
    instance = make(source).instantiate()
    first, second = Sink(), Sink()
    call(instance, 1, sink=first, request_id="one")
    call(instance, 2, sink=second, request_id="two")
    assert "printed 1\n" in first.text and "to stderr\n" in first.text
    assert "[INFO]" in first.text and "\tone\tlogged 1\n" in first.text
    assert "2" not in first.text.replace("Z", "").split("\t")[-1]
    assert "printed 2\n" in second.text and "\ttwo\tlogged 2\n" in second.text
    assert "printed 1" not in second.text


def test_log_output_is_truncated_at_the_limit(make: Make) -> None:
    source = "def handler(event, context):\n    for i in range(1000):\n        print('x' * 99)\n"
    instance = make(source, max_log_bytes=1000).instantiate()
    sink = Sink()
    call(instance, sink=sink)
    assert "truncated after 1000 bytes" in sink.text
    assert len(sink.text) < 1200


def test_exception_comes_back_in_lambda_shape(make: Make) -> None:
    source = """
    class AccountNotFound(Exception):
        pass
    def handler(event, context):
        raise AccountNotFound("no account 42")
    """
    instance = make(source).instantiate()
    with pytest.raises(HandlerError) as info:
        call(instance)
    payload = info.value.payload
    assert payload["errorType"] == "AccountNotFound"
    assert payload["errorMessage"] == "no account 42"
    assert any('main.py", line 5, in handler' in line for line in payload["stackTrace"])
    assert any("raise AccountNotFound" in line for line in payload["stackTrace"])
    # A handler error does not poison the instance.
    assert instance.reusable


def test_non_json_result_is_a_function_error(make: Make) -> None:
    instance = make("def handler(event, context):\n    return {1, 2}\n").instantiate()
    with pytest.raises(HandlerError) as info:
        call(instance)
    assert info.value.payload["errorType"] == "Runtime.MarshalError"
    assert "set" in info.value.payload["errorMessage"]


def test_infinite_loop_times_out_and_next_instance_is_fine(make: Make) -> None:
    program = make(
        "def handler(event, context):\n    while event:\n        pass\n    return 'ok'\n"
    )
    instance = program.instantiate()
    started = time.monotonic()
    with pytest.raises(TimedOut) as info:
        call(instance, True, timeout=0.3, fuel=10**13)
    assert time.monotonic() - started < 1.5
    assert "Task timed out after 0.3" in str(info.value)
    assert not instance.reusable
    instance.close()
    assert call(program.instantiate(), False) == "ok"


def test_huge_allocation_is_a_memory_error(make: Make) -> None:
    source = """
    def handler(event, context):
        if event == "huge":
            bytearray(10**10)
        bytearray(10**9)  # fits the address space, not the 128 MiB limit
    """
    instance = make(source).instantiate()
    for event in ("huge", "big"):
        with pytest.raises(HandlerError) as info:
            call(instance, event)
        assert info.value.payload["errorType"] == "MemoryError"
    assert instance.reusable


def test_deep_recursion_is_a_recursion_error(make: Make) -> None:
    source = "def handler(event, context):\n    return handler(event, context)\n"
    instance = make(source).instantiate()
    with pytest.raises(HandlerError) as info:
        call(instance)
    assert info.value.payload["errorType"] == "RecursionError"
    assert instance.reusable


def test_fuel_exhaustion_is_out_of_fuel(make: Make) -> None:
    program = make("def handler(event, context):\n    return sum(range(10**8))\n")
    instance = program.instantiate()
    with pytest.raises(OutOfFuel):
        call(instance, fuel=1_000_000)
    assert not instance.reusable


def test_module_state_does_not_leak_between_instances(make: Make) -> None:
    source = """
    import random, uuid
    seen = []
    def handler(event, context):
        seen.append(event)
        return {"seen": seen, "uuid": str(uuid.uuid4()), "random": random.random()}
    """
    program = make(source)
    first, second = program.instantiate(), program.instantiate()
    a = call(first, 1)
    assert call(first, 2)["seen"] == [1, 2]
    b = call(second, 3)
    assert b["seen"] == [3]
    assert a["uuid"] != b["uuid"] and a["random"] != b["random"]


def test_standard_library_is_importable(make: Make) -> None:
    source = """
    import json, datetime, decimal, uuid, hashlib, re, logging, base64, csv, statistics
    import collections, itertools, functools, dataclasses, typing, urllib.parse, email
    def handler(event, context):
        return [hashlib.sha256(b"x").hexdigest()[:8], base64.b64encode(b"hi").decode(),
                str(decimal.Decimal("1.10") * 2), statistics.mean([1, 2, 3]),
                datetime.datetime(2024, 1, 2).isoformat()]
    """
    assert call(make(source).instantiate()) == [
        "2d711642", "aGk=", "2.20", 2, "2024-01-02T00:00:00"
    ]  # fmt: skip


def test_vendored_pure_python_package_is_importable(make: Make) -> None:
    files = {
        "vendor_pkg/__init__.py": "from .greet import greet\n",
        "vendor_pkg/greet.py": "def greet(name):\n    return 'hi ' + name\n",
        "helpers.py": "TITLE = 'Dr.'\n",
    }
    source = """
    import vendor_pkg, helpers
    def handler(event, context):
        return vendor_pkg.greet(helpers.TITLE)
    """
    assert call(make(source, files=files).instantiate()) == "hi Dr."


def test_native_code_is_refused(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def handler(e, c):\n    return 1\n")
    (tmp_path / "fastjson").mkdir()
    (tmp_path / "fastjson" / "__init__.py").write_text("")
    (tmp_path / "fastjson" / "_speedups.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    with pytest.raises(NativeDependencyError, match="fastjson"):
        bundle_python_function(tmp_path, "main.handler")


def test_platform_wheel_metadata_is_refused(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def handler(e, c):\n    return 1\n")
    info = tmp_path / "numpyish-1.0.dist-info"
    info.mkdir()
    (info / "WHEEL").write_text("Wheel-Version: 1.0\nRoot-Is-Purelib: false\n")
    with pytest.raises(NativeDependencyError, match="numpyish"):
        bundle_python_function(tmp_path, "main.handler")


def test_missing_handler_module_is_refused(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("def handler(e, c):\n    return 1\n")
    with pytest.raises(InvalidHandler, match="lambda_function"):
        bundle_python_function(tmp_path, "lambda_function.lambda_handler")


def test_import_error_at_load_is_lambdas_init_error(make: Make) -> None:
    program = make("import not_installed\ndef handler(e, c):\n    return 1\n")
    with pytest.raises(HandlerError) as info:
        program.instantiate()
    assert info.value.payload["errorType"] == "Runtime.ImportModuleError"
    assert "not_installed" in info.value.payload["errorMessage"]


def test_instance_reusable_after_handler_error(make: Make) -> None:
    instance = make("def handler(event, context):\n    return 10 // event\n").instantiate()
    with pytest.raises(HandlerError):
        call(instance, 0)
    assert instance.reusable
    assert call(instance, 5) == 2


def test_requirements_are_installed_into_the_bundle(make: Make) -> None:
    source = "import six\ndef handler(event, context):\n    return six.PY3\n"
    try:
        program = make(source, files={"requirements.txt": "six==1.17.0\n"})
    except DependencyInstallError as exc:  # needs PyPI (or a configured index)
        pytest.skip(f"no package index reachable: {exc}")
    assert call(program.instantiate()) is True
