"""How fast this machine is at the moment: one core's float32 matrix product, in GFLOP/s.

    python benchmarks/machine_speed.py          # sgemm, 1 thread, 512^3: 61.2 GFLOP/s ...

The development VM runs the same code at different speeds at different hours (its host is
shared): the same CNN training step took 77 ms at one hour and 102 ms at another, with
nothing else running on the VM. So the timed benchmarks (per_process.py, time_to_accuracy.py)
print this probe before and after their runs, and their figures can be read against it.

The probe is NumPy's BLAS on one thread, a 512 x 512 by 512 x 512 float32 product (268
million flops, about 4 ms), repeated, in a fresh process of its own, so that neither
framework's threads nor its settings touch it; the median and the fastest run are reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

SIZE = 512
ROUNDS = 40
# Set before NumPy is imported: its BLAS reads them once, at load.
ONE_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def measure(size: int = SIZE, rounds: int = ROUNDS) -> dict[str, float]:
    """Time `rounds` float32 products of two size x size matrices in this process (BLAS as it
    is configured here): {"median_gflops", "best_gflops"}."""
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
    flops = 2 * size**3
    times.sort()
    return {
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
        f"(median of {ROUNDS}; fastest {speed['best_gflops']:.1f})"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--json"]:
        print(json.dumps(measure()))
    else:
        print(describe(probe()))
