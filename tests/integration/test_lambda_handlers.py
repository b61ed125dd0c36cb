"""Real-world Lambda handlers, vendored as Lambda's docs say, deployed and invoked through boto3.

Each handler below is written from a pattern people deploy (API Gateway REST, SQS batch
with Powertools, requests, files in the zip and /tmp, zoneinfo, boto3 at module level,
a hyphenated module, pyyaml + jinja2 templates). Dependencies are installed the way
Lambda's documentation tells users to: `pip install --target DIR --platform
manylinux2014_x86_64 --python-version 3.12 --implementation cp --only-binary=:all:`,
from PyPI, once per test session; the zip goes to CreateFunction unchanged.
"""

from __future__ import annotations

import base64
import calendar
import io
import json
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402

from tests.conftest import Server  # noqa: E402

pytestmark = pytest.mark.slow

REGION = "us-east-1"
ACCOUNT = "000000000000"

Vendor = Callable[..., Path]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(
        tmp_path_factory.mktemp("handlers") / "data", env={"FIREBOX_PREPARE_PYTHON": "1"}
    )
    server.data_dir.mkdir(parents=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lam(node: Server) -> Any:
    creds = node.credentials
    return boto3.client(
        "lambda",
        endpoint_url=node.url,
        region_name=REGION,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=300),
    )


@pytest.fixture(scope="session")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Vendor:
    """Return `vendor(*requirements) -> folder`, pip-installed as Lambda's docs say (cached)."""
    root = tmp_path_factory.mktemp("vendored")
    done: dict[tuple[str, ...], Path] = {}

    def install(*requirements: str) -> Path:
        key = tuple(sorted(requirements))
        if key not in done:
            target = root / f"v{len(done)}"
            command = [
                sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                "--target", str(target), "--platform", "manylinux2014_x86_64",
                "--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:",
                *requirements,
            ]  # fmt: skip
            proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                pytest.skip(f"PyPI not reachable for {requirements}: {proc.stderr[-500:]}")
            done[key] = target
        return done[key]

    return install


def package(files: dict[str, str], vendored: Path | None = None) -> bytes:
    """Return a deployment zip: the handler's files at the root, next to the vendored folder."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        if vendored is not None:
            for path in sorted(vendored.rglob("*")):
                relative = path.relative_to(vendored).as_posix()
                if (
                    path.is_file()
                    and "__pycache__" not in relative
                    and not relative.startswith("bin/")
                ):
                    archive.write(path, relative)
        for name, text in files.items():
            archive.writestr(name, text)
    return out.getvalue()


def deploy(lam: Any, name: str, handler: str, code: bytes, **extra: Any) -> float:
    """Create the function through boto3; return how long CreateFunction took (seconds)."""
    started = time.perf_counter()
    lam.create_function(
        FunctionName=name, Runtime="python3.12", Role=f"arn:aws:iam::{ACCOUNT}:role/r",
        Handler=handler, Code={"ZipFile": code}, Timeout=30, MemorySize=256, **extra,
    )  # fmt: skip
    return time.perf_counter() - started


def invoke(lam: Any, name: str, event: Any, **extra: Any) -> tuple[Any, str, dict[str, Any]]:
    """Invoke with the log tail; return (payload, log text, raw response)."""
    out = lam.invoke(FunctionName=name, Payload=json.dumps(event), LogType="Tail", **extra)
    log = base64.b64decode(out.get("LogResult", "")).decode()
    return json.loads(out["Payload"].read()), log, out


# --- API Gateway REST ----------------------------------------------------------------

REST = """
import json

ITEMS = {"1": {"id": "1", "name": "lamp"}}

def _response(status, body):
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body), "isBase64Encoded": False}

def handler(event, context):
    method, item_id = event["httpMethod"], (event.get("pathParameters") or {}).get("id")
    if method == "GET" and item_id:
        item = ITEMS.get(item_id)
        return _response(200, item) if item else _response(404, {"message": "not found"})
    if method == "POST":
        body = json.loads(event["body"] or "{}")
        ITEMS[body["id"]] = body
        return _response(201, {"created": body["id"], "by": event["requestContext"]["identity"]["sourceIp"]})
    return _response(405, {"message": f"{method} not allowed"})
