"""Slow and greedy clients against a real `python -m server` (issue 11), with each HTTP parser
installed (server/protocol.py): half-sent requests are closed after the configured timeouts
while others are served, a chunk size line of 20 hex digits gets an answer, a request head over
--max-header-bytes is refused, and connections beyond --max-connections are refused."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest

from server.protocol import httptools_installed
from tests.processes import running_server

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
MAX_CONNECTIONS = 400
HALF_SENT_HEADERS = 300
HALF_SENT_BODIES = 50
MAX_HEADER_BYTES = 4096
PARSERS = ["h11", "httptools"] if httptools_installed() else ["h11"]


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture(scope="module", params=PARSERS)
def port(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[int]:
    from tests.server.conftest import save_test_models

    model_dir = tmp_path_factory.mktemp("slow-models")
    save_test_models(model_dir)
    with running_server(
        "--model-dir", str(model_dir), "--http", request.param,
        "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", str(BODY_TIMEOUT),
        "--max-connections", str(MAX_CONNECTIONS), "--max-header-bytes", str(MAX_HEADER_BYTES),
    ) as port:  # fmt: skip
        yield port


def open_sockets(port: int, count: int, data: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(data)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def read_until_closed(sock: socket.socket, received: bytearray) -> bool:
    """Read what has arrived; True once the server has closed the connection."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
            received += data
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def wait_closed(sockets: list[socket.socket], timeout: float) -> list[bytes]:
    """What each socket received before the server closed it; fails if one stays open."""
    received = [bytearray() for _ in sockets]
    open_ones = set(range(len(sockets)))
    deadline = time.monotonic() + timeout
    while open_ones and time.monotonic() < deadline:
        for i in list(open_ones):
            if read_until_closed(sockets[i], received[i]):
                open_ones.discard(i)
        time.sleep(0.05)
    for sock in sockets:
        sock.close()
    assert not open_ones, f"{len(open_ones)} of {len(sockets)} connections still open"
    return [bytes(r) for r in received]


def test_half_sent_requests_are_closed_and_others_served_meanwhile(port: int) -> None:
    heads = open_sockets(port, HALF_SENT_HEADERS, b"POST /predict HTTP/1.1\r\nHost: x\r\nX-A: ")
    body_head = (
        b"POST /predict/base64 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    bodies = open_sockets(port, HALF_SENT_BODIES, body_head + b'{"image": ')
    opened = time.monotonic()

    # Served meanwhile, while all of them are held.
    assert get(port, "/health")[0] == 200
    assert get(port, "/models")[0] == 200
    still_held = [read_until_closed(sock, bytearray()) for sock in heads + bodies]
    if time.monotonic() - opened < min(HEADER_TIMEOUT, BODY_TIMEOUT) - 0.5:
        assert not any(still_held), "connections were closed before their timeout"

    wait_closed(heads, HEADER_TIMEOUT + 10)
    answers = wait_closed(bodies, BODY_TIMEOUT + 10)
    for answer in answers:
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        body = json.loads(payload)
        assert body["error"] == "request_timeout"
        assert f"{BODY_TIMEOUT:g} s" in body["detail"]
    assert get(port, "/health")[0] == 200


def test_header_bytes_trickling_in_do_not_extend_the_deadline(port: int) -> None:
    (sock,) = open_sockets(port, 1, b"GET /health HTTP/1.1\r\n")
    start = time.monotonic()
    received = bytearray()
    closed = False
    while time.monotonic() - start < HEADER_TIMEOUT + 10 and not closed:
        try:
            sock.send(b"X")  # one header byte every 0.2 s, for ever
        except OSError:
            closed = True
        closed = closed or read_until_closed(sock, received)
        time.sleep(0.2)
    sock.close()
    assert closed
    assert time.monotonic() - start >= HEADER_TIMEOUT - 0.2


def test_absurd_chunk_size_gets_an_answer(port: int) -> None:
    head = (
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n\r\n"
    )
    (sock,) = open_sockets(port, 1, head + b"ffffffffffffffffffff\r\n")
    (answer,) = wait_closed([sock], BODY_TIMEOUT + 10)
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer


def send_and_read(port: int, data: bytes) -> bytes:
    """Send data on a new connection and read until the server closes it (5 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_a_head_that_outgrows_the_limit_is_refused_and_a_large_body_is_not(port: int) -> None:
    line = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    assert send_and_read(port, line + b"X-Pad: " + b"a" * 3000 + b"\r\n\r\n").startswith(
        b"HTTP/1.1 200"
    )
    # Incomplete, and past the limit: refused without waiting for the rest.
    answer = send_and_read(port, line + b"X-Pad: " + b"a" * (3 * MAX_HEADER_BYTES))
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"Invalid HTTP request received." in answer
    # A small head that arrives with a large body in the same reads is not a large head.
    body = json.dumps({"image": "A" * (8 * MAX_HEADER_BYTES)}).encode()
    request = (
        b"POST /predict/base64 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    answer = send_and_read(port, request + body)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b'"error":"invalid_image"' in answer


def test_connections_beyond_the_cap_are_refused_until_the_timeout(port: int) -> None:
    idle = open_sockets(port, MAX_CONNECTIONS, b"GET /health HTTP/1.1\r\n")
    status, _ = get(port, "/health")
    assert status == 503  # uvicorn's limit_concurrency
    wait_closed(idle, HEADER_TIMEOUT + 10)
    assert get(port, "/health")[0] == 200
