"""Who gets the cores: scratchnet's own chunks of work, not the BLAS's or OpenMP's spinning pools.

scratchnet's parallelism is its own: each layer cuts its work into one chunk per thread (a
range of samples, of channels, or of a flat array) and runs the chunks on a small pool of
Python threads (`map_chunks`), each chunk a serial Numba kernel or a single-threaded BLAS
product that releases the GIL. Two other pools could compete for the cores and are kept out:

- OpenBLAS's: its idle workers spin (busy-wait) for a while after each product. With the
  BLAS on as many threads as the machine, it stole the cores from everything else: measured
  on the 2-core machine under load (benchmarks/README.md), a CNN training step at batch 128
  took 1.0 s with the BLAS on 2 threads and 0.2 s with it on 1.
- OpenMP's (Numba's prange): its wait policy is decided once per process by whoever starts
  OpenMP first, and PyTorch, imported first, starts it spinning. scratchnet's layers use no
  prange, so they do not depend on it (the augmentation kernel still does).

So the default, applied when scratchnet is imported, is:

    BLAS threads       = 1         (each product runs on the calling thread: no spinning)
    scratchnet threads = Numba's thread count (all cores; NUMBA_NUM_THREADS overrides it,
                         `set_num_threads` and the `num_threads` block below change it)

A value the user gave in the environment wins: OPENBLAS_NUM_THREADS, OMP_NUM_THREADS or
MKL_NUM_THREADS leave the BLAS alone, and SCRATCHNET_BLAS_THREADS sets it explicitly.
`set_num_threads` changes both pools at run time.

The BLAS pool is resized with threadpoolctl, which finds the BLAS that NumPy loaded. Without
threadpoolctl installed, scratchnet leaves the BLAS as it is (set OPENBLAS_NUM_THREADS=1 then).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numba

from scratchnet.runtime.mode import reference_mode

T = TypeVar("T")
Chunk = tuple[int, int]  # [lo, hi): a range of samples, channels or elements

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
    """The number of chunks (threads) a layer's work is cut into: Numba's thread count."""
    return numba.get_num_threads()


def max_num_threads() -> int:
    """The most threads the layers can run on: the pool Numba started with (NUMBA_NUM_THREADS,
    by default the number of cores)."""
    return numba.config.NUMBA_NUM_THREADS


def set_num_threads(n: int, blas: int = 1) -> None:
    """Run the layers on n threads and the BLAS on `blas` threads (default 1).

    n may not exceed max_num_threads(). The layers' count is the calling thread's own, as in
    Numba: another thread keeps its setting.
    """
    _check_num_threads(n)
    if blas < 1:
        raise ValueError(f"the BLAS thread count must be at least 1, got {blas}")
    numba.set_num_threads(n)
    _set_blas_threads(blas)


@contextlib.contextmanager
def num_threads(n: int) -> Iterator[None]:
    """Run the layers called in this block on n threads, restoring the count on exit.

    Only the calling thread's count changes (the BLAS is left alone). A server predicting one
    image at a time uses num_threads(1): the handover to a second thread costs more than a
    single image's layers take.
    """
    _check_num_threads(n)
    previous = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def _check_num_threads(n: int) -> None:
    if not 1 <= n <= max_num_threads():
        raise ValueError(
            f"the thread count must be between 1 and {max_num_threads()} "
            f"(NUMBA_NUM_THREADS), got {n}"
        )


def configure_default() -> None:
    """The import-time default: a single-threaded BLAS unless the environment says otherwise."""
    explicit = os.environ.get("SCRATCHNET_BLAS_THREADS")
    if explicit:
        _set_blas_threads(int(explicit))
    elif not any(os.environ.get(name) for name in _ENV_VARS):
        _set_blas_threads(1)


# Handing a chunk to another thread costs a wake-up: 13-55 us on the development VM, up to a
# scheduler time slice (milliseconds) when other processes hold the cores. Kernels on fewer
# elements than this run on the calling thread alone: a single image's layers, and at batch 64
# the small late layers (conv3's 401,408 outputs). Measured, CNN step on 2 threads, interleaved
# A/B: 2^19 against 2^17, batch 64 22.0 -> 21.4 ms, batch 128 43.9 -> 41.5 ms; and for one
# image 9 ms -> 0.6 ms under load, against splitting everything.
PARALLEL_MIN_WORK = 1 << 19


def batch_chunks(n: int, min_chunk: int = 8) -> list[Chunk]:
    """Cut range(n) into one [lo, hi) chunk per thread, each of at least min_chunk.

    Reading mode (runtime/mode.py) gives one chunk, the whole range.
    """
    if reference_mode():
        return [(0, n)]
    chunks = max(1, min(get_num_threads(), n // min_chunk))
    return [(n * i // chunks, n * (i + 1) // chunks) for i in range(chunks)]


class _Worker:
    """A thread that runs one chunk at a time, handed over through two locks.

    A lock handover wakes a sleeping thread in ~13 us on the development machine, against
    ~64 us for a concurrent.futures round trip; a training step hands over some 35 chunks.
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.go, self.done = threading.Lock(), threading.Lock()
        self.go.acquire()
        self.done.acquire()
        self.job: tuple[Any, int, int] | None = None
        self.result: Any = None
        self.error: BaseException | None = None
        thread = threading.Thread(target=self._loop, name=f"scratchnet-{index}", daemon=True)
        thread.start()

    def _loop(self) -> None:
        if PIN_WORKERS:
            _pin_to_a_cpu_of_its_own(self.index)
        while True:
            self.go.acquire()  # sleeps until start() hands over a job
            fn, lo, hi = self.job
            try:
                self.result, self.error = fn(lo, hi), None
            except BaseException as exc:  # handed to the caller by wait()
                self.result, self.error = None, exc
            self.job = None
            self.done.release()

    def start(self, fn: Any, lo: int, hi: int) -> None:
        self.job = (fn, lo, hi)
        self.go.release()

    def wait(self) -> Any:
        self.done.acquire()
        if self.error is not None:
            error, self.error = self.error, None
            raise error
        return self.result


