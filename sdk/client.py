"""The Python client of a firebox node's native API (SDK layer).

msgpack on the wire by default (payloads travel as bytes, no base64), JSON accepted.
Errors come back as the same typed exceptions the server raised
(`firebox.runtime.errors`), so `except Throttled:` works across the network.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack
from firebox.runtime.config import default_data_dir
from firebox.runtime.credentials import (
    Credentials,
    bearer_token,
    credentials_path,
    read_env,
    read_file,
)
from firebox.runtime.errors import FireboxError, Unauthorized, error_from_dict

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
MSGPACK = "application/msgpack"


def find_credentials(data_dir: Path | None = None) -> Credentials:
    """Return credentials from the environment or the node's data dir, as the server finds them.

    Raises Unauthorized telling the user where credentials were looked for.
    """
    creds = read_env()
    if creds is not None:
        return creds
    folder = data_dir or Path(os.environ.get("FIREBOX_DATA_DIR") or default_data_dir())
    path = credentials_path(folder)
    if path.exists():
        return read_file(path)
    raise Unauthorized(
        "no credentials: set FIREBOX_ACCESS_KEY_ID and FIREBOX_SECRET_ACCESS_KEY, or point"
        f" FIREBOX_DATA_DIR at the node's data dir (looked in {path})"
    )


@dataclass
class Invocation:
    """The outcome of one invocation: the result (or the function's error), log tail, version."""

    request_id: str
    version: str
    payload: Any = None
    raw: bytes = b""
    error: FireboxError | None = None
    log: str = ""
    warm: bool = False
    duration_ms: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True if the function returned without error."""
        return self.error is None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        if "msgpack" in response.headers.get("content-type", ""):
            body = msgpack.unpackb(response.content, raw=False)
        else:
            body = response.json()
        err = body["error"]
    except Exception:
        raise FireboxError(f"HTTP {response.status_code}: {response.text[:200]}") from None
    raise error_from_dict(err)


class Client:
    """A synchronous client of one firebox node."""

    def __init__(
        self,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        *,
        timeout: float = 120.0,
        use_msgpack: bool = True,
    ) -> None:
        self.endpoint = (endpoint or os.environ.get("FIREBOX_ENDPOINT") or DEFAULT_ENDPOINT).rstrip(
            "/"
        )
        self.credentials = credentials or find_credentials()
        self.use_msgpack = use_msgpack
        self._http = httpx.Client(
            base_url=self.endpoint,
            timeout=timeout,
            headers={"Authorization": bearer_token(self.credentials)},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        headers = {"Accept": MSGPACK if self.use_msgpack else "application/json"}
        content = None
        if body is not None:
            if self.use_msgpack:
                content = msgpack.packb(body, use_bin_type=True)
                headers["Content-Type"] = MSGPACK
            else:
                content = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        response = self._http.request(method, path, content=content, headers=headers, **kw)
        _raise_for(response)
        if response.status_code == 204 or not response.content:
            return None
        if "msgpack" in response.headers.get("content-type", ""):
            return msgpack.unpackb(response.content, raw=False)
        return response.json()

    def deploy(self, manifest: dict[str, Any], code: bytes) -> dict[str, Any]:
        """Upload a function (manifest + wasm module or Python bundle); returns its description."""
        if self.use_msgpack:
            result: dict[str, Any] = self._send(
                "POST", "/v1/functions", {"manifest": manifest, "code": code}
            )
        else:
            body = {"manifest": manifest, "code_base64": base64.b64encode(code).decode()}
            result = self._send("POST", "/v1/functions", body)
        return result

    def deploy_path(self, path: str | Path) -> dict[str, Any]:
        """Build the function at `path` (folder with firebox.toml, or .wat/.wasm) and deploy it."""
        from firebox.compiler.build import build_function

        built = build_function(Path(path))
        return self.deploy(built.manifest, built.code)

    def list(self) -> list[dict[str, Any]]:
        """Return every deployed function's description."""
        functions: list[dict[str, Any]] = self._send("GET", "/v1/functions")["functions"]
        return functions

    def get(self, name: str) -> dict[str, Any]:
        """Return one function's description, with its pool's ready count; raises FunctionNotFound."""
        result: dict[str, Any] = self._send("GET", f"/v1/functions/{name}")
        return result

    def delete(self, name: str) -> None:
        """Delete a function; raises FunctionNotFound."""
        self._send("DELETE", f"/v1/functions/{name}")

    def node(self) -> dict[str, Any]:
        """Return node statistics (workers, compiled cache, restarts)."""
        result: dict[str, Any] = self._send("GET", "/v1/node")
        return result

    def invoke(
        self, name: str, event: Any = None, *, export: str | None = None, tail: bool = False
    ) -> Invocation:
        """Invoke a function with a JSON-able event; the function's own failure is in `.error`.

        Raises the typed error for failures before the function ran (FunctionNotFound,
        Throttled, PayloadTooLarge, Unauthorized, ...).
        """
        params = {}
        if export:
            params["export"] = export
        if tail:
            params["log"] = "tail"
        if self.use_msgpack:
            content = msgpack.packb({} if event is None else event, use_bin_type=True)
            headers = {"Content-Type": MSGPACK, "Accept": MSGPACK}
        else:
            content = json.dumps({} if event is None else event).encode()
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
        response = self._http.post(
            f"/v1/functions/{name}/invoke", content=content, headers=headers, params=params
        )
        h = response.headers
        invocation = Invocation(
            request_id=h.get("x-firebox-request-id", ""),
            version=h.get("x-firebox-executed-version", ""),
            raw=response.content,
            warm=h.get("x-firebox-warm") == "true",
            duration_ms=float(h.get("x-firebox-duration-ms", 0) or 0),
            headers=dict(h),
        )
        if "x-firebox-log-result" in h:
            invocation.log = base64.b64decode(h["x-firebox-log-result"]).decode("utf-8", "replace")
        if "x-firebox-function-error" in h:
            try:
                _raise_for(response)
            except FireboxError as exc:
                invocation.error = exc
            return invocation
        _raise_for(response)
        if "msgpack" in h.get("content-type", ""):
            invocation.payload = msgpack.unpackb(response.content, raw=False)
        else:
            try:
                invocation.payload = response.json()
            except ValueError:
                invocation.payload = response.content
        return invocation
