"""The `firebox` command against a real server: human output, --json, exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from firebox.sdk.client import AsyncClient

from tests.conftest import EXAMPLES, GUESTS, Server, guest_wasm


def firebox(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FIREBOX_ENDPOINT": server.url, "FIREBOX_DATA_DIR": str(server.data_dir)}
    env.pop("FIREBOX_ACCESS_KEY_ID", None)
    env.pop("FIREBOX_SECRET_ACCESS_KEY", None)
    out = subprocess.run([sys.executable, "-m", "firebox.sdk.cli", *args], env=env, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    if check:
        assert out.returncode == 0, out.stderr
    return out


def as_json(server: Server, *args: str) -> Any:
    return json.loads(firebox(server, "--json", *args).stdout)


def test_cli_lifecycle(server: Server, tmp_path: Path) -> None:
    assert "deployed echo-wat" in firebox(server, "deploy", str(EXAMPLES / "echo-wat")).stdout
    out = firebox(server, "invoke", "echo-wat", "--data", '{"a": 1}', "--log")
    assert json.loads(out.stdout) == {"wrapped": {"a": 1}, "by": "wat"}
    assert "transform called" in out.stderr
    assert as_json(server, "publish", "echo-wat", "-m", "v1")["version"] == "1"
    firebox(server, "alias", "create", "echo-wat", "live", "--version", "1")
    assert [a["name"] for a in as_json(server, "alias", "ls", "echo-wat")] == ["live"]
    assert json.loads(firebox(server, "invoke", "echo-wat:live", "-d", "{}").stdout)["by"] == "wat"
    cfg = as_json(server, "config", "set", "echo-wat", "memory=32", "--env", "GREETING=hi")[
        "config"
    ]
    assert cfg["memory"] == 32 and cfg["environment"] == {"GREETING": "hi"}
    wat = tmp_path / "echo.wat"
    wat.write_text((GUESTS / "echo.wat").read_text())
    assert "updated the code" in firebox(server, "update", "echo-wat", str(wat)).stdout
    assert json.loads(firebox(server, "invoke", "echo-wat", "-d", '{"b": 2}').stdout) == {"b": 2}
    assert firebox(server, "invoke", "echo-wat", "--type", "DryRun").returncode == 0
    time.sleep(0.5)
    logs = firebox(server, "logs", "echo-wat", "--since", "10m").stdout
    assert logs.count("REPORT RequestId") >= 3
    usage = as_json(server, "usage", "echo-wat")
    assert usage["functions"]["echo-wat"]["invocations"] >= 3
    assert "echo-wat" in firebox(server, "ls").stdout
    assert as_json(server, "get", "echo-wat")["extra"]["aliases"][0]["name"] == "live"
    # Failures exit non-zero with a message.
    missing = firebox(server, "invoke", "nope", check=False)
    assert missing.returncode == 1 and "Function not found" in missing.stderr
    bad = firebox(server, "config", "set", "echo-wat", "memory=-3", check=False)
    assert bad.returncode == 1 and "memory" in bad.stderr
    trapped = firebox(server, "invoke", "echo-wat", "--export", "nothing-here", check=False)
    assert trapped.returncode == 1
    assert "deleted" in firebox(server, "rm", "echo-wat").stdout
    assert firebox(server, "get", "echo-wat", check=False).returncode == 1


def test_async_client(server: Server) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, server.credentials) as client:
            await client.deploy({"name": "async-echo"}, guest_wasm("echo"))
            results = await asyncio.gather(
                *(client.invoke("async-echo", {"i": i}) for i in range(20))
            )
            assert [r.payload for r in results] == [{"i": i} for i in range(20)]
            assert (await client.publish("async-echo")).version == "1"
            assert [f.name for f in await client.list()] == sorted(
                f.name for f in await client.list()
            )
            await client.delete("async-echo")

    asyncio.run(main())


def test_follow_logs_streams_new_invocations(server: Server) -> None:
    with server.client() as client:
        client.deploy({"name": "followed"}, guest_wasm("echo"))
        seen: list[str] = []

        def follow() -> None:
            for entry in client.follow_logs("followed", timeout=10):
                seen.append(entry.request_id)
                if len(seen) >= 3:
                    return

        thread = threading.Thread(target=follow)
        thread.start()
        time.sleep(0.5)
        with server.client() as other:
            ids = [other.invoke("followed", {"n": n}).request_id for n in range(3)]
        thread.join(15)
        assert seen == ids


def test_cli_first_hour_messages(server: Server, tmp_path: Path) -> None:
    firebox(server, "deploy", str(EXAMPLES / "echo-wat"))
    # Global flags after the command; `deploy` prints the URLs, `get` the triggers.
    assert "echo-wat" in [f["name"] for f in json.loads(firebox(server, "ls", "--json").stdout)]
    got = firebox(server, "get", "echo-wat").stdout
    assert "triggers: http POST /echo" in got and f"POST {server.url}/echo" in got
    assert "--version" in firebox(server, "--help").stdout
    assert firebox(server, "--version").stdout.startswith("firebox ")
    assert "usage: firebox bench" in firebox(server, "bench", "--help").stdout
    # A broken pipe is not "cannot reach the node".
    env = {**os.environ, "FIREBOX_ENDPOINT": server.url, "FIREBOX_DATA_DIR": str(server.data_dir)}
    piped = subprocess.run(f"'{sys.executable}' -m firebox.sdk.cli --json ls | head -c 1", shell=True,
                           env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert piped.stdout == "[" and "cannot reach" not in piped.stderr, piped.stderr
    # Failures say where.
    missing = firebox(server, "deploy", str(tmp_path / "nosuchdir"), check=False)
    assert missing.returncode == 1 and "nosuchdir does not exist" in missing.stderr
    down = firebox(server, "--endpoint", "http://127.0.0.1:9", "ls", check=False)
    assert down.returncode == 1 and "http://127.0.0.1:9" in down.stderr
    assert "FIREBOX_ENDPOINT" in down.stderr
    # Sample events go in through --data @- (stdin) and @FILE.
    sample = firebox(server, "event", "sqs", "--body", "hi").stdout
    assert json.loads(sample)["Records"][0]["eventSource"] == "aws:sqs"
    via_stdin = subprocess.run([sys.executable, "-m", "firebox.sdk.cli", "invoke", "echo-wat", "--data", "@-"],
                               input=sample, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert json.loads(via_stdin.stdout)["wrapped"]["Records"][0]["body"] == "hi", via_stdin.stderr
    (tmp_path / "event.json").write_text('{"from": "file"}')
    from_file = firebox(server, "invoke", "echo-wat", "--data", f"@{tmp_path / 'event.json'}")
    assert json.loads(from_file.stdout)["wrapped"] == {"from": "file"}
    # `logs -f --since 1s` prints only what happens from now on, with timestamps, and
    # `logs -f` without a name follows every function.
    time.sleep(1.5)
    for args in (("logs", "echo-wat", "-f", "--since", "1s"), ("logs", "-f", "--since", "1s")):
        proc = subprocess.Popen([sys.executable, "-m", "firebox.sdk.cli", *args], env=env,
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            time.sleep(2.0)
            fresh = firebox(server, "invoke", "echo-wat", "--data", '{"fresh": 1}', "--json")
            assert fresh.returncode == 0
            assert proc.stdout is not None
            first = proc.stdout.readline()
        finally:
            proc.terminate()
            proc.wait(10)
        assert "START RequestId" in first, first
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", first), first
        assert (" echo-wat " in first) == (len(args) == 4), first
