"""im2col and col2im: turn a convolution into one matrix product, and scatter its gradient back.

im2col copies every receptive field of x into a column of `cols`:

    cols[(c, kh, kw), (n, oh, ow)] = x[n, c, oh * sh - ph + kh * dh, ow * sw - pw + kw * dw]

(0 where that index falls in the zero padding). The dilation (dh, dw) spreads the kernel's
taps dh rows and dw columns apart; it is 1 for an ordinary convolution. A convolution is then
one matrix product, `weight.reshape(OC, C * KH * KW) @ cols`, which the multi-threaded BLAS
runs fast.

col2im is the adjoint of im2col: every entry of cols is added back to the x position it was
copied from. A position covered by several windows (kernel larger than stride) receives the
sum of their contributions: the chain rule for a value that was used several times.

Shapes: x (N, C, H, W); cols (C * KH * KW, N * OH * OW), with
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1,   and OW likewise
(with dh = 1: (H + 2 * ph - KH) // sh + 1).
The rows run over (c, kh, kw), matching `weight.reshape(OC, -1)`. The columns run over
(n, oh, ow), so the product comes out as (OC, N, OH, OW): each sample's output plane is one
contiguous block, cheap to move into NCHW order.

Each kernel writes into an array that its wrapper allocates with NumPy (whose large buffers
get transparent huge pages: fewer page faults than an allocation inside Numba). Each has a
vectorised NumPy twin of the same signature (`*_reference`), the oracle in
tests/test_kernels.py. Run with NUMBA_DISABLE_JIT=1 to step through the loops.

A note on the loops: Numba checks every computed index for being negative (Python's
wrap-around), which costs more than the copy itself. An index that is a `range(n)` loop
variable skips the check, so the kernels first cut a view (`src`, `dst`) at the right offset
and then index it with loop variables only.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from scratchnet.runtime.mode import reference_mode


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Number of window positions along one axis:

        (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1

    which is (size + 2 * padding - kernel) // stride + 1 without dilation.
    """
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@njit(cache=True)
def valid_range(kernel_offset, stride, padding, size, out_size):
    """The outputs o whose input index o * stride - padding + kernel_offset lies in [0, size).

    Returned as a half-open range (lo, hi). Outside it, the window reads zero padding.
    """
    lo = 0
    while lo < out_size and lo * stride - padding + kernel_offset < 0:
        lo += 1
    hi = out_size
    while hi > lo and (hi - 1) * stride - padding + kernel_offset >= size:
        hi -= 1
    return lo, hi


# ---------------------------------------------------------------------------------------------
# im2col
# ---------------------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def im2col_into(x, KH, KW, sh, sw, ph, pw, dh, dw, cols):
    """Fill cols (C * KH * KW, N * OH * OW) with the receptive fields of x (N, C, H, W).

    One task per (c, n): it writes the (OH, OW) block of sample n in each of the KH * KW rows
    of channel c. Tasks run with n fastest, so consecutive tasks write consecutive memory.
    (Serial: the convolution cuts its batch into one chunk per thread and calls this per chunk.)
    """
    N, C, H, W = x.shape
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    blocks = cols.reshape((C * KH * KW, N, OH, OW))
    for task in range(C * N):
        c = task // N
        n = task % N
        for kh in range(KH):
            oh_lo, oh_hi = valid_range(kh * dh, sh, ph, H, OH)
            rows = oh_hi - oh_lo
            for kw in range(KW):
                ow_lo, ow_hi = valid_range(kw * dw, sw, pw, W, OW)
                count = ow_hi - ow_lo
                out = blocks[(c * KH + kh) * KW + kw, n]
                if rows < OH or count < OW:  # part of this window position sees padding
                    for i in range(OH):
                        for j in range(OW):
                            out[i, j] = 0
                if rows <= 0 or count <= 0:
                    continue
                ih = oh_lo * sh - ph + kh * dh  # first input row and column the window reads
                iw = ow_lo * sw - pw + kw * dw
                ih_stop = ih + (rows - 1) * sh + 1
                iw_stop = iw + (count - 1) * sw + 1
                src = x[n, c, ih:ih_stop:sh, iw:iw_stop:sw]
                dst = out[oh_lo:oh_hi, ow_lo:ow_hi]
                for i in range(rows):
                    for j in range(count):
                        dst[i, j] = src[i, j]


