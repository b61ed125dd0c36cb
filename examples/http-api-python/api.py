"""A tiny todo API routed on `rawPath`, in Lambda's function-URL (payload 2.0) shape.

Each invocation runs in a fresh sandbox, so the "database" is the seed data below plus
what the request itself brings: this shows routing and response shapes, not storage.
"""

import json

TODOS = {
    "1": {"id": "1", "title": "write a handler", "done": True},
    "2": {"id": "2", "title": "deploy it to firebox", "done": False},
}


def respond(status, body, headers=None):
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json", **(headers or {})},
        "body": json.dumps(body),
    }


def handler(event, context):
    method = event["requestContext"]["http"]["method"]
    parts = [p for p in event["rawPath"].split("/") if p][1:]  # drop "todos"
    if method == "GET" and not parts:
        done = (event.get("queryStringParameters") or {}).get("done")
        items = list(TODOS.values())
        if done is not None:
            items = [t for t in items if str(t["done"]).lower() == done.lower()]
        return respond(200, {"items": items})
    if method == "GET" and len(parts) == 1:
        todo = TODOS.get(parts[0])
        return respond(200, todo) if todo else respond(404, {"error": "no such todo"})
    if method == "POST" and not parts:
        try:
            data = json.loads(event.get("body") or "{}")
        except json.JSONDecodeError:
            return respond(400, {"error": "body must be JSON"})
        if not isinstance(data.get("title"), str):
            return respond(400, {"error": "title (a string) is required"})
        todo = {"id": str(len(TODOS) + 1), "title": data["title"], "done": False}
        return respond(201, todo, {"location": f"/todos/{todo['id']}"})
    return respond(405, {"error": f"{method} not supported on {event['rawPath']}"})
