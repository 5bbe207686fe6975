from flask import Flask

from flask_routetimer import RouteTimer

app = Flask(__name__)
timer = RouteTimer(app)  # spans and metrics go to the global OpenTelemetry providers


@app.get("/hello/<name>")
def hello(name: str) -> str:
    with timer.timed("greeting"):  # an optional child span for inner work
        return f"Hello, {name}!"
