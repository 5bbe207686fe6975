#!/usr/bin/env bash
# Set up everything on a fresh machine, then run the example ML-inference API on 127.0.0.1,
# send it a little traffic and print where its dashboard is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PORT=${PORT:-5000}
BASE="http://127.0.0.1:$PORT"
# The dashboard is behind HTTP Basic auth (user admin); a password is made up for this run
# unless you set one.
if [ -z "${ROUTETIMER_DASHBOARD_PASSWORD:-}" ]; then
  ROUTETIMER_DASHBOARD_PASSWORD=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(18))')
fi
export ROUTETIMER_DASHBOARD_PASSWORD

.venv/bin/flask --app example_app run --host 127.0.0.1 --port "$PORT" "$@" &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT INT TERM

# Wait (at most ~10 s) until the server answers /health.
up=no
for _ in $(seq 50); do
  if ! kill -0 "$server" 2>/dev/null; then
    echo "The example app did not start (is port $PORT in use? try PORT=5001)." >&2
    exit 1
  fi
  if .venv/bin/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)" \
      "$BASE/health" 2>/dev/null; then
    up=yes
    break
  fi
  sleep 0.2
done
if [ "$up" != yes ]; then
  echo "The example app did not answer $BASE/health within 10 s." >&2
  exit 1
fi

# One round of traffic in the background, so the dashboard has something to show.
.venv/bin/python -m example_app.load --rounds 3 --port "$PORT" >/dev/null &

cat <<MSG

  Example app on $BASE — each request is printed below as a span, with its timed child spans.
  Dashboard: $BASE/_routetimer/
    log in as user admin, password $ROUTETIMER_DASHBOARD_PASSWORD
    (HTTP Basic auth; set ROUTETIMER_DASHBOARD_PASSWORD to choose the password)
    from a script: curl -u "admin:$ROUTETIMER_DASHBOARD_PASSWORD" $BASE/_routetimer/api/stats
  Send more traffic from another terminal:
    .venv/bin/python -m example_app.load --port $PORT
  or one request:
    curl -X POST 127.0.0.1:$PORT/v1/predict/ -H 'Content-Type: application/json' -d '{"text": "flask is fun"}'

MSG
wait "$server"