# SCRATCHNET_PIN_WORKERS=1 pins worker i to the i-th CPU from the end of the process's allowed
# set. Linux tends to wake a short-lived worker on its waker's CPU, where the two then take
# turns; pinned, they cannot. Measured, CNN step at batch 64 on the 2-core VM, nine fresh
# processes each: median 21.6 ms (20.8-23.9) pinned, 23.2 ms (21.6-27.9) not. Off by default:
# several scratchnet processes on one machine would pin their workers to the same CPU.
PIN_WORKERS = os.environ.get("SCRATCHNET_PIN_WORKERS", "0") == "1"


def _pin_to_a_cpu_of_its_own(index: int) -> None:
    """Pin the calling worker thread to the index-th CPU from the end of the allowed set."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {allowed[-1 - index % len(allowed)]})
    except (AttributeError, OSError):
        pass


_workers: list[_Worker] = []
_busy = threading.Lock()  # held while map_chunks uses the workers


def _after_fork_in_child() -> None:
    """Threads do not survive fork(): a child process starts a new set when it needs one."""
    global _busy
    _workers.clear()
    _busy = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def map_chunks(fn: Callable[[int, int], T], chunks: Iterable[Chunk]) -> dict[Chunk, T]:
    """{(lo, hi): fn(lo, hi) for (lo, hi) in chunks}, the chunks on parallel threads.

    This is how a layer spreads its work: it writes what one chunk of samples (or channels,
    or elements) computes as fn(lo, hi), and gets each chunk's result back under its bounds,
    so that a backward pass can hand the same chunks what their forward kept.

    The first chunk runs on the calling thread, every other one on a worker thread of
    scratchnet's. The kernels inside fn are serial and release the GIL (Numba's nogil, NumPy's
    large operations), and the BLAS is single-threaded: each chunk keeps one core busy, with
    no thread of anyone's pool spinning while it waits. Idle workers sleep on a lock.

    If the workers are busy (another thread is in map_chunks, or fn itself calls it), or in
    reading mode (runtime/mode.py), the chunks run one after the other on the calling thread.
    """
    chunks = list(chunks)
    if len(chunks) == 1 or reference_mode() or not _busy.acquire(blocking=False):
        return {(lo, hi): fn(lo, hi) for lo, hi in chunks}
    try:
        while len(_workers) < len(chunks) - 1:
            _workers.append(_Worker(len(_workers)))
        workers = _workers[: len(chunks) - 1]
        for worker, (lo, hi) in zip(workers, chunks[1:]):
            worker.start(fn, lo, hi)
        try:
            first = fn(*chunks[0])
        finally:
            outcomes = []
            for worker in workers:  # every worker must finish before the next call
                try:
                    outcomes.append((worker.wait(), None))
                except BaseException as exc:
                    outcomes.append((None, exc))
        for _, error in outcomes:
            if error is not None:
                raise error
        results = [first] + [result for result, _ in outcomes]
        return dict(zip(chunks, results))
    finally:
        _busy.release()


def parallel_for(fn: Callable[[int, int], Any], n: int, work: int, min_chunk: int = 1) -> None:
    """fn(lo, hi) over chunks of range(n), one per thread; one chunk when work is small.

    `work` is the number of elements the whole loop touches (compared with PARALLEL_MIN_WORK).
    Reading mode (runtime/mode.py) runs one chunk, on the calling thread.
    """
    if work < PARALLEL_MIN_WORK or reference_mode():
        fn(0, n)
    else:
        map_chunks(fn, batch_chunks(n, min_chunk))
