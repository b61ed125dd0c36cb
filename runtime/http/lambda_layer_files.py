"""Layer versions as stored, and their content merged into a Python function's package
(front-end layer; the operations are in `lambda_layers`)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from typing import Any

from firebox.runtime.errors import LambdaError
from firebox.runtime.http.lambda_errors import invalid_parameter
from firebox.runtime.http.lambda_shapes import Names
from firebox.runtime.node import Node
from firebox.runtime.storage.lambda_meta import LAYER, Resource

LAYER_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,140}$")
LAYER_ARN = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):layer:"
    r"(?P<name>[a-zA-Z0-9_-]{1,140})(?::(?P<version>\d{1,18}))?$"
)
# Lambda's limits: 5 layers per function, 250 MB unzipped for a function and its layers.
MAX_LAYERS = 5
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
COUNTER = ""  # the qualifier of the row holding a layer's last version number
SITE_PACKAGES = re.compile(r"^python/lib/python3\.\d+/site-packages/")


def layer_arn(names: Names, name: str, version: int | str | None = None) -> str:
    """Return a layer's ARN (a layer version's when `version` is given)."""
    arn = f"arn:aws:lambda:{names.region}:{names.account}:layer:{name}"
    return f"{arn}:{version}" if version is not None else arn


def check_scope(names: Names, match: re.Match[str], value: str) -> None:
    if match["region"] != names.region or match["account"] != names.account:
        raise LambdaError("ResourceNotFoundException", 404,
                          f"Layer not found: {value} (this node is region {names.region},"
                          f" account {names.account})")  # fmt: skip


def not_found(names: Names, name: str, version: str) -> LambdaError:
    return LambdaError(
        "ResourceNotFoundException", 404,
        f"The resource you requested does not exist: {layer_arn(names, name, version)}",
    )  # fmt: skip


async def versions(node: Node, name: str) -> list[Resource]:
    rows = await node.run_blocking(node.stores.lambda_meta.list, LAYER, name)
    return sorted((r for r in rows if r.qualifier != COUNTER), key=lambda r: int(r.qualifier))


async def version_row(node: Node, names: Names, name: str, version: str) -> Resource:
    if not version.isdigit():
        raise invalid_parameter(f"VersionNumber must be a number, got {version!r}")
    row = await node.run_blocking(node.stores.lambda_meta.get, LAYER, name, str(int(version)), "")
    if row is None:
        raise not_found(names, name, version)
    return row


def unzipped_size(package: bytes) -> int:
    try:
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            size = sum(i.file_size for i in archive.infolist())
    except (zipfile.BadZipFile, OSError):
        raise invalid_parameter("a layer's content must be a zip file") from None
    if size > MAX_UNZIPPED_BYTES:
        raise invalid_parameter(f"unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes")
    return size


async def function_layers(
    node: Node, names: Names, arns: list[Any]
) -> list[tuple[str, int, bytes]]:
    """Return (ARN, CodeSize, zip) of each layer version a function names, in order.

    Raises InvalidParameterValueException for a malformed list, ResourceNotFoundException
    for a layer version that does not exist.
    """
    if len(arns) > MAX_LAYERS or not all(isinstance(a, str) for a in arns):
        raise invalid_parameter(f"Layers must be a list of at most {MAX_LAYERS} layer version ARNs")
    out = []
    for arn in arns:
        match = LAYER_ARN.match(arn)
        if match is None or match["version"] is None:
            raise invalid_parameter(f"Layers: {arn!r} is not a layer version ARN")
        check_scope(names, match, arn)
        row = await version_row(node, names, match["name"], match["version"])
        digest = row.document["Digest"]
        await node.run_blocking(node.prepare.ensure_local, digest)
        out.append(
            (
                arn,
                int(row.document["CodeSize"]),
                await node.run_blocking(node.artifacts.get, digest),
            )
        )
    return out


def merge_layers(package: bytes, layers: list[bytes]) -> bytes:
    """Return a function's package with its layers' Python folders merged in (the
    function's files win, then later layers over earlier ones)."""
    files: dict[str, bytes] = {}
    total = 0
    for layer in layers:
        with zipfile.ZipFile(io.BytesIO(layer)) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if SITE_PACKAGES.match(info.filename):
                    name = SITE_PACKAGES.sub("", info.filename)
                elif info.filename.startswith("python/"):
                    name = info.filename.removeprefix("python/")
                else:
                    continue  # not importable from /opt/python: not used
                total += info.file_size
                if total > MAX_UNZIPPED_BYTES:
                    raise invalid_parameter("the function and its layers unzip to over 250 MB")
                files[name] = archive.read(info)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(package)) as own,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as merged,
    ):
        names = {i.filename for i in own.infolist()}
        total += sum(i.file_size for i in own.infolist())
        if total > MAX_UNZIPPED_BYTES:
            raise invalid_parameter("the function and its layers unzip to over 250 MB")
        for info in own.infolist():
            merged.writestr(info, own.read(info))
        for name, data in files.items():
            if name not in names:
                merged.writestr(name, data)
    return out.getvalue()


def layers_shape(meta: dict[str, str]) -> list[dict[str, Any]] | None:
    """Return a function's `Layers` from its metadata (None when it has none)."""
    raw = meta.get("Layers")
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, list) and value else None
