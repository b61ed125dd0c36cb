"""Lambda's names and shapes for firebox's records: ARNs, FunctionConfiguration,
AliasConfiguration, request fields -> manifest keys (front-end layer)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import uuid
import zipfile
from datetime import UTC, datetime
from typing import Any

from firebox.runtime.artifacts import ArtifactStore
from firebox.runtime.config import NodeConfig
from firebox.runtime.errors import LambdaError
from firebox.runtime.http.lambda_errors import invalid_parameter
from firebox.runtime.storage.registry import LATEST, AliasRecord, FunctionRecord

# What `Runtime` a function deployed through the native API reports.
PYTHON_RUNTIME = "python3.14"
MODULE_RUNTIME = "provided.al2023"
# Runtimes whose code is WebAssembly (a core module on ABI v1): Lambda's OS-only runtimes.
MODULE_RUNTIMES = ("provided", "provided.al2", "provided.al2023", "wasm")
DEFAULT_PYTHON_HANDLER = "lambda_function.lambda_handler"
EPHEMERAL_STORAGE_MB = 512
# Metadata keys (manifest `metadata`) the Lambda API keeps with a function.
RESERVED_MARK = "ReservedConcurrency"
MEMORY_MARK = "MemorySize"  # what was asked for (the cap applied may be lower)
TRACING_MARK = "TracingConfig"  # JSON, as sent
STORAGE_MARK = "EphemeralStorage"  # JSON, as sent
LOGGING_MARK = "LoggingConfig"  # JSON, as sent

_ARN = re.compile(
    r"^(?:arn:(?P<partition>aws[a-zA-Z-]*):lambda:(?P<region>[a-z0-9-]+):)?"
    r"(?:(?P<account>\d{12}):function:)?(?P<name>[A-Za-z0-9_-]{1,64})"
    r"(?::(?P<qualifier>\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
)


class Names:
    """ARNs of this node's region and account, and the reverse: a FunctionName -> (name, qualifier)."""

    def __init__(self, config: NodeConfig, artifacts: ArtifactStore | None = None) -> None:
        self.region = config.region
        self.account = config.account_id
        self.artifacts = artifacts

    def code_size(self, digest: str) -> int:
        """Return the stored size of an artifact (0 when it is not on this node)."""
        if self.artifacts is None:
            return 0
        try:
            return self.artifacts.path(digest).stat().st_size
        except OSError:
            return 0

    def function_arn(self, name: str, qualifier: str | None = None) -> str:
        """Return a function's ARN, qualified by a version or alias when given."""
        arn = f"arn:aws:lambda:{self.region}:{self.account}:function:{name}"
        return f"{arn}:{qualifier}" if qualifier else arn

    def parse(self, value: str, qualifier: str | None = None) -> tuple[str, str | None]:
        """Split a FunctionName (name, name:qualifier, partial or full ARN) into (name, qualifier).

        Raises ResourceNotFoundException for an ARN of another region or account and
        InvalidParameterValueException for a malformed name or two different qualifiers.
        """
        match = _ARN.match(value)
        if match is None or (match["region"] and not match["account"]):
            raise invalid_parameter(
                f"1 validation error detected: Value '{value}' at 'functionName' failed to satisfy"
                " constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?"
                ":lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?"
                "([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
            )
        if (match["region"] and match["region"] != self.region) or (
            match["account"] and match["account"] != self.account
        ):
            raise LambdaError(
                "ResourceNotFoundException", 404, f"Function not found: {value} (this node is "
                f"region {self.region}, account {self.account})",
            )  # fmt: skip
        inline = match["qualifier"]
        if inline and qualifier and inline != qualifier:
            raise invalid_parameter(
                f"The derived qualifier from the function name does not match the specified"
                f" qualifier: {inline} vs {qualifier}."
            )
        return match["name"], inline or qualifier or None

    def not_found(self, name: str, qualifier: str | None = None) -> LambdaError:
        """Return Lambda's ResourceNotFoundException for a function (version or alias)."""
        return LambdaError(
            "ResourceNotFoundException", 404, f"Function not found: {self.function_arn(name, qualifier)}"
        )  # fmt: skip


