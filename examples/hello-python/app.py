"""Say hello: the Lambda handler you already know, running in a Wasm sandbox."""

import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)


def handler(event, context):
    name = event.get("name", "world")
    logger.info("greeting %s (request %s)", name, context.aws_request_id)
    return {
        "message": f"Hello, {name}!",
        "function": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }
