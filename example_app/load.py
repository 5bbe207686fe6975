"""Send a small, bounded mix of requests to a running example app (default 127.0.0.1:5000)."""

from __future__ import annotations

import argparse
import http.client
import json

#: One round of traffic: both predict routes, a stream, a failure, a 400, a 404, the health check.
PLAN: list[tuple[str, str, object]] = [
    ("POST", "/v1/predict/", {"text": "flask makes small services easy"}),
    ("POST", "/v2/predict/", {"text": "Timing, from the OUTSIDE!"}),
    ("GET", "/v1/stream?text=one+two+three", None),
    ("GET", "/v1/fail", None),
    ("POST", "/v1/predict/", {}),
    ("GET", "/no/such/page", None),
    ("GET", "/health", None),
]


def send(conn: http.client.HTTPConnection, method: str, path: str, body: object = None) -> int:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    conn = http.client.HTTPConnection(args.host, args.port, timeout=10)
    try:
        for _ in range(max(1, min(args.rounds, 1000))):
            for method, path, body in PLAN:
                print(method, path, send(conn, method, path, body))
    finally:
        conn.close()


if __name__ == "__main__":
    main()