def timestamp(seconds: float) -> str:
    """Return Lambda's LastModified form: `2024-05-01T12:00:00.000+0000`."""
    when = datetime.fromtimestamp(seconds or 0, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def revision_id(record: FunctionRecord) -> str:
    """Return a stable RevisionId for one revision of one version of a function."""
    seed = f"{record.name}|{record.version}|{record.revision}|{record.updated_at!r}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def alias_revision_id(alias: AliasRecord) -> str:
    """Return a stable RevisionId for one state of an alias."""
    seed = f"{alias.function}|{alias.name}|{alias.updated_at!r}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))


def code_sha256(code: bytes) -> str:
    """Return Lambda's CodeSha256: the base64 of the package's SHA-256."""
    return base64.b64encode(hashlib.sha256(code).digest()).decode()


def configuration(names: Names, record: FunctionRecord) -> dict[str, Any]:
    """Return Lambda's FunctionConfiguration for one version of a function."""
    config = record.config
    meta: dict[str, str] = dict(config.get("metadata") or {})
    python = record.kind == "python"
    digest = record.bundle_digest or record.digest
    qualified = record.version != LATEST
    out: dict[str, Any] = {
        "FunctionName": record.name,
        "FunctionArn": names.function_arn(record.name, record.version if qualified else None),
        "Runtime": meta.get("Runtime") or (PYTHON_RUNTIME if python else MODULE_RUNTIME),
        "Role": meta.get("Role") or f"arn:aws:iam::{names.account}:role/firebox-function",
        "Handler": config.get("handler") or meta.get("Handler") or "handle",
        "CodeSize": int(meta.get("CodeSize") or names.code_size(digest)),
        "Description": record.description,
        "Timeout": round(float(config.get("timeout", 3))),
        "MemorySize": int(meta.get(MEMORY_MARK) or config.get("memory", 128)),
        "LastModified": timestamp(record.updated_at or record.created_at),
        "CodeSha256": meta.get("CodeSha256") or base64.b64encode(bytes.fromhex(digest)).decode(),
        "Version": record.version,
        "Environment": {"Variables": dict(config.get("environment") or {})},
        "TracingConfig": _json(meta, TRACING_MARK, {"Mode": "PassThrough"}),
        "RevisionId": revision_id(record),
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": meta.get("Architectures", "x86_64").split(","),
        "EphemeralStorage": _json(meta, STORAGE_MARK, {"Size": EPHEMERAL_STORAGE_MB}),
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {
            "LogFormat": "Text",
            "LogGroup": f"/aws/lambda/{record.name}",
            **_json(meta, LOGGING_MARK, {}),
        },
    }
    try:
        layers = json.loads(meta.get("Layers") or "[]")
    except ValueError:
        layers = []
    if layers:
        out["Layers"] = layers
    return out


def _json(meta: dict[str, str], key: str, default: dict[str, Any]) -> dict[str, Any]:
    try:
        value = json.loads(meta[key]) if key in meta else default
    except ValueError:
        return default
    return value if isinstance(value, dict) else default


def alias_configuration(names: Names, alias: AliasRecord) -> dict[str, Any]:
    """Return Lambda's AliasConfiguration."""
    out: dict[str, Any] = {
        "AliasArn": names.function_arn(alias.function, alias.name),
        "Name": alias.name,
        "FunctionVersion": alias.version,
        "Description": alias.description,
        "RevisionId": alias_revision_id(alias),
    }
    if alias.routing:
        out["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.routing)}
    return out


def reserved_concurrency(record: FunctionRecord) -> int | None:
    """Return the function's reserved concurrency, or None when none was reserved."""
    meta = record.config.get("metadata") or {}
    if meta.get(RESERVED_MARK) != "true":
        return None
    return int(record.config.get("concurrency", 0))


# --- request fields ------------------------------------------------------------------


def kind_of_runtime(runtime: str | None, code: bytes | None) -> str:
    """Return the manifest runtime ("python" or "module") for a Lambda `Runtime` value.

    Without a Runtime, raw wasm is a module and a zip a Python package. Raises
    InvalidParameterValueException for runtimes firebox cannot run (nodejs, java, ...).
    """
    if runtime is None:
        return "module" if code is not None and code[:4] == b"\0asm" else "python"
    if re.fullmatch(r"python3(\.\d+)?", runtime):
        return "python"
    if runtime in MODULE_RUNTIMES:
        return "module"
    raise invalid_parameter(
        f"Value {runtime} at 'runtime' is not supported by firebox: use python3.x (any minor"
        f" version runs on the bundled CPython 3.14) or one of {', '.join(MODULE_RUNTIMES)}"
        " for a WebAssembly module"
    )


def module_code(code: bytes) -> bytes:
    """Return the wasm module in a Lambda code package: the raw bytes, or a zip's only .wasm.

    Raises InvalidParameterValueException when a zip holds no or several .wasm files.
    """
    if code[:4] == b"\0asm":
        return code
    try:
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            wasm = [i for i in archive.infolist() if i.filename.endswith(".wasm")]
            if len(wasm) != 1:
                raise invalid_parameter(
                    "a WebAssembly function's zip must hold exactly one .wasm file, found"
                    f" {len(wasm)}"
                )
            if wasm[0].file_size > 256 * 1024 * 1024:
                raise invalid_parameter("the .wasm file is larger than 256 MiB")
            return archive.read(wasm[0])
    except (zipfile.BadZipFile, OSError):
        raise invalid_parameter(
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        ) from None


def zip_file(code: Any) -> bytes:
    """Return the bytes of a `Code`/`ZipFile` member (base64 in JSON)."""
    if not isinstance(code, str):
        raise invalid_parameter("ZipFile must be the base64 of a zip file or a .wasm module")
    try:
        data = base64.b64decode(code, validate=True)
    except ValueError:
        raise invalid_parameter("ZipFile is not valid base64") from None
    if not data:
        raise invalid_parameter("ZipFile is empty")
    return data
