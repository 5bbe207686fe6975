"""Small helpers for tests that start a real server as a subprocess on 127.0.0.1."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from typing import Any


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def output_around_one_get(
    args: list[str], port: int, path: str, expected: bytes, timeout: float = 30, **popen: Any
) -> str:
    """Start ``args``, GET ``path`` until it answers ``expected`` (bounded by ``timeout``), stop
    the server with SIGTERM and return everything it printed (stdout and stderr together)."""
    server = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                url = f"http://127.0.0.1:{port}{path}"
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.read() == expected
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGTERM)  # a graceful stop: servers flush their exporters
        output, _ = server.communicate(timeout=60)
    return output
