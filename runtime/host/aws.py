"""The AWS endpoints a function reaches unchanged through boto3: its execution role's
credentials and the node's AWS-compatible APIs (host layer).

Lambda hands a function its role's credentials; with SnapStart (a snapshot shared by
many instances) it serves them from a container-credentials endpoint instead of the
environment, and so does firebox, whose every Python version runs from a snapshot.
The guest environment names two addresses (compiler/guest/firebox_guest_context.py):

- `AWS_CONTAINER_CREDENTIALS_FULL_URI` = `http://169.254.170.2/v1/credentials`:
  botocore's container provider fetches the calling function version's role
  credentials there (`runtime/roles.py`: an `ASIA` key, a secret and a session token,
  valid an hour; botocore refreshes them before they expire). The host answers it
  itself, for the version whose Store asks, so a function only ever gets its own.
- `AWS_ENDPOINT_URL` = `http://aws.firebox.internal`: every boto3 client goes to the
  node's own S3, SQS and Lambda APIs. The host forwards those requests to the node
  (the URL the node gave its workers), bypassing the outbound allow-list and the
  private-address rule: the node's APIs authenticate them (SigV4 with the role
  credentials) and allow only what the function's grant allows.

Both are answered only through these names, and only with the role of the version
running in the Store; the node's other addresses stay refused by the SSRF rule.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any
from urllib.parse import urlsplit

from firebox.runtime import roles
from firebox.runtime.errors import CapabilityDenied
from firebox.runtime.host.api import HostState

CREDENTIALS_HOST = "169.254.170.2"
CREDENTIALS_PATH = "/v1/credentials"
CREDENTIALS_URI = f"http://{CREDENTIALS_HOST}{CREDENTIALS_PATH}"
ENDPOINT_HOST = "aws.firebox.internal"
ENDPOINT_URL = f"http://{ENDPOINT_HOST}"

_node_url: str | None = None
_role_key: bytes | None = None


def configure(node_url: str | None, role_key: bytes | None) -> None:
    """Set where this worker forwards AWS API calls and the key role tokens are signed with."""
    global _node_url, _role_key
    _node_url = node_url.rstrip("/") if node_url else None
    _role_key = role_key or None


def claims(host: str) -> bool:
    """Return True when a request to `host` is one of these endpoints'."""
    # S3 clients address buckets virtual-host style: `<bucket>.aws.firebox.internal`.
    return host in (CREDENTIALS_HOST, ENDPOINT_HOST) or host.endswith("." + ENDPOINT_HOST)


def is_credentials_url(url: str) -> bool:
    """Return True for the container-credentials endpoint's URL (any spelling of it)."""
    parts = urlsplit(url)
    return parts.hostname == CREDENTIALS_HOST and parts.path.rstrip("/") == CREDENTIALS_PATH


def credentials_document(state: HostState, now: float | None = None) -> dict[str, str]:
    """Return the container-credentials document of the Store's function version."""
    if _role_key is None or state.function is None:
        raise CapabilityDenied(
            "role", "execution role credentials", "a node that serves the AWS APIs (firebox serve)"
        )
    function, version = state.function
    return roles.issue(_role_key, function, version, now=now).to_container_json()


def reply(status: int, body: bytes, content_type: str = "application/json") -> dict[str, Any]:
    """Return an `http.request` reply the guest's socket layer turns into a response."""
    return {
        "status": status,
        "reason": "OK" if status == 200 else "",
        "headers": [["Content-Type", content_type]],
        "body": base64.b64encode(body).decode(),
    }


def credentials(state: HostState, method: str, url: str) -> dict[str, Any]:
    """Answer botocore's container-credentials fetch."""
    if method != "GET" or not is_credentials_url(url):
        return reply(404, b'{"message": "not found"}')
    document = credentials_document(state)
    return reply(200, json.dumps(document).encode())


def forward_target(url: str) -> str:
    """Return the node URL a request to the AWS endpoint goes to (path and query kept)."""
    if _node_url is None:
        raise CapabilityDenied(
            "aws", "the node's AWS APIs", "a node that serves them (firebox serve)"
        )
    parts = urlsplit(url)
    return _node_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def expired_document(now: float | None = None) -> dict[str, str]:
    """The credentials document served while a snapshot is captured: already expired, so
    botocore fetches real ones at the first call that signs (never baked into the snapshot)."""
    moment = time.time() if now is None else now
    expiration = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment - 1))
    return {
        "AccessKeyId": "ASIAFIREBOXSNAPSHOT0",
        "SecretAccessKey": "refreshed-at-the-first-call",
        "Token": "refreshed-at-the-first-call",
        "Expiration": expiration,
    }
