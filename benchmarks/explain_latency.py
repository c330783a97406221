"""Latency of POST /explain (and /predict for comparison) on a running server, keep-alive client.

    python benchmarks/explain_latency.py [--requests 200] [--warmup 20] [--model cnn]

Starts `python -m server` with the bundled models (tests.processes.running_server), then one
httpx client on one keep-alive connection sends a 280x280 canvas drawing (the drawing page's
size) to each endpoint: the warm-up requests first, then --requests timed ones, one at a time.
Each row prints the p50, p95 and max of the whole round trip (upload, decode, prepare, forward
and backward, JSON encoding, download) and the answer's size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.processes import running_server
from tests.server.conftest import draw_digit

CASES = [
    ("/predict", {}),
    ("/explain", {}),
    ("/explain", {"encoding": "base64"}),
    ("/explain", {"classes": "all"}),
    ("/explain", {"classes": "all", "encoding": "base64"}),
]


def time_requests(
    client: httpx.Client, path: str, fields: dict[str, str], png: bytes, warmup: int, n: int
) -> tuple[list[float], int]:
    """The round-trip times in ms of n requests after warmup ones, and the answer's bytes."""
    files = {"file": ("digit.png", png, "image/png")}
    times = []
    size = 0
    for i in range(warmup + n):
        start = time.perf_counter()
        response = client.post(path, files=files, data=fields)
        elapsed = (time.perf_counter() - start) * 1000.0
        response.raise_for_status()
        size = len(response.content)
        if i >= warmup:
            times.append(elapsed)
    return times, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--model", default="cnn", choices=["cnn", "linear"])
    args = parser.parse_args()

    png = draw_digit(7, size=280)
    print(f"{args.requests} requests after {args.warmup} warm-up, {args.model}, 280x280 PNG")
    print(f"{'endpoint':<42}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'bytes':>10}")
    with running_server() as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for path, fields in CASES:
            fields = {"model_type": args.model, **fields}
            times, size = time_requests(client, path, fields, png, args.warmup, args.requests)
            times.sort()
            p95 = times[int(0.95 * (len(times) - 1))]
            options = " ".join(f"{k}={v}" for k, v in fields.items() if k != "model_type")
            label = f"{path} {options}".strip()
            print(
                f"{label:<42}{statistics.median(times):>9.2f}{p95:>9.2f}{times[-1]:>9.2f}{size:>10}"
            )


if __name__ == "__main__":
    main()
