"""Batch-norm kernels: per-channel sums over (N, L), and the per-channel elementwise passes.

Every array here is viewed as (N, C, L): BatchNorm2d's (N, C, H, W) has L = H * W, and
BatchNorm1d's (N, C) has L = 1. Channel c's statistics are over its m = N * L values.

    channel_mean_var(x)            mean[c] = sum(x) / m,  var[c] = sum((x - mean)**2) / m
    channel_grad_sums(dy, x, mean) sum(dy),  sum(dy * (x - mean))
    normalize(x, mean, scale, shift)
                                   y = (x - mean[c]) * scale[c] + shift[c]
    normalize_backward(dy, x, mean, inv_std, scale, mean_dy, mean_dy_xhat)
                                   dx = scale[c] * (dy - mean_dy[c]
                                                    - (x - mean[c]) * inv_std[c] * mean_dy_xhat[c])

What these mean (the batch-norm gradient) is derived in scratchnet/nn/batchnorm.py; here they
are only sums and elementwise passes. The per-channel results and inputs are float64 whatever
the dtype of x: a sum of 50,000 float32 values then loses almost nothing to rounding.

The sums run without fastmath, so in a fixed order. To let the CPU still add many numbers at
once, they keep one running sum per position l (`acc[l] += x[n, c, l]` over n): the L sums
are independent, so the loop over l vectorises, and the L partial sums are added at the end.

Each kernel has a vectorised NumPy twin of the same signature (`*_reference`), the oracle in
tests/test_kernels.py. Run with NUMBA_DISABLE_JIT=1 to step through the loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.runtime.mode import reference_mode
from scratchnet.runtime.threads import parallel_for

# ---------------------------------------------------------------------------------------------
# Per-channel sums
# ---------------------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def channel_mean_var_into(x, c_lo, c_hi, mean, var):
    """mean[c] and biased var[c] of x (N, C, L) over n and l, for channels c_lo..c_hi-1.

    Two passes per channel. Channels are independent: the wrapper hands ranges of channels
    to different threads (as bounds, not as a slice x[:, lo:hi], which Numba could no longer
    treat as contiguous: 3.7x slower). The second pass reads the channel again while it is
    still in cache, and subtracting the mean first keeps the variance accurate.
    """
    N, _, L = x.shape
    for c in range(c_lo, c_hi):
        acc = np.zeros(L)
        for n in range(N):
            row = x[n, c]
            for i in range(L):
                acc[i] += row[i]
        mu = acc.sum() / (N * L)
        for i in range(L):
            acc[i] = 0.0
        for n in range(N):
            row = x[n, c]
            for i in range(L):
                d = row[i] - mu
                acc[i] += d * d
        mean[c] = mu
        var[c] = acc.sum() / (N * L)


def channel_mean_var(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance of x (N, C, L), as float64 arrays of shape (C,)."""
    if reference_mode():
        return channel_mean_var_reference(x)
    C = x.shape[1]
    mean = np.empty(C)
    var = np.empty(C)
    x = np.ascontiguousarray(x)

    def chunk(lo: int, hi: int) -> None:
        channel_mean_var_into(x, lo, hi, mean, var)

    parallel_for(chunk, C, x.size)
    return mean, var


def channel_mean_var_reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = x.astype(np.float64)
    mean = x.mean(axis=(0, 2))
    var = ((x - mean[:, None]) ** 2).mean(axis=(0, 2))
    return mean, var


@njit(nogil=True, cache=True)
def channel_grad_sums_into(dy, x, mean, c_lo, c_hi, sum_dy, sum_dy_xmu):
    """sum_dy[c] = sum of dy, sum_dy_xmu[c] = sum of dy * (x - mean[c]), over n and l, for
    channels c_lo..c_hi-1."""
    N, _, L = x.shape
    for c in range(c_lo, c_hi):
        acc_dy = np.zeros(L)
        acc_dy_xmu = np.zeros(L)
        mu = mean[c]
        for n in range(N):
            dy_row = dy[n, c]
            x_row = x[n, c]
            for i in range(L):
                acc_dy[i] += dy_row[i]
                acc_dy_xmu[i] += dy_row[i] * (x_row[i] - mu)
        sum_dy[c] = acc_dy.sum()
        sum_dy_xmu[c] = acc_dy_xmu.sum()


