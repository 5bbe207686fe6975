"""gunicorn settings for the real-server tests: flush each worker's spans and metrics at exit."""

import sys

# gunicorn >= 25.1 opens a control socket at a fixed path; parallel test runs must not share it.
control_socket_disable = True
graceful_timeout = 15
timeout = 30
loglevel = "info"  # "Listening at: ..." tells the tests the port


def worker_exit(server, worker):
    """Runs in the worker after its last request: flush spans, dump metrics and RSS."""
    module = sys.modules.get("loadapp")
    if module is not None:
        module.shutdown()
