from flask import Flask

from flask_routetimer import RouteTimer

app = Flask(__name__)
app.config["ROUTETIMER_SERVER_TIMING"] = True  # default None: on only while app.debug is on
RouteTimer(app)


@app.get("/")
def index() -> str:
    return "ok"


if __name__ == "__main__":
    response = app.test_client().get("/")
    print(response.headers["Server-Timing"])  # app;dur=0.3 -- shown in devtools as "app"
