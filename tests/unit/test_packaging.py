"""The server packaging in deploy/ stays true to the code: the commands it runs parse with
the CLI, every setting it names exists, the systemd unit verifies, the compose cluster
shares what many nodes must share."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from firebox.sdk.cli import parser

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NAME = re.compile(r"\bFIREBOX_[A-Z0-9_]+\b")


def known_settings() -> set[str]:
    """Every FIREBOX_* variable the code reads (runtime, compiler, SDK)."""
    names: set[str] = set()
    for root in ("runtime", "compiler", "sdk"):
        for path in (REPO / root).rglob("*.py"):
            names |= set(re.findall(r"[\"'](FIREBOX_[A-Z0-9_]+)[\"']", path.read_text()))
    return names


def serve_args(command: list[str]) -> list[str]:
    assert Path(command[0]).name == "firebox" and command[1] == "serve", command
    return command[1:]


def test_every_setting_named_in_deploy_exists() -> None:
    known = known_settings()
    for path in DEPLOY.iterdir():
        unknown = set(NAME.findall(path.read_text())) - known
        assert not unknown, f"{path.name} names settings the code does not read: {unknown}"


def test_the_container_and_the_unit_run_commands_the_cli_accepts() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", dockerfile, re.M).group(1))  # type: ignore[union-attr]
    unit = (DEPLOY / "firebox.service").read_text()
    exec_start = shlex.split(re.search(r"^ExecStart=(.*)$", unit, re.M).group(1))  # type: ignore[union-attr]
    for command in (cmd, exec_start):
        args = parser().parse_args(serve_args(command))  # exits (fails the test) if unknown
        assert args.data_dir == "/var/lib/firebox" and args.port == 8080
    assert "--host" in cmd and cmd[cmd.index("--host") + 1] == "0.0.0.0"  # reachable from outside
    assert re.search(r"^EXPOSE 8080$", dockerfile, re.M)
    assert "/healthz" in dockerfile and "USER firebox" in dockerfile


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    firebox = Path(sys.executable).with_name("firebox")
    unit = (
        (DEPLOY / "firebox.service").read_text().replace("/opt/firebox/bin/firebox", str(firebox))
    )
    with_unit = tmp_path / "firebox.service"
    with_unit.write_text(unit)
    proc = subprocess.run(
        [analyze, "verify", str(with_unit)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line for line in (proc.stdout + proc.stderr).splitlines() if "firebox.service" in line
    ]
    assert proc.returncode == 0 and not problems, proc.stdout + proc.stderr


def test_the_compose_cluster_shares_storage_and_secrets() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    nodes = [s for name, s in services.items() if name.startswith("node")]
    assert len(nodes) >= 2
    for node in nodes:
        env = node["environment"]
        assert env["FIREBOX_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["FIREBOX_QUEUE_URL"].startswith("redis://")
        assert node["env_file"] == "cluster.env"
        assert node["build"]["dockerfile"] == "deploy/Dockerfile"
    example = (DEPLOY / "cluster.env.example").read_text()
    for shared in ("FIREBOX_ACCESS_KEY_ID", "FIREBOX_SECRET_ACCESS_KEY",
                   "FIREBOX_KEY_ENCRYPTION_KEY", "FIREBOX_SECRETS_KEY"):  # fmt: skip
        assert re.search(rf"^{shared}=", example, re.M), shared
    assert "deploy/cluster.env" in (REPO / ".gitignore").read_text().splitlines()