"""


def rest_event(method: str, path_id: str | None, body: Any = None) -> dict[str, Any]:
    return {
        "resource": "/items/{id}" if path_id else "/items", "path": f"/items/{path_id or ''}",
        "httpMethod": method, "headers": {"Content-Type": "application/json"},
        "queryStringParameters": None, "pathParameters": {"id": path_id} if path_id else None,
        "stageVariables": None, "isBase64Encoded": False,
        "requestContext": {"resourcePath": "/items", "httpMethod": method, "stage": "prod",
                           "identity": {"sourceIp": "203.0.113.9"}, "requestId": "r-1"},
        "body": json.dumps(body) if body is not None else None,
    }  # fmt: skip


def test_api_gateway_rest_handler(lam: Any) -> None:
    deploy(lam, "rest-items", "app.handler", package({"app.py": REST}))
    found, _, _ = invoke(lam, "rest-items", rest_event("GET", "1"))
    assert found["statusCode"] == 200 and json.loads(found["body"]) == {"id": "1", "name": "lamp"}
    created, _, _ = invoke(lam, "rest-items", rest_event("POST", None, {"id": "2", "name": "mug"}))
    assert created["statusCode"] == 201
    assert json.loads(created["body"]) == {"created": "2", "by": "203.0.113.9"}
    missing, _, _ = invoke(lam, "rest-items", rest_event("GET", "9"))
    assert missing["statusCode"] == 404


# --- SQS batch with Powertools' BatchProcessor and Tracer -----------------------------

SQS_BATCH = """
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

tracer = Tracer(service="orders")
logger = Logger(service="orders")
processor = BatchProcessor(event_type=EventType.SQS)

@tracer.capture_method
def record_handler(record):
    order = record.json_body
    if order["quantity"] <= 0:
        raise ValueError(f"bad quantity for {order['id']}")
    logger.info("order accepted", extra={"order": order["id"]})

@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler,
                                    processor=processor, context=context)
"""


def sqs_record(message_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": message_id, "receiptHandle": "rh-" + message_id, "body": json.dumps(body),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
                       "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1700000000001"},
        "messageAttributes": {}, "md5OfBody": "0" * 32, "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders", "awsRegion": REGION,
    }  # fmt: skip


def test_sqs_batch_partial_failure_with_powertools(
    lam: Any, vendor: Vendor, capsys: pytest.CaptureFixture[str]
) -> None:
    deps = vendor("aws-lambda-powertools[tracer]")
    code = package({"orders.py": SQS_BATCH}, deps)
    deploy_s = deploy(lam, "sqs-orders", "orders.handler", code)
    event = {"Records": [sqs_record("m1", {"id": "a", "quantity": 2}),
                         sqs_record("m2", {"id": "b", "quantity": 0}),
                         sqs_record("m3", {"id": "c", "quantity": 5})]}  # fmt: skip
    started = time.perf_counter()
    result, log, _ = invoke(lam, "sqs-orders", event)
    first_s = time.perf_counter() - started
    assert result == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    accepted = [line for line in lines if line.get("message") == "order accepted"]
    assert [line["order"] for line in accepted] == ["a", "c"]
    assert {line["cold_start"] for line in accepted} == {True}  # a fresh instance's first call
    assert accepted[0]["function_name"] == "sqs-orders"
    again, _, _ = invoke(lam, "sqs-orders", event)
    assert again == result
    with capsys.disabled():
        print(f"\n[powertools] deploy {deploy_s:.2f} s, first invocation {first_s:.2f} s")


# --- requests imported, never called ------------------------------------------------

REQUESTS = """
import os
import certifi
import requests

SESSION = requests.Session()

def handler(event, context):
    return {"requests": requests.__version__, "ca_bundle": os.path.exists(certifi.where()),
            "adapters": sorted(SESSION.adapters)}
"""


def test_requests_imported_but_not_called(lam: Any, vendor: Vendor) -> None:
    deploy(lam, "uses-requests", "app.handler", package({"app.py": REQUESTS}, vendor("requests")))
    result, _, _ = invoke(lam, "uses-requests", {})
    assert result["ca_bundle"] is True
    assert result["adapters"] == ["http://", "https://"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", result["requests"])


# --- a JSON file shipped in the zip, a report written to /tmp -------------------------

REPORT = """
import csv, json, os

HERE = os.path.dirname(os.path.abspath(__file__))

