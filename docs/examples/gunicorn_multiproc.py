"""gunicorn.conf.py: one view of all workers in timer.stats() and the dashboard.

Run with: gunicorn -c gunicorn_multiproc.py -w 4 myapp:app (with or without --preload)
"""

import os
import tempfile

from flask_routetimer import multiproc

# A private directory (0700) for this server's workers, unless one is given. Set here, before
# gunicorn loads the app, so init_app finds ROUTETIMER_MULTIPROC_DIR in the environment.
if not os.environ.get("ROUTETIMER_MULTIPROC_DIR"):
    os.environ["ROUTETIMER_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="routetimer-")
os.makedirs(os.environ["ROUTETIMER_MULTIPROC_DIR"], mode=0o700, exist_ok=True)

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = 3


def on_starting(server):
    # A restarted server starts from zero, not from the figures of its last run.
    multiproc.prepare_directory()


def child_exit(server, worker):
    # A worker exited or was killed: fold its files into one; its counts and traces stay.
    multiproc.mark_process_dead(worker.pid)
