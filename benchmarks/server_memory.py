"""Bounded decoding memory under a flood of large images (issue 11).

    .venv/bin/python benchmarks/server_memory.py [--duration 60] [--attackers 4] [-- server flags]

Starts `python -m server` on the bundled models, then for --duration seconds:

- --attackers clients each send a 3999x3999 grayscale PNG (mostly blank, with a stroke: about
  21 KB on the wire, 16 MB decoded, 64 MB per float32 plane when prepared) to POST /predict,
  back to back (--rgb: the same in RGB, 64 KB on the wire, 64 MB decoded);
- one normal client sends the drawing page's 280x280 canvas PNG, back to back;
- a sampler reads the server's resident memory (VmRSS) every 50 ms.

It prints the normal client's p50/p99, the attackers' request count, the peak RSS (sampled,
and the kernel's VmHWM) and the RSS once the flood is over. Targets: RSS under 1 GB, normal
p50 under 20 ms. Flags after `--` go to the server (e.g. `-- --decode-concurrency 2`).
--server-root DIR runs the `server` package in DIR (as benchmarks/server_attacks.py does), to
measure an older version.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.cold_start import drawing_png, multipart  # noqa: E402
from tests.processes import free_port, stop  # noqa: E402

BIG_SIZE = 3999


def big_png(mode: str) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new(mode, (BIG_SIZE, BIG_SIZE), "white")
    s = BIG_SIZE / 280
    points = [(80 * s, 60 * s), (200 * s, 60 * s), (120 * s, 230 * s)]
    ImageDraw.Draw(img).line(points, fill="black", width=round(18 * s))
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def start_server(root: Path, port: int, server_args: list[str]) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "server", "--port", str(port), "--no-access-log",
        "--log-level", "warning", *server_args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=root, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                connection.close()
                return process
        except OSError:
            time.sleep(0.1)
    stop(process)
    raise SystemExit("the server did not start within 120 s")


def client(
    port: int, image: bytes, stop_at: float, latencies: list[float], statuses: list[int]
) -> None:
    body, content_type = multipart({"model_type": "cnn"}, image)
    headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while time.monotonic() < stop_at:
        start = time.perf_counter()
        try:
            connection.request("POST", "/predict", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            if response.getheader("connection", "").lower() == "close":
                connection.close()
        except OSError:
            statuses.append(0)
            connection.close()
        latencies.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--server-root", type=Path, default=REPO)
    parser.add_argument("--rgb", action="store_true", help="send the large image in RGB")
    parser.add_argument("server_args", nargs="*", help="flags for python -m server, after --")
    args = parser.parse_args()

    mode = "RGB" if args.rgb else "L"
    big = big_png(mode)
    small = drawing_png()
    port = free_port()
    process = start_server(args.server_root, port, args.server_args)
    try:
        rss_start = memory_mb(process.pid, "VmRSS")
        samples: list[float] = []
        stop_at = time.monotonic() + args.duration
        normal: tuple[list[float], list[int]] = ([], [])
        attack: tuple[list[float], list[int]] = ([], [])
        threads = [threading.Thread(target=client, args=(port, small, stop_at, *normal))]
        threads += [
            threading.Thread(target=client, args=(port, big, stop_at, *attack))
            for _ in range(args.attackers)
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            samples.append(memory_mb(process.pid, "VmRSS"))
            time.sleep(0.05)
        for thread in threads:
            thread.join()
        time.sleep(2)
        rss_after = memory_mb(process.pid, "VmRSS")
        hwm = memory_mb(process.pid, "VmHWM")
    finally:
        stop(process)

    latencies, statuses = normal
    ms = sorted(1000 * t for t in latencies)
    print(f"big image: {BIG_SIZE}x{BIG_SIZE} {mode} PNG, {len(big) / 1000:.1f} KB on the wire")
    print(f"server flags: {' '.join(args.server_args) or '(defaults)'}")
    print(
        f"attackers: {args.attackers}, {len(attack[1])} requests in {args.duration:g} s, "
        f"statuses {sorted(set(attack[1]))}, median {statistics.median(attack[0]):.2f} s"
    )
    print(
        f"normal client: {len(ms)} requests, statuses {sorted(set(statuses))}, "
        f"p50 {statistics.median(ms):.1f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.1f} ms, "
        f"p99 {ms[int(0.99 * (len(ms) - 1))]:.1f} ms"
    )
    print(
        f"RSS: {rss_start:.0f} MB at start, peak {max(samples):.0f} MB sampled "
        f"(VmHWM {hwm:.0f} MB), {rss_after:.0f} MB 2 s after the flood"
    )


if __name__ == "__main__":
    main()
