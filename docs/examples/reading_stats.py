from flask import Flask

from flask_routetimer import RouteTimer

app = Flask(__name__)
timer = RouteTimer(app)


@app.get("/items/<int:item_id>")
def item(item_id: int) -> str:
    return str(item_id)


@app.get("/_stats")
@timer.exempt  # reading the statistics is not itself timed
def stats() -> dict[str, object]:
    return timer.stats().to_dict()  # JSON-ready: seconds, slowest total first


def report(top: int = 5) -> str:
    """One line per route: count, errors and latency quantiles in milliseconds."""
    lines = []
    for row in timer.stats(app).routes[:top]:
        lines.append(
            f"{row.method:6} {row.route or '(no route)':30} n={row.count:<5} "
            f"err={row.error_rate:.1%} p50={row.p50 * 1e3:.1f}ms p99={row.p99 * 1e3:.1f}ms"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    client = app.test_client()
    for item_id in range(20):
        client.get(f"/items/{item_id}")
    print(report())
    assert client.get("/_stats").json["routes"][0]["count"] == 20
    timer.reset_stats(app)
