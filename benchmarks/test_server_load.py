"""Load test: a real uvicorn server on 127.0.0.1, POST /predict with a 280x280 PNG on the CNN.

SCRATCHNET_LOAD_MODEL=linear tests the linear model instead; SCRATCHNET_LOAD_WORKERS=1,2 (the
default) lists the uvicorn worker counts to test; SCRATCHNET_LOAD_CLIENTS (8) sets the number of
concurrent clients of the throughput phase; SCRATCHNET_LOAD_CLIENT=socket replaces http.client
(the default) by a bare socket client (see SocketConnection).

    .venv/bin/pytest benchmarks/test_server_load.py -m slow -s

Marked slow (deselected by default). Two phases against one server process:

- latency: one client, requests back to back: p50/p99 of a single request's round trip;
- throughput: CLIENTS concurrent clients sharing REQUESTS requests: requests/s, p50/p99.

The clients are threads using http.client with keep-alive connections and a pre-built
multipart body, so that the client side costs as little CPU as possible: on a 2-core machine
client and server compete for the same cores. http.client still parses every answer's headers
with the email package; SocketConnection sends the pre-built request's bytes and reads the
answer by its Content-Length, which spares the cores that work and leaves the server's. Every
request is bounded by a timeout and the number of requests is fixed, so the test stops by
itself.

Targets (issue 16): p50 2 ms or less with one client, 600 requests/s or more with 2 workers and
8 clients. The test asserts that no request
failed; it prints the figures and records them in pytest-benchmark's extra_info for
`make bench`.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.cold_start import drawing_png, multipart
from tests.processes import running_server

REQUESTS = 2000
LATENCY_REQUESTS = 300
CLIENTS = int(os.environ.get("SCRATCHNET_LOAD_CLIENTS", "8"))
WARMUP_REQUESTS = 50
TIMEOUT = 30.0
MODEL = os.environ.get("SCRATCHNET_LOAD_MODEL", "cnn")  # or "linear"
# One worker, and as many as the machine has cores (2 here): with --workers the listening socket
# is uvicorn's own, which once made every keep-alive request wait 40 ms (see server/__main__.py).
WORKERS = [int(w) for w in os.environ.get("SCRATCHNET_LOAD_WORKERS", "1,2").split(",")]
CLIENT = os.environ.get("SCRATCHNET_LOAD_CLIENT", "http.client")  # or "socket"
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)

pytestmark = pytest.mark.slow


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scratchnet.mnist.models import MODELS, PRETRAINED_DIR

    if (PRETRAINED_DIR / f"{MODEL}.npz").exists():
        return PRETRAINED_DIR
    from scratchnet.checkpoint import save_checkpoint

    try:
        model = MODELS[MODEL]()
    except Exception as exc:
        pytest.skip(f"{MODEL} cannot be built yet: {exc}")
    directory = tmp_path_factory.mktemp("models")
    meta = {"architecture": {"name": MODEL, "kwargs": {}}, "metrics": {}, "config": {}}
    save_checkpoint(directory / f"{MODEL}.npz", model.state_dict(), meta)
    return directory


@pytest.fixture(scope="module", params=WORKERS, ids=lambda workers: f"workers={workers}")
def server(model_dir: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, int, int]]:
    with running_server(
        "--model-dir", str(model_dir), "--workers", str(request.param)
    ) as port:  # fmt: skip
        yield "127.0.0.1", port, request.param


class HTTPClientConnection:
    """POST /predict over http.client's keep-alive connection."""

    def __init__(self, address: tuple[str, int], body: bytes, content_type: str) -> None:
        self.connection = http.client.HTTPConnection(*address, timeout=TIMEOUT)
        self.body = body
        self.headers = {"Content-Type": content_type, "Content-Length": str(len(body))}

    def post(self) -> tuple[int, bytes]:
        self.connection.request("POST", "/predict", body=self.body, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


class SocketConnection:
    """POST /predict as the request's pre-built bytes on a keep-alive socket; the answer is
    read up to its Content-Length (the server sends one with every answer) and only its
    status line and that header are looked at."""

    def __init__(self, address: tuple[str, int], body: bytes, content_type: str) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = (
            f"POST /predict HTTP/1.1\r\nHost: {address[0]}:{address[1]}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.request = head.encode() + body
        self.buffer = b""

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += data

    def post(self) -> tuple[int, bytes]:
        self.sock.sendall(self.request)
        while b"\r\n\r\n" not in self.buffer:
            self._receive()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = CONTENT_LENGTH.search(head)
        if length is None:
            raise ConnectionError(f"an answer without Content-Length: {head[:200]!r}")
        while len(self.buffer) < int(length.group(1)):
            self._receive()
        payload = self.buffer[: int(length.group(1))]
        self.buffer = self.buffer[int(length.group(1)) :]
        return int(head.split(b" ", 2)[1]), payload

    def close(self) -> None:
        self.sock.close()


CONNECTIONS = {"http.client": HTTPClientConnection, "socket": SocketConnection}


def run_clients(
    address: tuple[str, int], body: bytes, content_type: str, total: int, clients: int
) -> tuple[list[float], list[str], float]:
    """`total` POST /predict split over `clients` threads; (latencies in s, errors, wall s)."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))
    connect = CONNECTIONS[CLIENT]

    def client() -> None:
        connection = connect(address, body, content_type)
        mine: list[float] = []
        try:
            while True:
                with lock:
                    if next(counter, None) is None:
                        break
                start = time.perf_counter()
                try:
                    status, payload = connection.post()
                except OSError as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                    connection.close()
                    connection = connect(address, body, content_type)
                    continue
                mine.append(time.perf_counter() - start)
                if status != 200 or not payload.startswith(b'{"predicted_class":'):
                    with lock:
                        errors.append(f"{status}: {payload[:200]!r}")
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * total)
    return latencies, errors, time.perf_counter() - start


def summary(latencies: list[float], wall: float) -> dict[str, float]:
    ms = [latency * 1000 for latency in latencies]
    return {
        "requests": len(ms),
        "requests_per_s": len(ms) / wall,
        "p50_ms": statistics.median(ms),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms),
    }


def test_server_load(server: tuple[str, int, int], benchmark) -> None:
    """No request fails, one client or several; prints req/s and p50/p99."""
    host, port, workers = server
    address = (host, port)
    body, content_type = multipart({"model_type": MODEL}, drawing_png())
    _, errors, _ = run_clients(address, body, content_type, WARMUP_REQUESTS, 1)
    assert not errors, errors[:5]

    results: dict[str, dict[str, float]] = {}

    def load() -> None:
        latencies, errors, wall = run_clients(address, body, content_type, LATENCY_REQUESTS, 1)
        assert not errors, errors[:5]
        results["latency"] = summary(latencies, wall)
        latencies, errors, wall = run_clients(address, body, content_type, REQUESTS, CLIENTS)
        assert not errors, f"{len(errors)} failed requests, e.g. {errors[:5]}"
        assert len(latencies) == REQUESTS
        results["throughput"] = summary(latencies, wall)

    benchmark.pedantic(load, rounds=1, iterations=1)

    for phase, figures in results.items():
        clients = 1 if phase == "latency" else CLIENTS
        print(
            f"\n{MODEL}, {workers} worker(s), {phase}: {clients} {CLIENT} client(s), "
            f"{figures['requests']} requests: {figures['requests_per_s']:.0f} req/s, "
            f"p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} ms, "
            f"max {figures['max_ms']:.2f} ms"
        )
        for key, value in figures.items():
            benchmark.extra_info[f"{phase}_{key}"] = round(value, 3)
        benchmark.extra_info["workers"] = workers
        benchmark.extra_info["client"] = CLIENT
