import asyncio

from flask import Flask
from opentelemetry import trace

from flask_routetimer import RouteTimer

app = Flask(__name__)
timer = RouteTimer(app)
tracer = trace.get_tracer(__name__)


@timer.timed  # a span named after the function: "tokenize"
def tokenize(text: str) -> list[str]:
    return text.split()


@timer.timed("model.predict")  # a span with the name you give
def predict(tokens: list[str]) -> str:
    return "positive" if len(tokens) > 2 else "neutral"


@timer.timed("embed")  # async functions get one span per call, around the await
async def embed(tokens: list[str]) -> list[float]:
    await asyncio.sleep(0)
    return [float(len(token)) for token in tokens]


@app.post("/v1/predict")
def predict_view() -> dict[str, object]:
    tokens = tokenize("flask is fun")
    with timer.timed("postprocess", attributes={"tokens": len(tokens)}):
        label = predict(tokens)
    # Plain OpenTelemetry works too: the request span is the current span.
    with tracer.start_as_current_span("audit"):
        pass
    return {"label": label, "embedding": asyncio.run(embed(tokens))}


if __name__ == "__main__":
    print(app.test_client().post("/v1/predict").json)
