"""Naive nested-loop convolution and max-pooling: the definitions, one output entry at a time.

The oracles that test_conv, test_kernels and test_pooling check the fast paths against.
"""

from __future__ import annotations

import numpy as np


def output_hw(
    H: int, W: int, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> tuple[int, int]:
    """OH = (H + 2 * ph - KH) // sh + 1, and OW likewise."""
    (KH, KW), (sh, sw), (ph, pw) = kernel, stride, padding
    return (H + 2 * ph - KH) // sh + 1, (W + 2 * pw - KW) // sw + 1


def naive_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> np.ndarray:
    """y[n, o, i, j] = bias[o] + sum(x window * weight[o]) in float64, zero-padded."""
    N, C, H, W = x.shape
    OC, _, KH, KW = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    OH, OW = output_hw(H, W, (KH, KW), stride, padding)
    y = np.zeros((N, OC, OH, OW), dtype=np.float64)
    for n in range(N):
        for o in range(OC):
            for i in range(OH):
                for j in range(OW):
                    total = 0.0 if bias is None else float(bias[o])
                    for c in range(C):
                        for kh in range(KH):
                            for kw in range(KW):
                                ih = i * sh - ph + kh
                                iw = j * sw - pw + kw
                                if 0 <= ih < H and 0 <= iw < W:
                                    total += float(x[n, c, ih, iw]) * float(weight[o, c, kh, kw])
                    y[n, o, i, j] = total
    return y


def naive_max_pool(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> np.ndarray:
    """y[n, c, i, j] = the largest x in the window; padding never wins (it is -inf)."""
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw) = kernel, stride, padding
    OH, OW = output_hw(H, W, kernel, stride, padding)
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    best = -np.inf
                    for kh in range(KH):
                        for kw in range(KW):
                            ih, iw = i * sh - ph + kh, j * sw - pw + kw
                            if 0 <= ih < H and 0 <= iw < W:
                                best = max(best, x[n, c, ih, iw])
                    y[n, c, i, j] = best
    return y
