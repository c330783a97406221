"""Max-pooling kernels: the scan that finds each window's maximum, and the scatter of dy back.

Forward, for every window (n, c, oh, ow):

    y[n, c, oh, ow] = max of x[n, c, ih, iw] over the window's input positions
    argmax[n, c, oh, ow] = ih * W + iw of the FIRST maximum, scanning rows then columns

The window starts at (oh * sh - ph, ow * sw - pw) and spans KH x KW; positions in the padding
count as -inf, so they are never chosen. "First maximum" is PyTorch's rule: after a ReLU,
windows full of zeros are common, and the gradient must go to the same zero as in PyTorch. A
NaN is always taken (the last NaN of the window), as PyTorch does, so NaNs propagate.

Backward: dx[n, c, argmax[n, c, oh, ow]] += dy[n, c, oh, ow]. Overlapping windows (stride
smaller than the kernel) can pick the same input, which then receives the sum.

argmax is int32, an index into the (H, W) plane: half the memory traffic of int64. Only
backward reads it, so a forward pass that needs no gradient (inference) passes argmax=None
and writes y alone: Numba compiles that call separately, with the stores to argmax pruned
away. Measured at batch 1000, one thread, CPU time: the CNN's two pools 28.9 + 14.2 ms with
argmax, 16.4 + 9.6 ms without.

Each kernel has a vectorised NumPy twin of the same signature (`*_reference`), the oracle in
tests/test_kernels.py. Run with NUMBA_DISABLE_JIT=1 to step through the loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numpy.lib.stride_tricks import sliding_window_view

from scratchnet.kernels.im2col import output_size
from scratchnet.runtime.mode import reference_mode
from scratchnet.runtime.threads import parallel_for


@njit(nogil=True, cache=True)
def max_pool2d_forward_into(padded, KH, KW, sh, sw, ph, pw, y, argmax):
    """Fill y and argmax (N, C, OH, OW) with each window's maximum and where it is (argmax
    None: y alone).

    `padded` is x with ph rows and pw columns of -inf on each side (x itself when there is no
    padding), so every window lies inside it and is read through one table of offsets: its
    k-th element (i, j) sits at `offsets[k] = i * Wp + j` from the window's corner.
    One task per (n, c) plane; each writes only its own plane of y and argmax, so the wrapper
    can hand ranges of samples to different threads.
    """
    N, C, Hp, Wp = padded.shape
    W = Wp - 2 * pw
    offsets = np.empty(KH * KW, dtype=np.int64)  # within the padded plane
    x_offsets = np.empty(KH * KW, dtype=np.int64)  # the same elements within x's plane
    for i in range(KH):
        for j in range(KW):
            offsets[i * KW + j] = i * Wp + j
            x_offsets[i * KW + j] = i * W + j
    common = KH == 2 and KW == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0
    for task in range(N * C):
        n = task // C
        c = task % C
        # argmax[n, c] cannot be taken of None: each call names its own argmax argument, so
        # that the `is None` tests inside are decided when the call is compiled.
        if common and not _has_nan(padded[n, c]):
            # MaxPool2d(2, 2), the usual case, with its four reads written out. A plane with
            # a NaN takes the general scan below, which knows the NaN rule.
            if argmax is None:
                _max_pool_plane_2x2(padded[n, c], y[n, c], None)
            else:
                _max_pool_plane_2x2(padded[n, c], y[n, c], argmax[n, c])
            continue
        plane = padded[n, c].reshape(Hp * Wp)
        window = (Wp, W, offsets, x_offsets, KW, sh, sw, ph, pw)
        if argmax is None:
            _max_pool_plane(plane, *window, y[n, c], None)
        else:
            _max_pool_plane(plane, *window, y[n, c], argmax[n, c])


@njit(cache=True)
def _has_nan(plane):
    """True if the 2-D plane holds a NaN.

    An or over every element, with no early exit, so that the loop vectorises: a tenth of
    the scan's time.
    """
    found = False
    for i in range(plane.shape[0]):
        row = plane[i]
        for j in range(row.shape[0]):
            found |= row[j] != row[j]
    return found


@njit(cache=True)
def _max_pool_plane_2x2(x, y, argmax):
    """One plane of a 2x2, stride-2, unpadded max pool, for a plane without NaN.

    The first maximum wins (strict >), as in _max_pool_plane. The NaN test is left out: with
    it (`value > best or value != value`) each comparison became a branch that the CPU
    mispredicts on about half the windows, and the pool of the CNN's first block took 13 ms
    instead of 1.5 ms at batch 128 (one thread, measured in CPU time).
    """
    OH, OW = y.shape
    W = x.shape[1]
    for oh in range(OH):
        top = x[2 * oh]
        bottom = x[2 * oh + 1]
        for ow in range(OW):
            j = 2 * ow
            at = 2 * oh * W + j
            best, best_at = top[j], at
            if top[j + 1] > best:
                best, best_at = top[j + 1], at + 1
            if bottom[j] > best:
                best, best_at = bottom[j], at + W
            if bottom[j + 1] > best:
                best, best_at = bottom[j + 1], at + W + 1
            y[oh, ow] = best
            if argmax is not None:
                argmax[oh, ow] = best_at


@njit(cache=True)
def _max_pool_plane(plane, Wp, W, offsets, x_offsets, KW, sh, sw, ph, pw, y, argmax):
    """One (n, c) plane of max_pool2d_forward_into: `plane` is the padded plane, flattened.

    (A function of its own, called once per plane.)
    """
    OH, OW = y.shape
    KK = offsets.size
    for oh in range(OH):
        for ow in range(OW):
            corner = oh * sh * Wp + ow * sw
            best = plane[corner]
            best_k = 0
            for k in range(1, KK):
                value = plane[corner + offsets[k]]
                if value > best or value != value:  # strict >: the first maximum wins
                    best = value
                    best_k = k
            if best == -np.inf:
                # Every element is -inf, padding included: take the first one inside x, as
                # PyTorch does (rare, so the scan above need not care where padding is).
                best_k = max(ph - oh * sh, 0) * KW + max(pw - ow * sw, 0)
            y[oh, ow] = best
            if argmax is not None:
                argmax[oh, ow] = (oh * sh - ph) * W + (ow * sw - pw) + x_offsets[best_k]


def max_pool2d_forward(
    x: np.ndarray,
    KH: int,
    KW: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    return_indices: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """y = the maximum of each window, argmax = ih * W + iw of its first maximum (None
    unless return_indices)."""
    if reference_mode():
        return max_pool2d_forward_reference(x, KH, KW, sh, sw, ph, pw, return_indices)
    N, C, H, W = x.shape
    OH = output_size(H, KH, sh, ph)
    OW = output_size(W, KW, sw, pw)
    if ph or pw:
        padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    else:
        padded = np.ascontiguousarray(x)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    argmax = np.empty((N, C, OH, OW), dtype=np.int32) if return_indices else None

    def chunk(lo: int, hi: int) -> None:
        part = None if argmax is None else argmax[lo:hi]
        max_pool2d_forward_into(padded[lo:hi], KH, KW, sh, sw, ph, pw, y[lo:hi], part)

    parallel_for(chunk, N, padded.size)
    return y, argmax


def max_pool2d_forward_reference(
    x: np.ndarray,
    KH: int,
    KW: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    return_indices: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """NumPy twin of max_pool2d_forward: argmax over a strided view of every window.

    np.argmax returns the first maximum, the same rule as the kernel (NaNs aside).
    """
    N, C, H, W = x.shape
    OH = output_size(H, KH, sh, ph)
    OW = output_size(W, KW, sw, pw)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    windows = sliding_window_view(padded, (KH, KW), axis=(2, 3))
    windows = windows[:, :, : sh * OH : sh, : sw * OW : sw].reshape(N, C, OH, OW, KH * KW)
    k = windows.argmax(axis=-1)
    y = np.take_along_axis(windows, k[..., None], axis=-1)[..., 0]
    ih = np.arange(OH)[:, None] * sh - ph + k // KW
    iw = np.arange(OW)[None, :] * sw - pw + k % KW
    argmax = (ih * W + iw).astype(np.int32) if return_indices else None
    return np.ascontiguousarray(y), argmax


@njit(nogil=True, cache=True)
def max_pool2d_backward_into(dy, argmax, dx):
    """Set dx (N, C, H, W) to dy scattered to each window's argmax (summed where they meet).

    Windows never cross (n, c) planes, so ranges of samples can go to different threads.
    """
    N, C, H, W = dx.shape
    OH = dy.shape[2]
    OW = dy.shape[3]
    flat = dx.reshape((N, C, H * W))
    for task in range(N * C):
        n = task // C
        c = task % C
        plane = flat[n, c]
        for i in range(H * W):
            plane[i] = 0
        for oh in range(OH):
            for ow in range(OW):
                plane[argmax[n, c, oh, ow]] += dy[n, c, oh, ow]


def max_pool2d_backward(dy: np.ndarray, argmax: np.ndarray, x_shape: tuple) -> np.ndarray:
    """dx[n, c, argmax[n, c, oh, ow]] += dy[n, c, oh, ow], zero elsewhere."""
    if reference_mode():
        return max_pool2d_backward_reference(dy, argmax, x_shape)
    dx = np.empty(x_shape, dtype=dy.dtype)
    dy = np.ascontiguousarray(dy)

    def chunk(lo: int, hi: int) -> None:
        max_pool2d_backward_into(dy[lo:hi], argmax[lo:hi], dx[lo:hi])

    parallel_for(chunk, x_shape[0], dx.size)
    return dx


def max_pool2d_backward_reference(dy: np.ndarray, argmax: np.ndarray, x_shape: tuple) -> np.ndarray:
    """NumPy twin of max_pool2d_backward: np.add.at sums repeated indices, as += must."""
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W), dtype=dy.dtype)
    planes = np.arange(N * C)[:, None]
    np.add.at(dx, (planes, argmax.reshape(N * C, -1)), dy.reshape(N * C, -1))
    return dx.reshape(x_shape)
