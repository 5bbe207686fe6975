from flask import Flask
from flask.views import MethodView

from flask_routetimer import RouteTimer

app = Flask(__name__)
# 1. By path, for paths you do not own (regexes searched in the path inside the app):
app.config["ROUTETIMER_EXCLUDED_URLS"] = ["^/metrics$", "^/static/"]
timer = RouteTimer(app)


# 2. By view, next to the code: exempt returns the function (or class) unchanged.
@app.get("/health")
@timer.exempt
def health() -> str:
    return "ok"


@timer.exempt
class ReadyView(MethodView):
    def get(self) -> str:
        return "ready"


app.add_url_rule("/ready", view_func=ReadyView.as_view("ready"))


@app.get("/metrics")
def metrics() -> str:
    return "# served by your metrics exporter"


if __name__ == "__main__":
    client = app.test_client()
    for path in ("/health", "/ready", "/metrics"):
        assert client.get(path).status_code == 200
    assert timer.stats(app).routes == ()  # none of them was timed
