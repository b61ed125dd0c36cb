"""Every command of the README's tour, as written, against a real node on a free port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, ROOT, ServerFactory

pytestmark = pytest.mark.slow

README = ROOT / "README.md"


def tour_blocks() -> list[tuple[str, str]]:
    """Return the (language, code) blocks from "## A short tour" to the manifest example."""
    text = README.read_text()
    start = text.index("## A short tour")
    end = text.index("A function is a folder", start)
    return re.findall(r"```(sh|python)\n(.*?)```", text[start:end], re.S)


def commands() -> list[str]:
    """Return the tour's shell commands, one per line, without their trailing comments."""
    out = []
    for language, code in tour_blocks():
        if language != "sh":
            continue
        for line in code.splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()
            if command:
                out.append(command)
    return out


def test_the_tour_extracts_what_a_reader_sees() -> None:
    found = commands()
    assert found[0] == ". .venv/bin/activate"
    assert "firebox alias update hello-python live --route 2=0.1" in found
    assert any(c.startswith("firebox queue create jobs") for c in found)
    assert [lang for lang, _ in tour_blocks()].count("python") == 1


def test_every_tour_command_succeeds(server_factory: ServerFactory, tmp_path: Path) -> None:
    node = server_factory().start()
    with node.client(timeout=300.0) as client:  # what `scripts/start` deploys
        for example in sorted(EXAMPLES.iterdir()):
            client.deploy_path(example)
    # A reader's HOME, holding the node's data dir where the README says it is.
    home = tmp_path / "home"
    (home / ".local" / "share").mkdir(parents=True)
    (home / ".local" / "share" / "firebox").symlink_to(node.data_dir)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FIREBOX_")},
        "HOME": str(home),
        "FIREBOX_ENDPOINT": node.url,  # the README's "another port" step
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    host = f"127.0.0.1:{node.port}"
    ran = []
    for command in commands():
        line = command.replace("localhost:8080", host).replace("127.0.0.1:8080", host)
        activate = "" if line.startswith(". ") else ". .venv/bin/activate 2>/dev/null; "
        out = subprocess.run(["bash", "-c", activate + line], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, (
            f"{command!r} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
        )
        ran.append((command, out.stdout))
    outputs = dict(ran)
    assert "echo-wat" in outputs["firebox ls"]
    assert (
        "published hello-python version 2"
        in outputs['firebox publish hello-python -m "v2: longer timeout"']
    )
    assert "{'2': 0.1}" in outputs["firebox alias update hello-python live --route 2=0.1"]
    mapping = next(o for c, o in ran if "mapping create" in c)
    assert len(mapping.strip().splitlines()) <= 2, mapping
    # The boto3 snippet, as written, but for the port.
    (snippet,) = [code for lang, code in tour_blocks() if lang == "python"]
    out = subprocess.run([sys.executable, "-c", snippet.replace("127.0.0.1:8080", host)],
                         env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