def im2col(
    x: np.ndarray,
    KH: int,
    KW: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    dh: int = 1,
    dw: int = 1,
) -> np.ndarray:
    """cols[(c, kh, kw), (n, oh, ow)] = x[n, c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw] (0 in
    padding)."""
    if reference_mode():
        return im2col_reference(x, KH, KW, sh, sw, ph, pw, dh, dw)
    N, C, H, W = x.shape
    OH = output_size(H, KH, sh, ph, dh)
    OW = output_size(W, KW, sw, pw, dw)
    x = np.ascontiguousarray(x)
    cols = np.empty((C * KH * KW, N * OH * OW), dtype=x.dtype)
    im2col_into(x, KH, KW, sh, sw, ph, pw, dh, dw, cols)
    return cols


def im2col_reference(
    x: np.ndarray,
    KH: int,
    KW: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    dh: int = 1,
    dw: int = 1,
) -> np.ndarray:
    """NumPy twin of im2col: one strided slice of the padded input per kernel offset."""
    N, C, H, W = x.shape
    OH = output_size(H, KH, sh, ph, dh)
    OW = output_size(W, KW, sw, pw, dw)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for kh in range(KH):
        for kw in range(KW):
            i, j = kh * dh, kw * dw
            window = padded[:, :, i : i + sh * OH : sh, j : j + sw * OW : sw]
            cols[:, kh, kw] = window.transpose(1, 0, 2, 3)
    return cols.reshape(C * KH * KW, N * OH * OW)


# ---------------------------------------------------------------------------------------------
# col2im
# ---------------------------------------------------------------------------------------------


@njit(nogil=True, cache=True)
def col2im_into(cols, KH, KW, sh, sw, ph, pw, dh, dw, dx):
    """Set dx (N, C, H, W) to the sum of cols over every window entry that copied each x entry.

    Overlapping windows add into the same dx entries, so the work goes plane by plane: a window
    never crosses planes, so each (c, n) plane's sums are complete when its task ends.
    """
    N, C, H, W = dx.shape
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    blocks = cols.reshape((C * KH * KW, N, OH, OW))
    for task in range(C * N):
        c = task // N
        n = task % N
        plane = dx[n, c]
        for i in range(H):
            for j in range(W):
                plane[i, j] = 0
        for kh in range(KH):
            oh_lo, oh_hi = valid_range(kh * dh, sh, ph, H, OH)
            rows = oh_hi - oh_lo
            for kw in range(KW):
                ow_lo, ow_hi = valid_range(kw * dw, sw, pw, W, OW)
                count = ow_hi - ow_lo
                if rows <= 0 or count <= 0:
                    continue
                ih = oh_lo * sh - ph + kh * dh
                iw = ow_lo * sw - pw + kw * dw
                ih_stop = ih + (rows - 1) * sh + 1
                iw_stop = iw + (count - 1) * sw + 1
                src = blocks[(c * KH + kh) * KW + kw, n, oh_lo:oh_hi, ow_lo:ow_hi]
                dst = plane[ih:ih_stop:sh, iw:iw_stop:sw]
                for i in range(rows):
                    for j in range(count):
                        dst[i, j] += src[i, j]


def col2im(
    cols: np.ndarray,
    N: int,
    C: int,
    H: int,
    W: int,
    KH: int,
    KW: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    dh: int = 1,
    dw: int = 1,
) -> np.ndarray:
    """dx[n, c, ih, iw] = sum of the cols entries that im2col copied from x[n, c, ih, iw]."""
    if reference_mode():
        return col2im_reference(cols, N, C, H, W, KH, KW, sh, sw, ph, pw, dh, dw)
    dx = np.empty((N, C, H, W), dtype=cols.dtype)
    col2im_into(np.ascontiguousarray(cols), KH, KW, sh, sw, ph, pw, dh, dw, dx)
    return dx


def col2im_reference(
    cols: np.ndarray,
    N: int,
    C: int,
    H: int,
    W: int,
    KH: int,
    KW: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
    dh: int = 1,
    dw: int = 1,
) -> np.ndarray:
    """NumPy twin of col2im: add each kernel offset's slice back into the padded gradient."""
    OH = output_size(H, KH, sh, ph, dh)
    OW = output_size(W, KW, sw, pw, dw)
    blocks = cols.reshape(C, KH, KW, N, OH, OW)
    padded = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for kh in range(KH):
        for kw in range(KW):
            # Within one (kh, kw) the strided slice has no repeated entries, so += is exact.
            i, j = kh * dh, kw * dw
            window = padded[:, :, i : i + sh * OH : sh, j : j + sw * OW : sw]
            window += blocks[:, kh, kw].transpose(1, 0, 2, 3)
    return np.ascontiguousarray(padded[:, :, ph : ph + H, pw : pw + W])
