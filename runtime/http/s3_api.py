"""The S3-compatible API over firebox's blob buckets: which requests it takes, how they
address a bucket and key, and which operation serves each (front-end layer).

boto3's `s3` client and the AWS CLI pointed at the node (`endpoint_url`) work unchanged.
The rule that keeps S3 apart from HTTP triggers and the native and Lambda APIs is in
`s3_auth.py`: a request is S3's exactly when it is signed for S3. Such a request is
served here, before any route: path-style (`/bucket/key`) or virtual-host style
(`Host: bucket.<node host>`, the node host being FIREBOX_ENDPOINT's name or
`localhost`). Errors are S3's XML (`s3_errors.py`); operations firebox does not
implement answer `NotImplemented` naming the operation. docs/s3-api.md lists them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import shutil
import threading
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from firebox.runtime import config, roles
from firebox.runtime.errors import CapabilityDenied, FunctionNotFound
from firebox.runtime.grants import NAME_RE
from firebox.runtime.host import aws
from firebox.runtime.http import s3_auth, sigv4
from firebox.runtime.http.auth import session_token
from firebox.runtime.http.data_stores import data_of
from firebox.runtime.http.s3_auth import Caller
from firebox.runtime.http.s3_errors import S3Error, error_response, not_implemented
from firebox.runtime.node import Node
from firebox.runtime.storage.bucket_registry import BucketRegistry
from firebox.runtime.storage.buckets import BucketStore
from firebox.runtime.storage.multipart import MultipartStore
from firebox.runtime.storage.object_meta import ObjectMetaStore
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("firebox.s3")

S3_DIR = "s3"


@dataclass(frozen=True)
class S3Stores:
    """What the S3 API reads and writes: the buckets' objects, created buckets, S3 object
    metadata, multipart uploads, and the folder bodies are streamed into."""

    objects: BucketStore
    buckets: BucketRegistry
    meta: ObjectMetaStore
    multipart: MultipartStore
    incoming: Path


_lock = threading.Lock()
_stores: weakref.WeakKeyDictionary[Any, S3Stores] = weakref.WeakKeyDictionary()


def stores_of(request: Request) -> S3Stores:
    """Return the S3 stores of the node serving `request` (opened on first use, beside the
    node's data stores; leftover bodies of a previous run are removed then)."""
    node: Node = request.app.state.node
    with _lock:
        found = _stores.get(node)
        if found is None:
            data = data_of(request)
            root = node.config.data_dir / S3_DIR
            incoming = root / "incoming"
            shutil.rmtree(incoming, ignore_errors=True)
            incoming.mkdir(parents=True, exist_ok=True)
            found = S3Stores(
                objects=data.buckets,
                buckets=BucketRegistry(data.engine, data.buckets),
                meta=ObjectMetaStore(data.engine),
                multipart=MultipartStore(data.engine, root / "multipart"),
                incoming=incoming,
            )
            _stores[node] = found
        return found


@dataclass
class S3Request:
    """One S3 request as the operations see it."""

    scope: Scope
    receive: Receive
    request: Request
    caller: Caller
    stores: S3Stores
    bucket: str
    key: str
    query: dict[str, str]

    @property
    def method(self) -> str:
        """The HTTP method."""
        return str(self.scope["method"])

    @property
    def headers(self) -> Headers:
        """The request headers."""
        return self.request.headers

    @property
    def max_object_bytes(self) -> int:
        """The largest object the S3 API stores (FIREBOX_S3_MAX_OBJECT_BYTES)."""
        return config.FIREBOX_S3_MAX_OBJECT_BYTES.get()


Operation = Callable[[S3Request], Awaitable[Response]]


def _virtual_domains(node: Node) -> set[str]:
    domains = {"localhost", aws.ENDPOINT_HOST}  # the name functions' boto3 uses
    host = urlsplit(config.FIREBOX_ENDPOINT.get()).hostname
    if host:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            domains.add(host.lower())
    return domains


def address(scope: Scope, node: Node) -> tuple[str, str]:
    """Return the (bucket, key) a request addresses ("" for none), virtual-host style
    when its Host is `<bucket>.<node host>`, else path-style."""
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
    name = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    name = name.lower().rstrip(".")
    path: str = scope["path"]
    for domain in _virtual_domains(node):
        if name.endswith("." + domain) and len(name) > len(domain) + 1:
            return name[: -len(domain) - 1], path[1:] if path.startswith("/") else path
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return bool(value != b"0")
        if name == b"transfer-encoding":
            return True
    return False


class _Template:
    """What the metrics middleware reads from `scope["route"]`: the S3 operation."""

    def __init__(self, operation: str) -> None:
        self.path = f"s3:{operation}"


class S3Middleware:
    """Serves every request signed for S3 (see `s3_auth.is_s3_request`); passes the rest on."""

    def __init__(self, app: ASGIApp, authenticator: Any) -> None:
        self.app = app
        self.auth = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not s3_auth.is_s3_request(scope):
            await self.app(scope, receive, send)
            return
        method = str(scope["method"])
        finished = False

        async def tracked() -> Message:
            nonlocal finished
            message = await receive()
            finished = finished or not message.get("more_body", False)
            return message

        try:
            response = await self._serve(scope, tracked)
        except Exception as exc:
            if not isinstance(exc, S3Error):
                log.warning("S3 %s %s failed", method, scope["path"], exc_info=True)
            response = error_response(exc, method)
        if not finished and _has_body(scope):
            # Answered before reading the body (a refusal; a client waiting on `Expect:
            # 100-continue` never sends it): the connection cannot carry another request.
            response.headers["connection"] = "close"
        await response(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive) -> Response:
        node: Node = scope["app"].state.node
        found: list[roles.RoleIdentity] = []
        token = session_token(sigv4.from_asgi(scope, b""))
        secret_of = self.auth.role_aware(token, found)
        caller = s3_auth.verify(scope, secret_of, node.config.region)
        if found:
            caller = dataclasses.replace(caller, role=found[0])
        request = Request(scope, receive)
        bucket, key = address(scope, node)
        query = dict(parse_qsl(request.url.query, keep_blank_values=True))
        name, operation = route(str(scope["method"]), bool(bucket), bool(key), query, scope)
        scope["route"] = _Template(name)
        if bucket and not NAME_RE.match(bucket):
            raise S3Error(
                "InvalidBucketName", "The specified bucket is not valid.", 400, bucket[:80]
            )
        if caller.role is not None:
            _check_role(node, caller.role, name, bucket, scope)
        stores = stores_of(request)
        return await operation(
            S3Request(scope, receive, request, caller, stores, bucket, key, query)
        )


#: What a function's execution role may do in S3: object reads and writes in the buckets
#: its grant names (`buckets = { name = "read" | "write" | "readwrite" }`), nothing else.
ROLE_READS = frozenset({
    "GetObject", "HeadObject", "ListObjects", "ListObjectsV2", "HeadBucket",
    "GetBucketLocation", "ListMultipartUploads", "ListParts",
})  # fmt: skip
ROLE_WRITES = frozenset({
    "PutObject", "DeleteObject", "DeleteObjects", "CopyObject", "CreateMultipartUpload",
    "UploadPart", "UploadPartCopy", "CompleteMultipartUpload", "AbortMultipartUpload",
})  # fmt: skip


def _check_role(
    node: Node, role: roles.RoleIdentity, operation: str, bucket: str, scope: Scope
) -> None:
    """Refuse what a function's execution role was not granted (AccessDenied, S3's shape)."""
    if operation not in ROLE_READS | ROLE_WRITES:
        raise S3Error(
            "AccessDenied",
            f"the execution role of function {role.function} may not call {operation}:"
            " functions read and write objects in the buckets they were granted",
            403,
        )
    try:
        grants = node.catalog.version(role.function, role.version).spec.grants
    except FunctionNotFound:
        raise S3Error(
            "AccessDenied", f"function {role.function}:{role.version} no longer exists", 403
        ) from None
    needs = [(bucket, operation in ROLE_WRITES)]
    if operation in ("CopyObject", "UploadPartCopy"):
        source = next((v for k, v in scope["headers"] if k == b"x-amz-copy-source"), b"")
        needs.append((unquote(source.decode("latin-1")).lstrip("/").partition("/")[0], False))
    for name, write in needs:
        try:
            grants.bucket(name, write)
        except CapabilityDenied as exc:
            raise S3Error("AccessDenied", exc.message, 403) from None


# Subresources S3 has and firebox does not serve, by the operation name they make.
_SUBRESOURCES = {
    "accelerate": "AccelerateConfiguration", "acl": "Acl", "analytics": "AnalyticsConfiguration",
    "cors": "Cors", "encryption": "Encryption", "intelligent-tiering": "IntelligentTiering",
    "inventory": "InventoryConfiguration", "legal-hold": "LegalHold", "lifecycle": "Lifecycle",
    "logging": "Logging", "metrics": "MetricsConfiguration", "object-lock": "ObjectLock",
    "ownershipControls": "OwnershipControls", "policy": "Policy",
    "policyStatus": "PolicyStatus", "publicAccessBlock": "PublicAccessBlock",
    "replication": "Replication", "requestPayment": "RequestPayment", "restore": "Restore",
    "retention": "Retention", "select": "Content", "tagging": "Tagging",
    "torrent": "Torrent", "versions": "Versions", "website": "Website",
    "attributes": "Attributes",
}  # fmt: skip
_VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "POST": "Post", "HEAD": "Head"}


