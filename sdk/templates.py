"""The function folders `firebox new` writes: one runnable template per kind (SDK layer)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from firebox.sdk import event_samples
from firebox.sdk.cli_context import CommandFailed

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

PYTHON_TOML = """\
# {name}: a Python function (a Lambda handler). Reference: docs/manifest.md
name = "{name}"
runtime = "python3.14"
handler = "app.handler"
memory = 128       # MiB
timeout = 3.0      # seconds
"""

PYTHON_APP = '''\
"""{name}: the handler firebox calls with each event (Lambda's Python model)."""

import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    name = event.get("name", "world")
    logger.info("greeting %s", name)
    return {{"message": f"Hello, {{name}}!", "request_id": context.aws_request_id}}
'''

HTTP_TOML = (
    PYTHON_TOML
    + """
# Serve HTTP requests on /{name} and below (the event is a function-URL request).
[[triggers]]
type = "http"
route = "/{name}/*"
methods = ["GET", "POST"]
"""
)

HTTP_APP = '''\
"""{name}: an HTTP handler (function-URL / payload format 2.0 events)."""

import json


def handler(event, context):
    method = event["requestContext"]["http"]["method"]
    query = event.get("queryStringParameters") or {{}}
    body = json.loads(event.get("body") or "{{}}") if method == "POST" else None
    return {{
        "statusCode": 200,
        "headers": {{"content-type": "application/json"}},
        "body": json.dumps({{"path": event["rawPath"], "query": query, "received": body}}),
    }}
'''

SQS_APP = '''\
"""{name}: consumes batches of queue messages, reporting the ones that failed."""

import json
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    failures = []
    for record in event["Records"]:
        try:
            job = json.loads(record["body"])
            logger.info("processing %s", job)
        except ValueError:
            logger.error("not JSON: %r", record["body"])
            failures.append({{"itemIdentifier": record["messageId"]}})
    # With `--report-failures` on the mapping, only these messages are retried.
    return {{"batchItemFailures": failures}}
'''

WAT_TOML = """\
# {name}: a WebAssembly text module on ABI v1 (docs/abi.md).
name = "{name}"
module = "handler.wat"
memory = 16        # MiB
timeout = 1.0      # seconds
"""

WAT_MODULE = """\
;; {name}: `handle` answers {{"ok":true}} whatever the event, and logs a line (ABI v1).
(module
  (import "firebox" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{{\\"ok\\":true}}")   ;; 11 bytes at 16
  (data (i32.const 32) "handled")          ;; 7 bytes at 32
  (global $heap (mut i32) (i32.const 1024))
  (func (export "firebox_alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.get $ptr))
  (func (export "handle") (param $ptr i32) (param $len i32) (result i64)
    (call $log (i32.const 32) (i32.const 7))
    (i64.or (i64.shl (i64.const 16) (i64.const 32)) (i64.const 11))))
"""

TEMPLATES: dict[str, dict[str, str]] = {
    "python": {"firebox.toml": PYTHON_TOML, "app.py": PYTHON_APP},
    "python-http": {"firebox.toml": HTTP_TOML, "app.py": HTTP_APP},
    "python-sqs": {"firebox.toml": PYTHON_TOML, "app.py": SQS_APP},
    "wat": {"firebox.toml": WAT_TOML, "handler.wat": WAT_MODULE},
}

#: The file `firebox dev` invokes after each deploy, and `firebox invoke --data @event.json` reads.
EVENT_FILE = "event.json"


def _event(template: str, name: str) -> object:
    if template == "python-http":
        return event_samples.http('{"hello": "firebox"}', "POST", f"/{name}/items")
    if template == "python-sqs":
        return event_samples.sqs('{"job": 1}', "POST", "/")
    return {"name": "firebox"}


def write(folder: Path, template: str) -> list[Path]:
    """Write a new function folder from `template`; returns the files written.

    Raises CommandFailed if the folder exists and is not empty or the name is invalid.
    """
    name = folder.name
    if not NAME_RE.match(name):
        raise CommandFailed(
            f"{name!r} is not a function name: use 1-64 letters, digits, '-' or '_'"
        )
    if folder.exists() and any(folder.iterdir()):
        raise CommandFailed(f"{folder} already exists and is not empty")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, text in TEMPLATES[template].items():
        path = folder / filename
        path.write_text(text.format(name=name))
        written.append(path)
    event = folder / EVENT_FILE
    event.write_text(json.dumps(_event(template, name), indent=2) + "\n")
    written.append(event)
    return written