def handler(event, context):
    before = os.listdir("/tmp")
    with open(os.path.join(HERE, "data", "prices.json")) as f:
        prices = json.load(f)
    path = "/tmp/report.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        for sku in sorted(prices):
            writer.writerow([sku, prices[sku] * event["quantity"]])
    with open(path) as f:
        rows = list(csv.reader(f))
    return {"cwd": os.getcwd(), "tmp_before": before, "rows": rows,
            "listing": sorted(os.listdir(os.path.join(HERE, "data"))),
            "exists": os.path.exists(os.path.join(HERE, "data", "prices.json"))}
"""


def test_reads_a_file_from_the_zip_and_writes_tmp(lam: Any) -> None:
    files = {"report.py": REPORT, "data/prices.json": json.dumps({"b": 2.5, "a": 1})}
    deploy(lam, "report", "report.handler", package(files))
    for _ in range(2):  # every fresh instance starts with an empty /tmp
        result, _, _ = invoke(lam, "report", {"quantity": 4})
        assert result == {"cwd": "/var/task", "tmp_before": [], "rows": [["a", "4"], ["b", "10.0"]],
                          "listing": ["prices.json"], "exists": True}  # fmt: skip


# --- zoneinfo ---------------------------------------------------------------------

ZONES = """
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

def handler(event, context):
    at = datetime.fromisoformat(event["utc"]).replace(tzinfo=timezone.utc)
    local = at.astimezone(ZoneInfo("America/Sao_Paulo"))
    return {"local": local.strftime("%Y-%m-%d %H:%M %Z"), "offset": local.isoformat()[-6:]}
"""


def test_sao_paulo_time_with_zoneinfo(lam: Any) -> None:
    deploy(lam, "zones", "zones.handler", package({"zones.py": ZONES}))
    result, _, _ = invoke(lam, "zones", {"utc": "2024-07-01T15:30:00"})
    assert result == {"local": "2024-07-01 12:30 -03", "offset": "-03:00"}


# --- boto3 client at module level -------------------------------------------------------

BOTO3 = """
import os
import boto3

s3 = boto3.client("s3")
table = boto3.resource("dynamodb").Table(os.environ.get("TABLE", "orders"))

def handler(event, context):
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "reports", "Key": "a.csv"},
                                    ExpiresIn=60)
    return {"boto3": boto3.__version__, "region": s3.meta.region_name, "table": table.name,
            "url_host": url.split("/")[2], "signed": "Signature=" in url,
            "from": os.path.dirname(boto3.__file__)}
"""


def test_boto3_client_built_at_module_level(lam: Any) -> None:
    deploy(lam, "with-boto3", "app.handler", package({"app.py": BOTO3}))
    result, _, _ = invoke(lam, "with-boto3", {})
    assert result["region"] == REGION and result["table"] == "orders"
    # Clients go to the node's own S3 API, as functions see it (AWS_ENDPOINT_URL).
    assert result["url_host"] == "aws.firebox.internal" and result["signed"] is True
    assert result["boto3"] == boto3.__version__  # the runtime's own, from the layer


def test_vendored_boto3_wins_over_the_runtimes(lam: Any, vendor: Vendor) -> None:
    deps = vendor("boto3==1.35.99")
    deploy(lam, "own-boto3", "app.handler", package({"app.py": BOTO3}, deps))
    result, _, _ = invoke(lam, "own-boto3", {})
    assert result["boto3"] == "1.35.99" and result["from"] == "/var/task/boto3"


# --- a hyphenated module name -----------------------------------------------------------

AUTO_CONFIRM = """
def lambda_handler(event, context):
    if event["triggerSource"] == "PreSignUp_SignUp":
        event["response"]["autoConfirmUser"] = True
        event["response"]["autoVerifyEmail"] = "email" in event["request"]["userAttributes"]
    return event
"""


def test_hyphenated_module_name(lam: Any) -> None:
    deploy(
        lam,
        "auto-confirm",
        "auto-confirm.lambda_handler",
        package({"auto-confirm.py": AUTO_CONFIRM}),
    )
    event = {"triggerSource": "PreSignUp_SignUp", "userName": "ada",
             "request": {"userAttributes": {"email": "ada@example.com"}}, "response": {}}  # fmt: skip
    result, _, _ = invoke(lam, "auto-confirm", event)
    assert result["response"] == {"autoConfirmUser": True, "autoVerifyEmail": True}


# --- pyyaml and jinja2 templates from the zip ---------------------------------------------

TEMPLATES = """
import os
import yaml
from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = os.path.dirname(__file__)
CONFIG = yaml.safe_load(open(os.path.join(HERE, "config.yaml")))
ENV = Environment(loader=FileSystemLoader(os.path.join(HERE, "templates")),
                  autoescape=select_autoescape())

