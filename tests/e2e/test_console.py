"""The web console in a real browser: Debian's chromium driven by chromium-driver (selenium)
against a real node: sign in, deploy an example, invoke it, see its log line and the
chart move, and every other page render; on a laptop's window and on a phone's.

Screenshots of each page go to $TMPDIR/console-shots/ (never into the repository).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from firebox.compiler.build import build_function

from tests.conftest import Server, guest_wasm

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(tempfile.gettempdir()) / "console-shots"
WAIT_S = 30.0


def _browser_paths() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    reason = "Debian's chromium and chromium-driver are not installed (apt-get install -y chromium chromium-driver)"
    if os.environ.get("CI") or os.environ.get("FIREBOX_REQUIRE_SERVICES") == "1":
        pytest.fail(reason + " and CI needs them", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1366,900", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(WAIT_S)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if got := check():
                return got
        except Exception as exc:  # the element is not there yet, or being replaced
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def shot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(SHOTS / f"{name}.png"))


def sign_in(driver: Any, server: Server) -> None:
    creds = server.credentials
    driver.get(server.url + "/console")
    driver.execute_script("sessionStorage.clear()")  # signed out, whatever an earlier test did
    driver.refresh()
    wait(lambda: by_id(driver, "signin"), "the sign-in form")
    by_id(driver, "key-id").send_keys(creds.access_key_id)
    by_id(driver, "key-secret").send_keys(creds.secret_access_key)
    by_id(driver, "signin-submit").click()
    wait(lambda: listed(driver), "the functions list")


def listed(driver: Any) -> bool:
    text = by_id(driver, "functions-list").text
    return bool(text) and "Loading" not in text


def test_the_page_is_served_with_a_strict_policy(server: Server) -> None:
    r = httpx.get(server.url + "/console")
    assert r.status_code == 200 and "<title>firebox console</title>" in r.text
    policy = r.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert (
        httpx.get(server.url + "/console/console.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert httpx.get(server.url + "/console/nothing.js").status_code == 404
    assert "//" not in r.text.replace("http://www.w3.org", "")  # nothing from another origin


def test_a_wrong_key_is_refused(browser: Any, server: Server) -> None:
    browser.get(server.url + "/console#/signin")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    wait(lambda: by_id(browser, "signin"), "the sign-in form")
    by_id(browser, "key-id").send_keys("FBKNOBODY")
    by_id(browser, "key-secret").send_keys("wrong")
    by_id(browser, "signin-submit").click()
    message = wait(lambda: by_id(browser, "signin-error").text, "the refusal")
    assert "Unauthorized" in message or "Forbidden" in message
    shot(browser, "01-sign-in-refused")


def test_deploy_invoke_see_the_log_line_and_the_chart_move(
    browser: Any, server: Server, tmp_path: Path
) -> None:
    sign_in(browser, server)
    shot(browser, "02-functions-empty")
    # Deploy the echo-wat example through the console: its firebox.toml and its module.
    example = ROOT / "examples" / "echo-wat"
    code = tmp_path / "echo.wasm"
    code.write_bytes(build_function(example).code)
    manifest = by_id(browser, "deploy-manifest")
    manifest.clear()
    manifest.send_keys((example / "firebox.toml").read_text())
    by_id(browser, "deploy-code").send_keys(str(code))
    by_id(browser, "deploy-submit").click()
    result = wait(lambda: "Deployed" in by_id(browser, "deploy-result").text, "the deploy")
    assert result
    link = wait(
        lambda: [
            a for a in browser.find_elements("css selector", "a.fn-link") if a.text == "echo-wat"
        ],
        "echo-wat in the list",
    )
    shot(browser, "03-functions-deployed")
    link[0].click()
    wait(lambda: by_id(browser, "chart-invocations"), "the function's charts")
    before = int(by_id(browser, "chart-invocations").get_attribute("data-total"))
    event = by_id(browser, "invoke-event")
    event.clear()
    event.send_keys('{"hello": "console"}')
    by_id(browser, "invoke-submit").click()
    wait(lambda: "200" in by_id(browser, "invoke-status").text, "the invocation's status")
    assert '"wrapped"' in by_id(browser, "invoke-output").text
    assert "transform called" in by_id(browser, "invoke-log").text
    # The live log tail shows the invocation's line; the chart counts it.
    wait(lambda: "transform called" in by_id(browser, "log-tail").text, "the log line")
    wait(
        lambda: int(by_id(browser, "chart-invocations").get_attribute("data-total")) == before + 1,
        "the invocations chart to count the call",
    )
    for _ in range(4):
        by_id(browser, "invoke-submit").click()
        time.sleep(0.2)
    wait(
        lambda: int(by_id(browser, "chart-invocations").get_attribute("data-total")) == before + 5,
        "the chart to count five calls",
    )
    shot(browser, "04-function-invoked")
    browser.set_window_size(390, 844)  # a phone
    time.sleep(0.5)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390 + 1
    shot(browser, "05-function-phone")
    browser.set_window_size(1366, 900)


def test_queues_mappings_and_keys_pages(browser: Any, server: Server) -> None:
    with server.client() as client:
        client.deploy(
            {"name": "console-sink", "concurrency": 0, "provisioned": 0}, guest_wasm("echo")
        )
    with server.http() as http:
        assert http.post("/v1/queues", json={"name": "console-in"}).status_code == 201
        for n in range(3):
            http.post("/v1/queues/console-in/messages", json={"body": f"m{n}"})
        r = http.post("/v1/event-source-mappings",
                      json={"function": "console-sink", "source": "queue:console-in", "enabled": False})  # fmt: skip
        assert r.status_code == 201, r.text
    sign_in(browser, server)
    browser.get(server.url + "/console#/queues")
    row = wait(
        lambda: [r for r in by_id(browser, "queues-list").find_elements("css selector", "tr")
                 if r.text.startswith("console-in")],
        "the queue's row",
    )  # fmt: skip
    assert row[0].find_elements("css selector", "td")[1].text == "3"  # visible messages
    mapping = wait(
        lambda: "queue:console-in" in by_id(browser, "mappings-list").text, "the mapping"
    )
    assert mapping
    shot(browser, "06-queues-and-mappings")
    browser.get(server.url + "/console#/keys")
    wait(lambda: "admin" in by_id(browser, "keys-list").text, "the keys")
    by_id(browser, "key-description").send_keys("made in the console")
    by_id(browser, "key-create").click()
    secret = wait(lambda: by_id(browser, "key-created").text, "the new key's secret")
    assert "FBK" in secret or ":" in secret
    wait(lambda: "made in the console" in by_id(browser, "keys-list").text, "the new key listed")
    shot(browser, "07-keys")
    browser.get(server.url + "/console#/node")
    wait(lambda: "MiB" in browser.find_element("css selector", "main").text, "the node's workers")
    shot(browser, "08-node")
    browser.set_window_size(390, 844)
    browser.get(server.url + "/console#/functions")
    wait(lambda: listed(browser), "the functions list")
    shot(browser, "09-functions-phone")
    browser.set_window_size(1366, 900)
