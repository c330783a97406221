"""ReLU's two passes over memory as single parallel loops, and the error function for GELU.

    forward:   y = max(x, 0)                (NaN stays NaN, as in PyTorch)
    backward:  dx = dy where y > 0, else 0
    erf:       y = erf(x) = 2/sqrt(pi) * integral from 0 to x of exp(-t**2) dt

NumPy's `dy * (y > 0)` makes two passes and a temporary mask; these make one pass each, cut into one
chunk of the flat array per thread (scratchnet.runtime.threads.parallel_for). Each kernel works on
flat (1-D) views and has a NumPy twin of the same signature (`*_reference`), the oracle in
tests/test_kernels.py and tests/test_activations.py.

NumPy has no erf. Its twin calls Python's math.erf once per element, about 10 times slower than
the kernel (100,000 float64 values: 14 ms against 1.3 ms), which calls the same C library
function.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from scratchnet.runtime.mode import reference_mode
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
    """max(x, 0), elementwise. A 0-d x gives a 0-d y (np.ascontiguousarray would make it 1-d)."""
    x = np.asarray(x, order="C")
    y = np.empty_like(x)
    xf, yf = x.reshape(-1), y.reshape(-1)
    into = relu_forward_into_reference if reference_mode() else relu_forward_into
    parallel_for(lambda lo, hi: into(xf[lo:hi], yf[lo:hi]), x.size, x.size)
    return y


def relu_backward(dy: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dy where y > 0, else 0."""
    dy = np.asarray(dy, dtype=y.dtype, order="C")
    dx = np.empty_like(y)
    dyf, yf, dxf = dy.reshape(-1), y.reshape(-1), dx.reshape(-1)

    into = relu_backward_into_reference if reference_mode() else relu_backward_into

    def chunk(lo: int, hi: int) -> None:
        into(dyf[lo:hi], yf[lo:hi], dxf[lo:hi])

    parallel_for(chunk, y.size, y.size)
    return dx


@njit(nogil=True, cache=True)
def erf_into(x, y):
    """y[i] = erf(x[i]), over flat arrays."""
    for i in range(x.size):
        y[i] = math.erf(x[i])


def erf_into_reference(x, y):
    """Python twin of erf_into (NumPy has no erf)."""
    y[...] = np.frompyfunc(math.erf, 1, 1)(x)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise, in x's float dtype."""
    x = np.asarray(x, order="C")
    y = np.empty_like(x)
    xf, yf = x.reshape(-1), y.reshape(-1)
    into = erf_into_reference if reference_mode() else erf_into
    parallel_for(lambda lo, hi: into(xf[lo:hi], yf[lo:hi]), x.size, x.size)
    return y
