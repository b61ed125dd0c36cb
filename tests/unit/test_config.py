"""Settings: one parser for every FIREBOX_* variable, each one declared and documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from firebox.compiler import settings as compiler_settings
from firebox.runtime import config
from firebox.runtime.config import NodeConfig, flag, integer, number, optional_text, text
from firebox.runtime.errors import InvalidSetting

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"FIREBOX_[A-Z0-9_]*[A-Z0-9]")
DOCS = ROOT / "docs" / "configuration.md"


def _code_files(*parts: str) -> list[Path]:
    # The guest app runs inside WebAssembly and reads the function's own environment.
    return [
        path
        for part in parts
        for path in sorted((ROOT / part).rglob("*.py"))
        if path.relative_to(ROOT).parts[:2] != ("compiler", "guest")
    ]


def _names_in(paths: list[Path]) -> set[str]:
    return {name for path in paths for name in NAME.findall(path.read_text())}


def test_parses_each_kind() -> None:
    env = {"I": " 42 ", "F": "0.25", "T": "true", "Z": "0", "S": "redis://x", "E": ""}
    assert integer("I", 1).get(env) == 42
    assert number("F", 1.0).get(env) == 0.25
    assert flag("T", False).get(env) is True and flag("Z", True).get(env) is False
    assert optional_text("S").get(env) == "redis://x"
    assert text("E", "dflt").get(env) == "dflt"  # empty means unset
    assert optional_text("missing").get(env) is None
    assert number("missing", 7.5).get(env) == 7.5


@pytest.mark.parametrize(
    ("setting", "raw", "message"),
    [
        (number("FIREBOX_MAPPING_POLL_S", 0.5), "abc", "FIREBOX_MAPPING_POLL_S must be a number, got 'abc'"),
        (integer("FIREBOX_WORKERS", 2), "2.5", "FIREBOX_WORKERS must be an integer, got '2.5'"),
        (flag("FIREBOX_PREPARE_PYTHON", True), "maybe", "FIREBOX_PREPARE_PYTHON must be 0 or 1, got 'maybe'"),
    ],
)  # fmt: skip
def test_a_bad_value_names_the_variable_and_the_type(
    setting: config.Setting[object], raw: str, message: str
) -> None:
    with pytest.raises(InvalidSetting) as caught:
        setting.get({setting.name: raw})
    assert str(caught.value) == message
    assert caught.value.name == setting.name
    assert isinstance(caught.value, ValueError)  # what callers caught before it had a type


def test_a_bad_mapping_setting_stops_the_import_with_a_named_error() -> None:
    env = {**os.environ, "FIREBOX_MAPPING_POLL_S": "abc"}
    out = subprocess.run(
        [sys.executable, "-c", "import firebox.runtime.events.mappings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "InvalidSetting: FIREBOX_MAPPING_POLL_S must be a number, got 'abc'" in out.stderr


def test_node_config_reads_the_environment_when_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FIREBOX_WORKERS", "3")
    monkeypatch.setenv("FIREBOX_QUEUE_URL", "redis://q")
    monkeypatch.setenv("FIREBOX_PREPARE_PYTHON", "0")
    monkeypatch.setenv("FIREBOX_REGISTRY_POLL_S", "0.2")
    monkeypatch.delenv("FIREBOX_DATABASE_URL", raising=False)
    made = NodeConfig(data_dir=tmp_path)
    assert (made.workers, made.queue_url, made.prepare_python) == (3, "redis://q", False)
    assert made.registry_poll_s == 0.2 and made.database_url is None
    assert NodeConfig(data_dir=tmp_path, workers=1).workers == 1
    monkeypatch.setenv("FIREBOX_ASYNC_CONCURRENCY", "many")
    with pytest.raises(InvalidSetting, match="FIREBOX_ASYNC_CONCURRENCY must be an integer"):
        NodeConfig(data_dir=tmp_path)


def test_every_variable_the_code_names_is_a_declared_setting() -> None:
    declared = {s.name for s in (*config.SETTINGS, *compiler_settings.SETTINGS)}
    assert len(declared) == len(config.SETTINGS) + len(compiler_settings.SETTINGS)
    assert _names_in(_code_files("runtime", "sdk", "compiler")) == declared


def test_only_the_config_modules_read_the_environment() -> None:
    allowed = {ROOT / "runtime" / "config.py"}
    reads = re.compile(r"os\.environ(?!\))|getenv")
    offenders = [
        str(path.relative_to(ROOT))
        for path in _code_files("runtime", "sdk", "compiler")
        if path not in allowed
        # dict(os.environ): the compiler hands its environment to componentize-py.
        and reads.search(path.read_text().replace("dict(os.environ)", ""))
    ]
    assert offenders == []


def test_docs_list_exactly_the_variables_the_code_and_tests_read() -> None:
    documented = set(NAME.findall(DOCS.read_text()))
    in_code = _names_in(_code_files("runtime", "sdk", "compiler", "tests"))
    assert in_code - documented == set(), "read but not in docs/configuration.md"
    assert documented - in_code == set(), "in docs/configuration.md but read nowhere"
