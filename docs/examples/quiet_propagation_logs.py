import logging
import time

from flask import Flask

from flask_routetimer import RouteTimer

#: Where OpenTelemetry's propagators log malformed trace headers, one warning each time.
PROPAGATION_LOGGERS = (
    "opentelemetry.trace.propagation.tracecontext",  # overlong traceparent / tracestate
    "opentelemetry.trace.span",  # invalid or too many tracestate members
    "opentelemetry.baggage.propagation",  # malformed or overlong baggage
)


class AtMostEvery(logging.Filter):
    """Let one record per logger through every ``seconds``; count the ones held back."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.last: dict[str, float] = {}
        self.held_back = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self.last.get(record.name, -self.seconds) < self.seconds:
            self.held_back += 1
            return False
        self.last[record.name] = now
        return True


# Either silence them (a malformed header is the client's problem; the request is still served
# and traced, as a new trace) ...
#     for name in PROPAGATION_LOGGERS:
#         logging.getLogger(name).setLevel(logging.ERROR)
# ... or keep one line a minute from each:
limit = AtMostEvery(60)
for name in PROPAGATION_LOGGERS:
    logging.getLogger(name).addFilter(limit)

app = Flask(__name__)
RouteTimer(app)
app.add_url_rule("/", "index", lambda: "ok")
client = app.test_client()
for _ in range(100):
    client.get("/", headers={"traceparent": "00-" + "a" * 600, "baggage": "bad baggage"})
assert limit.held_back >= 99  # one line per logger got through, the rest were held back