def handler(event, context):
    html = ENV.get_template("welcome.html").render(name=event["name"], **CONFIG)
    return {"html": html.strip(), "libyaml": yaml.__with_libyaml__}
"""


def test_pyyaml_and_jinja2_templates(lam: Any, vendor: Vendor) -> None:
    files = {
        "mail.py": TEMPLATES,
        "config.yaml": "product: Firebox\nfeatures:\n  - fast\n  - small\n",
        "templates/welcome.html": (
            "<h1>Welcome to {{ product }}, {{ name }}</h1>"
            "{% for f in features %}<li>{{ f }}</li>{% endfor %}\n"
        ),
    }
    deploy(lam, "templates", "mail.handler", package(files, vendor("pyyaml", "jinja2")))
    result, _, _ = invoke(lam, "templates", {"name": "<Ada>"})
    assert result == {
        "html": "<h1>Welcome to Firebox, &lt;Ada&gt;</h1><li>fast</li><li>small</li>",
        "libyaml": False,  # the native accelerator was dropped at deploy
    }


# --- isolation: fresh by default, Lambda's reused environments on request -----------------

COUNTER = """
from aws_lambda_powertools import Logger

logger = Logger(service="count")
CALLS = 0

@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    global CALLS
    CALLS += 1
    logger.info("counted")
    return CALLS
"""


def test_isolation_tag_picks_reused_environments(lam: Any, vendor: Vendor) -> None:
    code = package({"app.py": COUNTER}, vendor("aws-lambda-powertools"))
    deploy(lam, "count-fresh", "app.handler", code)
    deploy(lam, "count-reuse", "app.handler", code, Tags={"firebox:isolation": "reuse"})
    fresh = [invoke(lam, "count-fresh", {}) for _ in range(3)]
    assert [payload for payload, _, _ in fresh] == [1, 1, 1]
    reuse = [invoke(lam, "count-reuse", {}) for _ in range(4)]
    counts = [payload for payload, _, _ in reuse]
    assert max(counts) >= 2  # an environment served more than one call

    def cold_start(log: str) -> bool:
        line = next(line for line in log.splitlines() if '"counted"' in line)
        return bool(json.loads(line)["cold_start"])

    # Powertools' cold_start is true exactly on an environment's first call.
    assert [cold_start(log) for _, log, _ in reuse] == [count == 1 for count in counts]
    assert all(cold_start(log) for _, log, _ in fresh)


# --- context, environment and log lines against awslambdaric -------------------------------

CONTEXT = """
import logging
import os

logging.getLogger().setLevel(logging.INFO)

def handler(event, context):
    logging.info("context check %s", event.get("n"))
    if event.get("fail"):
        return {}["missing-" + event["fail"]]
    cc = context.client_context
    return {
        "attrs": {name: getattr(context, name) for name in (
            "aws_request_id", "log_group_name", "log_stream_name", "function_name",
            "memory_limit_in_mb", "function_version", "invoked_function_arn", "tenant_id")},
        "client_context": {"custom": cc.custom, "env": cc.env,
                           "client": {k: getattr(cc.client, k) for k in (
                               "installation_id", "app_title", "app_version_name",
                               "app_version_code", "app_package_name")}},
        "identity": [context.identity.cognito_identity_id, context.identity.cognito_identity_pool_id],
        "repr": repr(context),
        "remaining": context.get_remaining_time_in_millis(),
        "env": dict(os.environ),
    }
"""

#: Variables Lambda's Python runtime defines, from "Defined runtime environment variables".
LAMBDA_VARIABLES = (
    "_HANDLER", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
    # Credentials as Lambda gives SnapStart functions: a container-credentials endpoint
    # (runtime/host/aws.py), not AWS_ACCESS_KEY_ID / _SECRET_ACCESS_KEY / _SESSION_TOKEN.
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "LANG", "PATH",
    "LD_LIBRARY_PATH", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "PYTHONPATH", "TZ",
)  # fmt: skip


@pytest.fixture(scope="session")
def awslambdaric(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Lambda's runtime interface client, pip-installed (a binary wheel) for this interpreter."""
    target = tmp_path_factory.mktemp("ric")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", "--target", str(target), "awslambdaric"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"awslambdaric cannot be installed here: {proc.stderr[-500:]}")
    sys.path.insert(0, str(target))
    try:
        import awslambdaric.bootstrap
        import awslambdaric.lambda_context
    finally:
        sys.path.remove(str(target))
    return awslambdaric