def channel_grad_sums(
    dy: np.ndarray, x: np.ndarray, mean: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel sum(dy) and sum(dy * (x - mean)) of (N, C, L) arrays, as float64."""
    if reference_mode():
        return channel_grad_sums_reference(dy, x, mean)
    C = x.shape[1]
    sum_dy = np.empty(C)
    sum_dy_xmu = np.empty(C)
    dy, x, mean = np.ascontiguousarray(dy), np.ascontiguousarray(x), _f64(mean)

    def chunk(lo: int, hi: int) -> None:
        channel_grad_sums_into(dy, x, mean, lo, hi, sum_dy, sum_dy_xmu)

    parallel_for(chunk, C, x.size)
    return sum_dy, sum_dy_xmu


def channel_grad_sums_reference(
    dy: np.ndarray, x: np.ndarray, mean: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    dy = dy.astype(np.float64)
    xmu = x.astype(np.float64) - mean[:, None]
    return dy.sum(axis=(0, 2)), (dy * xmu).sum(axis=(0, 2))


# ---------------------------------------------------------------------------------------------
# Per-channel elementwise passes
# ---------------------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def normalize_into(x, mean, scale, shift, y):
    """y[n, c, l] = (x[n, c, l] - mean[c]) * scale[c] + shift[c], row by row (n, c)."""
    N, C, L = x.shape
    for task in range(N * C):
        n = task // C
        c = task % C
        x_row = x[n, c]
        y_row = y[n, c]
        mu = mean[c]
        k = scale[c]
        b = shift[c]
        for i in range(L):
            y_row[i] = (x_row[i] - mu) * k + b


def normalize(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """y = (x - mean[c]) * scale[c] + shift[c] for x (N, C, L); y has x's dtype."""
    if reference_mode():
        return normalize_reference(x, mean, scale, shift)
    y = np.empty(x.shape, dtype=x.dtype)
    x, mean, scale, shift = np.ascontiguousarray(x), _f64(mean), _f64(scale), _f64(shift)

    def chunk(lo: int, hi: int) -> None:
        normalize_into(x[lo:hi], mean, scale, shift, y[lo:hi])

    parallel_for(chunk, x.shape[0], x.size)
    return y


def normalize_reference(
    x: np.ndarray, mean: np.ndarray, scale: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    y = (x - mean[:, None]) * scale[:, None] + shift[:, None]
    return y.astype(x.dtype)


@njit(nogil=True, cache=True)
def normalize_backward_into(dy, x, mean, inv_std, scale, mean_dy, mean_dy_xhat, dx):
    """dx = scale[c] * (dy - mean_dy[c] - (x - mean[c]) * inv_std[c] * mean_dy_xhat[c]).

    Row by row (n, c); xhat = (x - mean) * inv_std is recomputed, never stored.
    """
    N, C, L = x.shape
    for task in range(N * C):
        n = task // C
        c = task % C
        dy_row = dy[n, c]
        x_row = x[n, c]
        dx_row = dx[n, c]
        mu = mean[c]
        s = inv_std[c]
        k = scale[c]
        m_dy = mean_dy[c]
        m_dy_xhat = mean_dy_xhat[c]
        for i in range(L):
            xhat = (x_row[i] - mu) * s
            dx_row[i] = k * (dy_row[i] - m_dy - xhat * m_dy_xhat)


def normalize_backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    scale: np.ndarray,
    mean_dy: np.ndarray,
    mean_dy_xhat: np.ndarray,
) -> np.ndarray:
    """dx = scale * (dy - mean_dy - xhat * mean_dy_xhat), xhat = (x - mean) * inv_std."""
    if reference_mode():
        return normalize_backward_reference(dy, x, mean, inv_std, scale, mean_dy, mean_dy_xhat)
    dx = np.empty(x.shape, dtype=dy.dtype)
    dy, x = np.ascontiguousarray(dy), np.ascontiguousarray(x)
    per_channel = [_f64(v) for v in (mean, inv_std, scale, mean_dy, mean_dy_xhat)]

    def chunk(lo: int, hi: int) -> None:
        normalize_backward_into(dy[lo:hi], x[lo:hi], *per_channel, dx[lo:hi])

    parallel_for(chunk, x.shape[0], x.size)
    return dx


def normalize_backward_reference(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    scale: np.ndarray,
    mean_dy: np.ndarray,
    mean_dy_xhat: np.ndarray,
) -> np.ndarray:
    def col(v: np.ndarray) -> np.ndarray:
        return v[:, None]

    xhat = (x - col(mean)) * col(inv_std)
    dx = col(scale) * (dy - col(mean_dy) - xhat * col(mean_dy_xhat))
    return dx.astype(dy.dtype)


def _f64(v: np.ndarray) -> np.ndarray:
    """Per-channel vectors go to the kernels as contiguous float64, one compiled version each."""
    return np.ascontiguousarray(v, dtype=np.float64)
