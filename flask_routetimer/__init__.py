"""Time every Flask endpoint from the outside and export the timings to OpenTelemetry."""

from ._version import __version__
from .config import ConfigError
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
    "configure_sdk",
    "request_timed",
]
