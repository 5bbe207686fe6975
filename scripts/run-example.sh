#!/usr/bin/env bash
# Set up everything on a fresh machine, then run the example ML-inference API on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PORT=${PORT:-5000}
cat <<MSG

  Example app on http://127.0.0.1:$PORT — in another terminal, send some traffic:
    .venv/bin/python -m example_app.load --port $PORT
  or one request:
    curl -X POST 127.0.0.1:$PORT/v1/predict/ -H 'Content-Type: application/json' -d '{"text": "flask is fun"}'
  Each request is printed below as a span, with its timed child spans.

MSG
exec .venv/bin/flask --app example_app run --host 127.0.0.1 --port "$PORT" "$@"