def test_context_environment_and_logs_match_awslambdaric(
    lam: Any, awslambdaric: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(lam, "ctx", "ctx.handler", package({"ctx.py": CONTEXT}))
    version = lam.publish_version(FunctionName="ctx")["Version"]
    lam.create_alias(FunctionName="ctx", Name="live", FunctionVersion=version)
    client_context = {
        "custom": {"tenant": "acme"}, "env": {"platform": "web"},
        "client": {"installation_id": "i-1", "app_title": "Shop", "app_version_name": "1.2",
                   "app_version_code": "12", "app_package_name": "com.example.shop"},
    }  # fmt: skip
    encoded = base64.b64encode(json.dumps(client_context).encode()).decode()
    result, log, _ = invoke(lam, "ctx:live", {"n": 1}, ClientContext=encoded)
    attrs, env = result["attrs"], result["env"]

    # The same inputs through awslambdaric's LambdaContext, which reads its env variables.
    for name in ("AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
                 "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                 "AWS_LAMBDA_FUNCTION_VERSION"):  # fmt: skip
        monkeypatch.setenv(name, env[name])
    reference = awslambdaric.lambda_context.LambdaContext(
        attrs["aws_request_id"], client_context, None, int(time.time() * 1000) + 30_000,
        attrs["invoked_function_arn"], None,
    )  # fmt: skip
    for name, value in attrs.items():
        assert value == getattr(reference, name), name
    assert attrs["invoked_function_arn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ctx:live"
    assert attrs["function_version"] == version and attrs["memory_limit_in_mb"] == "256"
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[\d+\][0-9a-f]{32}", attrs["log_stream_name"])
    ref_cc = reference.client_context
    assert result["client_context"] == {
        "custom": ref_cc.custom, "env": ref_cc.env,
        "client": {k: getattr(ref_cc.client, k) for k in result["client_context"]["client"]},
    }  # fmt: skip
    assert (
        result["identity"]
        == [None, None]
        == [reference.identity.cognito_identity_id, reference.identity.cognito_identity_pool_id]
    )
    assert result["repr"] == repr(reference)
    assert 0 < result["remaining"] <= 30_000

    for name in LAMBDA_VARIABLES:
        assert env.get(name), name
    assert re.fullmatch(r"AWS_Lambda_python3\.\d+", env["AWS_EXECUTION_ENV"])
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == REGION
    assert env["LAMBDA_TASK_ROOT"] == "/var/task" and env["TZ"] == ":UTC"

    # A logging line, formatted by awslambdaric's own handler from the same record.
    line = next(line for line in log.splitlines() if "context check 1" in line)
    lines: list[str] = []
    sink = type("Sink", (), {"log": lambda self, msg, frame_type=None: lines.append(msg)})()
    bootstrap = awslambdaric.bootstrap
    root = __import__("logging").getLogger()
    before = list(root.handlers)
    bootstrap._setup_logging(None, None, sink)
    handler_ = next(h for h in root.handlers if h not in before)
    try:
        stamp = line.split("\t")[1]
        created = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        record = __import__("logging").LogRecord(
            "root", 20, "ctx.py", 1, "context check %s", (1,), None
        )
        record.created, record.msecs = created, int(stamp[20:23])
        monkeypatch.setattr(bootstrap, "_GLOBAL_AWS_REQUEST_ID", attrs["aws_request_id"])
        handler_.handle(record)
    finally:
        root.removeHandler(handler_)
    assert line + "\n" == lines[0]

    # An unhandled error: the response is Lambda's error shape, the log record awslambdaric's.
    out = lam.invoke(FunctionName="ctx:live", Payload=json.dumps({"fail": "x"}), LogType="Tail")
    assert out["FunctionError"] == "Unhandled"
    error = json.loads(out["Payload"].read())
    assert (error["errorType"], error["errorMessage"]) == ("KeyError", "'missing-x'")
    assert error["requestId"] and error["stackTrace"]
    errors: list[str] = []
    error_sink = type(
        "Sink", (), {"log_error": lambda self, ls: errors.append("\r".join(ls) + "\n")}
    )()
    bootstrap.log_error(error, error_sink)
    tail = base64.b64decode(out["LogResult"]).decode()
    assert errors[0] in tail
    assert errors[0].startswith(
        "[ERROR] KeyError: 'missing-x'\rTraceback (most recent call last):\r"
    )
