"""Time every Flask endpoint from the outside and export the timings to OpenTelemetry."""

from ._version import __version__
from .config import ConfigError
from .dashboard_auth import basic_auth, loopback_only, token_auth
from .extension import RouteTimer
from .sdk import SdkSetup, configure_sdk
from .signals import request_timed
from .timing import RouteTiming

__all__ = [
    "ConfigError",
    "RouteTimer",
    "RouteTiming",
    "SdkSetup",
    "__version__",
    "basic_auth",
    "configure_sdk",
    "loopback_only",
    "request_timed",
    "token_auth",
]
