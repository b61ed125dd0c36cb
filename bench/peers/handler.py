"""The process-per-invocation peer's handler: one process per request (bench peer).

`python handler.py` reads the request's JSON body on stdin and prints
`{"wrapped": <body>, "by": "process"}`, the same work as the echo-wat guest, then exits:
an interpreter start per invocation, as a container-style cold start pays.
"""

import json
import sys


def main() -> None:
    """Wrap stdin's JSON and print it."""
    body = json.load(sys.stdin)
    sys.stdout.write(json.dumps({"wrapped": body, "by": "process"}))


if __name__ == "__main__":
    main()
