"""How fast this machine is at the moment: one core's float32 matrix product and memory copy.

    python benchmarks/machine_speed.py    # machine speed: sgemm 512^3 on 1 thread 64.6 GFLOP/s ...

The development VM runs the same code at different speeds at different hours (its host is
shared): on one thread the same CNN training step (batch 128) took 127.9 ms at 16:08 and
174.2 ms at 23:33 on 2026-12-01, and torch's 180.3 and 258.2 ms. So the timed benchmarks
(per_process.py, time_to_accuracy.py) print this probe before and after their runs, and their
figures can be read against it.

The probe runs in a fresh process of its own, so that neither framework's threads nor its
settings touch it: NumPy's BLAS on one thread, a 512 x 512 by 512 x 512 float32 product (268
million flops, about 4 ms), repeated (the median and the fastest run are reported), and a copy
of 64 MB, far larger than the caches (the median rate, counting the bytes read and written):
the layers that are not matrix products are bound by memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

SIZE = 512
ROUNDS = 40
COPY_BYTES = 64 * 2**20
COPY_ROUNDS = 10
# Set before NumPy is imported: its BLAS reads them once, at load.
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def measure(
    size: int = SIZE, rounds: int = ROUNDS, copy_bytes: int = COPY_BYTES
) -> dict[str, float]:
    """Time `rounds` float32 products of two size x size matrices in this process (BLAS as it
    is configured here) and COPY_ROUNDS copies of copy_bytes: {"median_gflops",
    "best_gflops", "copy_gbps"}."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = np.empty((size, size), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm-up: the BLAS's buffers and the caches
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    src = np.ones(copy_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # the pages are faulted in once, before the timing
    copies = []
    for _ in range(COPY_ROUNDS):
        start = time.perf_counter()
        np.copyto(dst, src)
        copies.append(time.perf_counter() - start)
    flops = 2 * size**3
    times.sort()
    return {
        "copy_gbps": 2 * src.nbytes / sorted(copies)[len(copies) // 2] / 1e9,
        "median_gflops": flops / times[len(times) // 2] / 1e9,
        "best_gflops": flops / times[0] / 1e9,
    }


def probe() -> dict[str, float] | None:
    """measure() on one BLAS thread in a fresh process; None if that process fails."""
    env = {**os.environ, **ONE_THREAD}
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def describe(speed: dict[str, float] | None) -> str:
    """One line for a benchmark's output."""
    if speed is None:
        return f"machine speed: sgemm {SIZE}^3 on 1 thread could not be measured"
    return (
        f"machine speed: sgemm {SIZE}^3 on 1 thread {speed['median_gflops']:.1f} GFLOP/s "
        f"(median of {ROUNDS}; fastest {speed['best_gflops']:.1f}), a 64 MB copy "
        f"{speed['copy_gbps']:.1f} GB/s"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--json"]:
        print(json.dumps(measure()))
    else:
        print(describe(probe()))
