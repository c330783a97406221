"""ReLU's two passes over memory, as single parallel loops.

    forward:   y = max(x, 0)                (NaN stays NaN, as in PyTorch)
    backward:  dx = dy where y > 0, else 0

NumPy's `dy * (y > 0)` makes two passes and a temporary mask; these make one pass each, cut into one
chunk of the flat array per thread (scratchnet.runtime.threads.parallel_for). Each kernel works on
flat (1-D) views and has a NumPy twin of the same signature (`*_reference`), the oracle in
tests/test_kernels.py.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.runtime.threads import parallel_for


@njit(nogil=True, cache=True)
def relu_forward_into(x, y):
    """y[i] = x[i] if not x[i] < 0 else 0, over flat arrays (a NaN is not < 0: it stays)."""
    for i in range(x.size):
        value = x[i]
        y[i] = 0 if value < 0 else value


def relu_forward_into_reference(x, y):
    """NumPy twin of relu_forward_into."""
    y[...] = np.maximum(x, 0)


@njit(nogil=True, cache=True)
def relu_backward_into(dy, y, dx):
    """dx[i] = dy[i] if y[i] > 0 else 0, over flat arrays."""
    for i in range(dy.size):
        dx[i] = dy[i] if y[i] > 0 else 0


def relu_backward_into_reference(dy, y, dx):
    """NumPy twin of relu_backward_into."""
    dx[...] = dy * (y > 0)


def relu_forward(x: np.ndarray) -> np.ndarray:
    """max(x, 0), elementwise."""
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    xf, yf = x.reshape(-1), y.reshape(-1)
    parallel_for(lambda lo, hi: relu_forward_into(xf[lo:hi], yf[lo:hi]), x.size, x.size)
    return y


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy where y > 0, else 0."""
    dy = np.ascontiguousarray(dy, dtype=y.dtype)
    dx = np.empty_like(y)
    dyf, yf, dxf = dy.reshape(-1), y.reshape(-1), dx.reshape(-1)

    def chunk(lo: int, hi: int) -> None:
        relu_backward_into(dyf[lo:hi], yf[lo:hi], dxf[lo:hi])

    parallel_for(chunk, y.size, y.size)
    return dx
