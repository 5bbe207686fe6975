from flask import Flask

from flask_routetimer import RouteTimer, basic_auth

app = Flask(__name__)
app.config.update(
    ROUTETIMER_DASHBOARD=True,
    # User "ops"; the password is read from $ROUTETIMER_DASHBOARD_PASSWORD when basic_auth() runs.
    # token_auth() reads $ROUTETIMER_DASHBOARD_TOKEN; both also take the secret as an argument.
    ROUTETIMER_DASHBOARD_AUTH=basic_auth("ops"),
)
RouteTimer(app)

# curl -u "ops:$ROUTETIMER_DASHBOARD_PASSWORD" https://your.host/_routetimer/api/stats
response = app.test_client().get("/_routetimer/api/stats")
assert response.status_code == 401
assert response.headers["WWW-Authenticate"].startswith('Basic realm="flask-routetimer dashboard"')