def route(
    method: str, has_bucket: bool, has_key: bool, query: dict[str, str], scope: Scope
) -> tuple[str, Operation]:
    """Return the S3 operation's name and handler for a request; raises S3Error
    (NotImplemented naming the operation) for operations firebox does not serve."""
    from firebox.runtime.http import s3_buckets, s3_multipart, s3_notifications, s3_objects

    copy = any(k == b"x-amz-copy-source" for k, _ in scope["headers"])
    table: dict[tuple[str, str], tuple[str, Operation]]
    if not has_bucket:
        table = {("GET", ""): ("ListBuckets", s3_buckets.list_buckets)}
        level = "Service"
    elif not has_key:
        table = {
            ("PUT", ""): ("CreateBucket", s3_buckets.create_bucket),
            ("HEAD", ""): ("HeadBucket", s3_buckets.head_bucket),
            ("DELETE", ""): ("DeleteBucket", s3_buckets.delete_bucket),
            ("GET", ""): ("ListObjects", s3_buckets.list_objects),
            ("GET", "list-type"): ("ListObjectsV2", s3_buckets.list_objects_v2),
            ("GET", "location"): ("GetBucketLocation", s3_buckets.get_bucket_location),
            ("GET", "versioning"): ("GetBucketVersioning", s3_buckets.get_bucket_versioning),
            ("GET", "uploads"): ("ListMultipartUploads", s3_multipart.list_uploads),
            ("POST", "delete"): ("DeleteObjects", s3_objects.delete_objects),
            ("GET", "notification"): (
                "GetBucketNotificationConfiguration",
                s3_notifications.get_notification,
            ),
            ("PUT", "notification"): (
                "PutBucketNotificationConfiguration",
                s3_notifications.put_notification,
            ),
        }
        level = "Bucket"
    else:
        table = {
            ("PUT", ""): ("PutObject", s3_objects.put_object),
            ("PUT", "copy"): ("CopyObject", s3_objects.copy_object),
            ("GET", ""): ("GetObject", s3_objects.get_object),
            ("HEAD", ""): ("HeadObject", s3_objects.head_object),
            ("DELETE", ""): ("DeleteObject", s3_objects.delete_object),
            ("POST", "uploads"): ("CreateMultipartUpload", s3_multipart.create_upload),
            ("PUT", "uploadId"): ("UploadPart", s3_multipart.upload_part),
            ("POST", "uploadId"): ("CompleteMultipartUpload", s3_multipart.complete_upload),
            ("DELETE", "uploadId"): ("AbortMultipartUpload", s3_multipart.abort_upload),
            ("GET", "uploadId"): ("ListParts", s3_multipart.list_parts),
        }
        level = "Object"
    for name in _SUBRESOURCES:
        if name in query:
            verb = _VERBS.get(method, method.title())
            kind = "" if name in ("select", "restore") else level
            raise not_implemented(f"{verb}{kind}{_SUBRESOURCES[name]}")
    if "uploadId" in query and method == "PUT" and copy:
        raise not_implemented("UploadPartCopy")
    for sub in ("list-type", "location", "versioning", "uploads", "delete", "uploadId",
                "notification"):  # fmt: skip
        if sub in query and (method, sub) in table:
            return table[(method, sub)]
    if copy and (method, "copy") in table:
        return table[(method, "copy")]
    found = table.get((method, ""))
    if found is None:
        raise S3Error(
            "MethodNotAllowed",
            f"The specified method ({method}) is not allowed against this resource.",
            405,
        )
    return found
