"""Helpers for tests and benchmarks that run the server in a subprocess."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STARTUP_SECONDS = 120


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Terminate the process (kill it if it lingers for 10 s) and close its pipes."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextmanager
def running_server(*args: str, env: dict[str, str] | None = None) -> Iterator[int]:
    """`python -m server *args` on a free port; yields the port once GET /health answers 200.

    A server that exits or is not up within STARTUP_SECONDS fails the test with its stderr.
    """
    port = free_port()
    command = [
        sys.executable, "-m", "server", "--port", str(port),
        "--no-access-log", "--log-level", "warning", *args,
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not _healthy(port):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, (
                f"the server did not start within {STARTUP_SECONDS} s"
            )
            time.sleep(0.05)
        yield port
    finally:
        stop(process)
