"""A function's deployment package: kept as uploaded, and downloaded from GetFunction's
`Code.Location`, a presigned (SigV4 query), expiring URL on the node (front-end layer).

The URL is signed with the key of the caller of GetFunction, for the one GET of that
version's package, so it stops working when it expires or that key is revoked. A function
deployed through the native API has no uploaded package: its Location returns the code it
runs (the wasm module or the Python bundle).
"""

from __future__ import annotations

from urllib.parse import quote

from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from firebox.runtime.http.auth import SCOPE_KEY
from firebox.runtime.http.native import node_of
from firebox.runtime.node import Node
from firebox.runtime.storage.registry import FunctionRecord
from starlette.requests import Request

#: The metadata key of the uploaded package's artifact digest.
PACKAGE_MARK = "PackageDigest"
# Lambda's Code.Location is valid for 10 minutes.
LOCATION_EXPIRES_S = 600
PACKAGE_PATH = "/2015-03-31/functions/{name}/code-package"


def store_package(node: Node, package: bytes) -> str:
    """Store an uploaded package as an artifact (shared with the other nodes); return its
    digest. Blocking: run it on the node's threads."""
    digest = node.artifacts.put(package)
    node.prepare.share(digest)
    return digest


def presigned_url(request: Request, path: str, query: str) -> str | None:
    """Return a presigned GET URL of a node path (its query included in what is signed)
    for the caller of this request, or None when the caller has no key to sign with."""
    key_id = request.scope.get(SCOPE_KEY)
    secret = request.app.state.authenticator.secret(key_id) if key_id else None
    if secret is None:
        return None
    node = node_of(request)
    url = f"{str(request.base_url).rstrip('/')}{path}" + (f"?{query}" if query else "")
    signed = AWSRequest(method="GET", url=url)
    signer = SigV4QueryAuth(
        Credentials(key_id, secret), "lambda", node.config.region, expires=LOCATION_EXPIRES_S
    )
    signer.add_auth(signed)
    return str(signed.url)


def location(request: Request, record: FunctionRecord) -> str | None:
    """Return the presigned URL of a version's package for the caller of this request."""
    path = PACKAGE_PATH.format(name=quote(record.name, safe=""))
    return presigned_url(request, path, f"Qualifier={quote(record.version, safe='')}")


def package_digest(record: FunctionRecord) -> str:
    """Return the digest of a version's package: as uploaded, else the code it runs."""
    meta = record.config.get("metadata") or {}
    return meta.get(PACKAGE_MARK) or record.bundle_digest or record.digest
