"""Who gets the cores: the BLAS (matrix products) or Numba (the kernels' prange loops).

scratchnet runs two thread pools: OpenBLAS's, for every matrix product (the convolutions and
linear layers), and Numba's OpenMP pool, for the prange loops in scratchnet.kernels. They take
turns many times per training step, and OpenBLAS's idle workers spin (busy-wait) for a while
after each product. With both pools as large as the machine, each steals the cores the other
needs, and as soon as other processes also want the CPU the spinning dominates. Measured on a
2-core machine under load (benchmarks/README.md): a CNN training step at batch 128 took 1.0 s
with the BLAS on 2 threads and 0.2 s with it on 1; one single-image prediction took 31 ms
instead of 0.6 ms.

So the default, applied when scratchnet is imported, is:

    BLAS threads  = 1              (each product runs on the calling thread: no spinning)
    Numba threads = Numba's own default (all cores; NUMBA_NUM_THREADS overrides it)

A value the user gave in the environment wins: OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
MKL_NUM_THREADS leave the BLAS alone, and SCRATCHNET_BLAS_THREADS sets it explicitly.
`set_num_threads` changes both pools at run time.

The BLAS pool is resized with threadpoolctl, which finds the BLAS that NumPy loaded. Without
threadpoolctl installed, scratchnet leaves the BLAS as it is (set OPENBLAS_NUM_THREADS=1 then).
"""

from __future__ import annotations

import os
from typing import Any

import numba

_ENV_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_limiter: Any = None  # the threadpoolctl limiter in force, kept alive so that it stays in force


def _set_blas_threads(n: int) -> bool:
    """Resize the BLAS pool that NumPy uses; False when threadpoolctl is not installed."""
    global _limiter
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    _limiter = threadpool_limits(limits=n, user_api="blas")
    return True


def blas_threads() -> int | None:
    """The BLAS pool's size, or None when threadpoolctl cannot tell."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    sizes = [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]
    return sizes[0] if sizes else None


def get_num_threads() -> int:
    """The number of threads the Numba kernels run on."""
    return numba.get_num_threads()


def set_num_threads(n: int, blas: int = 1) -> None:
    """Run the Numba kernels on n threads and the BLAS on `blas` threads (default 1).

    n may not exceed the pool Numba started with (NUMBA_NUM_THREADS, by default the number
    of cores).
    """
    if n < 1 or blas < 1:
        raise ValueError(f"thread counts must be at least 1, got n={n}, blas={blas}")
    numba.set_num_threads(n)
    _set_blas_threads(blas)


def configure_default() -> None:
    """The import-time default: a single-threaded BLAS unless the environment says otherwise."""
    explicit = os.environ.get("SCRATCHNET_BLAS_THREADS")
    if explicit:
        _set_blas_threads(int(explicit))
    elif not any(os.environ.get(name) for name in _ENV_VARS):
        _set_blas_threads(1)


# A parallel region costs a wake-up of the pool: some 10 µs on an idle machine, up to a
# scheduler time slice (milliseconds) when other processes hold the cores and one worker has
# to wait for its turn. Kernels on fewer elements than this (a single image's layers) run on
# the calling thread alone. Measured: single-image CNN inference 9 ms -> 0.6 ms on a busy
# 2-core machine.
PARALLEL_MIN_WORK = 1 << 17


def launch(kernel: Any, work: int, *args: Any) -> Any:
    """kernel(*args), on one thread when `work` (elements touched) is below PARALLEL_MIN_WORK."""
    if work >= PARALLEL_MIN_WORK:
        return kernel(*args)
    previous = numba.get_num_threads()
    if previous == 1:
        return kernel(*args)
    numba.set_num_threads(1)
    try:
        return kernel(*args)
    finally:
        numba.set_num_threads(previous)


_pool: Any = None  # the ThreadPoolExecutor of split_batch, created at its first use


def _run_serial(fn: Any, lo: int, hi: int) -> Any:
    numba.set_num_threads(1)  # per thread: the kernels inside fn run on this thread alone
    return fn(lo, hi)


def batch_chunks(n: int, min_chunk: int = 8) -> list[tuple[int, int]]:
    """Cut range(n) into one [lo, hi) chunk per Numba thread, each of at least min_chunk."""
    chunks = max(1, min(get_num_threads(), n // min_chunk))
    return [(n * i // chunks, n * (i + 1) // chunks) for i in range(chunks)]


def run_chunks(fn: Any, chunks: list[tuple[int, int]]) -> list[Any]:
    """[fn(lo, hi) for (lo, hi) in chunks], the chunks on parallel threads.

    Every chunk runs on a Python thread of its own, with its Numba kernels serial and the
    BLAS, already single-threaded, on that thread: the matrix products then run in parallel
    without OpenBLAS's spinning workers. NumPy and the kernels release the GIL while they
    compute. A single chunk runs on the calling thread as it is.
    """
    global _pool
    if len(chunks) == 1:
        return [fn(*chunks[0])]
    if _pool is None or _pool._max_workers < len(chunks):
        from concurrent.futures import ThreadPoolExecutor

        _pool = ThreadPoolExecutor(max_workers=len(chunks), thread_name_prefix="scratchnet")
    futures = [_pool.submit(_run_serial, fn, lo, hi) for lo, hi in chunks]
    return [future.result() for future in futures]
