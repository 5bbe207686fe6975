from flask import Flask

from flask_routetimer import RouteTimer, RouteTiming, request_timed

app = Flask(__name__)
timer = RouteTimer(app)  # replaces @timeit on every route: remove those decorators


@app.post("/v1/predict/")
def predict_v1() -> str:
    return "v1"


@app.post("/v2/predict/")
def predict_v2() -> str:
    return "v2"


@request_timed.connect_via(app)
def log_timing(sender: Flask, timing: RouteTiming, **extra: object) -> None:
    # What @timeit printed, for every route, 404s and errors included.
    print(f"{timing.endpoint} took {timing.duration * 1000:.1f} ms ({timing.status_code})")


if __name__ == "__main__":
    client = app.test_client()
    client.post("/v1/predict/")  # predict_v1 took 0.2 ms (200)
    client.post("/v2/predict/")  # predict_v2 took 0.1 ms (200)
