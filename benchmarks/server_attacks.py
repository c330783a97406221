"""Hostile requests against a real `python -m server`: one line per attack and what it got.

    .venv/bin/python benchmarks/server_attacks.py [--server-root DIR]

--server-root runs the `server` package found in DIR instead of this checkout's (scratchnet
still comes from this checkout): that is how the "before" column of the README's table was
measured, against `git archive HEAD server`. The short timeouts are set through environment
variables, which an older server simply ignores.

Not a test: it prints what happened and asserts nothing. The tests in tests/server check each
outcome.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.processes import free_port, stop  # noqa: E402

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
HALF_SENT = 300
MAX_CONNECTIONS = 400
ORIGIN = "https://allowed.example"


def start_server(root: Path, model_dir: Path, port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SCRATCHNET_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "SCRATCHNET_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "SCRATCHNET_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "SCRATCHNET_CORS_ORIGINS": ORIGIN,
        "SCRATCHNET_FRONTEND_DIR": str(REPO / "frontend"),
    }
    command = [
        sys.executable, "-m", "server", "--port", str(port), "--model-dir", str(model_dir),
        "--no-access-log", "--log-level", "critical",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=root, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            status, _, _ = request(port, "GET", "/health")
            if status in (200, 503):
                return process
        except OSError:
            time.sleep(0.1)
    stop(process)
    raise SystemExit("the server did not start within 120 s")


def request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, str, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body or None, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), response.read()
    finally:
        connection.close()


def png(size: int, line: bool = True) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("L", (size, size), 255)
    if line:
        s = size / 280
        ImageDraw.Draw(img).line([(80 * s, 60 * s), (200 * s, 60 * s), (120 * s, 230 * s)], 0, 18)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(image: bytes) -> tuple[bytes, dict]:
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d.png"\r\n'
        "Content-Type: image/png\r\n\r\n".encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def series(port: int) -> tuple[int, int]:
    _, _, text = request(port, "GET", "/metrics")
    lines = [line for line in text.decode().splitlines() if line and not line.startswith("#")]
    return len(lines), len(text)


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the server process in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def half_sent(port: int, count: int, body: bool) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port))
        if body:
            sock.sendall(
                b"POST /predict/base64 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 1000\r\n\r\n{"image": '
            )
        else:
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sockets.append(sock)
    return sockets


def still_open(sockets: list[socket.socket]) -> int:
    count = 0
    for sock in sockets:
        sock.setblocking(False)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
        except BlockingIOError:
            count += 1
        except OSError:
            pass
        sock.close()
    return count


def crafted_model_dir(workdir: Path) -> Path:
    """The bundled CNN, and a linear checkpoint whose last bias is +inf."""
    import numpy as np

    from scratchnet.checkpoint import save_checkpoint
    from scratchnet.mnist.models import PRETRAINED_DIR, LinearClassifier

    for path in PRETRAINED_DIR.glob("cnn.*"):  # cnn.npz (older checkpoints also had a cnn.json)
        shutil.copy(path, workdir / path.name)
    state = LinearClassifier().state_dict()
    last_bias = [key for key in state if key.endswith("bias")][-1]
    state[last_bias] = np.full_like(np.asarray(state[last_bias]), np.inf)
    meta = {"architecture": {"name": "linear", "kwargs": {}}, "metrics": {}, "config": {}}
    save_checkpoint(workdir / "linear.npz", state, meta)
    return workdir


def attacks(port: int, pid: int) -> list[tuple[str, str]]:
    rows = []
    rng = random.Random(0)

    def word(n: int) -> str:
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(n))

    def scan(count: int) -> None:
        for _ in range(count):
            request(port, word(6), "/health")
            request(port, "GET", "/" + word(8).lower())
            request(port, "GET", f"/model/{word(5).lower()}/info")

    scan(1)  # the first of each kind may add its series ("other" after the fix)
    series(port)
    before, size_before = series(port)
    start = time.monotonic()
    scan(2000)
    after, size_after = series(port)
    rows.append(
        (
            "2000 random methods, 2000 random paths, 2000 random model names",
            f"series {before} -> {after}, /metrics {size_before} -> {size_after} bytes "
            f"({time.monotonic() - start:.0f} s)",
        )
    )

    big = png(3999)
    body, headers = multipart(big)
    rss0, _ = rss_mb(pid)
    status, _, payload = request(port, "POST", "/predict", body, headers)
    rss1, hwm = rss_mb(pid)
    rows.append(
        (
            f"one 3999x3999 PNG ({len(big) // 1000} KB)",
            f"{status}; RSS {rss0:.0f} -> {rss1:.0f} MB, peak {hwm:.0f} MB",
        )
    )

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (20000, 20000), 1).save(buffer, format="PNG")
    body, headers = multipart(buffer.getvalue())
    status, _, payload = request(port, "POST", "/predict", body, headers)
    rows.append(("20000x20000 PNG header (bomb)", f"{status} {payload.decode()[:150]}"))

    status, _, payload = request(port, "POST", "/predict", *multipart(png(280)))
    rows.append(("linear checkpoint with +inf bias, model cnn", f"{status}"))
    body, headers = multipart(png(280))
    status, _, payload = request(port, "POST", "/predict?model_type=linear", body, headers)
    rows.append(("/predict on the linear model with +inf bias", f"{status} {payload[:150]!r}"))

    sockets = half_sent(port, HALF_SENT, body=False)
    bodies = half_sent(port, 50, body=True)
    time.sleep(0.5)
    served_start = time.perf_counter()
    status, _, _ = request(port, "GET", "/health")
    served = (time.perf_counter() - served_start) * 1000
    extra = half_sent(port, MAX_CONNECTIONS - HALF_SENT, body=False)
    over_cap, _, _ = request(port, "GET", "/health")
    rows.append(
        (
            f"{MAX_CONNECTIONS + 1} connections open (max_connections {MAX_CONNECTIONS})",
            f"/health {over_cap}",
        )
    )
    time.sleep(HEADER_TIMEOUT + BODY_TIMEOUT + 2)
    still_open(extra)
    rows.append(
        (
            f"{HALF_SENT} half-sent headers + 50 half-sent bodies",
            f"/health meanwhile {status} in {served:.0f} ms; after "
            f"{HEADER_TIMEOUT + BODY_TIMEOUT + 2.5:.1f} s still open: "
            f"{still_open(sockets)} headers, {still_open(bodies)} bodies",
        )
    )

    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n\r\nffffffffffffffffffff\r\n"
    )
    sock.settimeout(BODY_TIMEOUT + 8)
    start = time.monotonic()
    try:
        answer = sock.recv(4096).split(b"\r\n")[0].decode() or "closed"
    except TimeoutError:
        answer = "no answer"
    sock.close()
    rows.append(
        ("chunk size line ffffffffffffffffffff", f"{answer} after {time.monotonic() - start:.1f} s")
    )

    status, ctype, payload = request(
        port,
        "OPTIONS",
        "/predict",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    rows.append(("CORS preflight from another origin", f"{status} {ctype}: {payload[:80]!r}"))

    status, ctype, _ = request(port, "GET", "/static/index.html/")
    rows.append(("GET /static/index.html/", f"{status} {ctype}"))

    _, _, payload = request(port, "GET", "/models")
    errors = [m["error"] for m in json.loads(payload)["models"] if m["error"]]
    rows.append(("GET /models with the +inf checkpoint", "; ".join(errors) or "no error shown"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-root", type=Path, default=REPO)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        model_dir = crafted_model_dir(Path(workdir))
        port = free_port()
        process = start_server(args.server_root, model_dir, port)
        try:
            rows = attacks(port, process.pid)
        finally:
            stop(process)
    for attack, outcome in rows:
        print(f"| {attack} | {outcome} |")


if __name__ == "__main__":
    main()
