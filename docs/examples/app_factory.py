"""An app factory: the extension object is created once, bound to each app in create_app()."""

from typing import Any, Optional

from flask import Blueprint, Flask

from flask_routetimer import RouteTimer

timer = RouteTimer()  # in your extensions.py; no app yet

api = Blueprint("api", __name__, url_prefix="/api")


@api.get("/items/<int:item_id>")
def get_item(item_id: int) -> dict[str, int]:
    return {"id": item_id}


def create_app(config: Optional[dict[str, Any]] = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})  # ROUTETIMER_* keys are read by init_app, so set them first
    timer.init_app(app)
    app.register_blueprint(api)
    return app


if __name__ == "__main__":
    app = create_app({"ROUTETIMER_SERVER_TIMING": True})
    response = app.test_client().get("/api/items/7")
    print(response.headers["Server-Timing"])  # app;dur=0.4
    print(timer.stats(app).routes[0].route)  # /api/items/<int:item_id>
