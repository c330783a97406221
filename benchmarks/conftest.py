"""Shared set-up of the benchmarks: scratchnet and PyTorch on the same threads, side by side.

Run them with `make bench` (or the command in benchmarks/README.md); `make test` does not
collect this folder (pyproject's testpaths is ["tests"]).

Every benchmark comes in a pair, one test per framework, in one pytest-benchmark group
(`@pytest.mark.benchmark(group=...)`). The two run one right after the other, so that both
see the same load on the machine. `extra_info` records the framework, the thread count and
the floating-point operations of one call, which benchmarks/report.py turns into GFLOP/s.

Thread counts: torch gets as many intra-op threads as scratchnet's Numba kernels (all cores
unless NUMBA_NUM_THREADS says otherwise). scratchnet's BLAS runs on 1 thread, its import-time
default (scratchnet/runtime/threads.py); the matmul ceiling gets every core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from scratchnet.runtime.threads import blas_threads, get_num_threads  # noqa: E402

THREADS = get_num_threads()
torch.set_num_threads(THREADS)

FRAMEWORKS = ("scratchnet", "torch")


def run_benchmark(
    benchmark: Any,
    fn: Callable[[], Any],
    *,
    framework: str,
    flops: float,
    rounds: int,
    setup: Callable[[], Any] | None = None,
    warmup_rounds: int = 1,
) -> Any:
    """Time fn() `rounds` times after `warmup_rounds` untimed calls; return its last result.

    `setup`, if given, runs untimed before every call (to reset gradients, for example).
    """
    benchmark.extra_info.update(
        framework=framework,
        flops=float(flops),
        threads=THREADS,
        torch_threads=torch.get_num_threads(),
        blas_threads=blas_threads(),
    )
    results: list[Any] = []

    def target() -> None:
        results.append(fn())

    def timed_setup() -> None:
        results.clear()
        if setup is not None:
            setup()

    benchmark.pedantic(
        target, setup=timed_setup, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds
    )
    return results[-1]


@pytest.fixture(params=FRAMEWORKS)
def framework(request: pytest.FixtureRequest) -> str:
    return request.param


def to_numpy(value: Any) -> np.ndarray:
    """The array inside a scratchnet or torch tensor (or an array already)."""
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    return np.asarray(getattr(value, "data", value))
