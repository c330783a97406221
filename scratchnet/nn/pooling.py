"""Pooling: max and average pooling over sliding windows, and adaptive average pooling."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from scratchnet.kernels.im2col import output_size
from scratchnet.kernels.pool import max_pool2d_backward, max_pool2d_forward
from scratchnet.nn.module import Module
from scratchnet.nn.utils import IntPair, check_4d, to_pair
from scratchnet.tensor import Context, Function, Tensor

# ---------------------------------------------------------------------------------------------
# Max pooling
# ---------------------------------------------------------------------------------------------


class MaxPool2dFunction(Function):
    """y[n, c, oh, ow] = max over kh < KH, kw < KW of x[n, c, oh * sh - ph + kh, ow * sw - pw + kw]

    (positions in the padding count as -inf, so they are never the maximum).

    Backward: only the maximum affected y, so dy flows to it alone:
        dx[n, c, argmax] += dy[n, c, oh, ow]
    where argmax is the FIRST maximum of the window (rows, then columns), as in PyTorch: after
    a ReLU many windows hold several zeros, and the gradient goes to the first. Overlapping
    windows (stride < kernel) can share their maximum, which then receives the sum.

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW), with
        OH = (H + 2 * ph - KH) // sh + 1,   OW = (W + 2 * pw - KW) // sw + 1.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        kernel_size: tuple[int, int] = (2, 2),
        stride: tuple[int, int] = (2, 2),
        padding: tuple[int, int] = (0, 0),
    ) -> np.ndarray:
        # The indices are backward's alone: a pass that needs no gradient skips them.
        y, argmax = max_pool2d_forward(
            x, *kernel_size, *stride, *padding, return_indices=ctx.needs_input_grad[0]
        )
        ctx.argmax, ctx.x_shape = argmax, x.shape
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return max_pool2d_backward(dy, ctx.argmax, ctx.x_shape)


def max_pool2d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
) -> Tensor:
    """Max over KH x KW windows of x (N, C, H, W), as F.max_pool2d; stride defaults to kernel."""
    return _max_pool2d(x, kernel_size, stride, padding, caller="max_pool2d")


def _max_pool2d(x: Tensor, kernel_size: Any, stride: Any, padding: Any, caller: str) -> Tensor:
    kernel, stride, padding = _check_pool_args(x, kernel_size, stride, padding, caller)
    H, W = x.shape[2:]
    OH = output_size(H, kernel[0], stride[0], padding[0])
    OW = output_size(W, kernel[1], stride[1], padding[1])
    _check_output_size(H, W, OH, OW, kernel, padding, caller)
    return MaxPool2dFunction.apply(x, kernel_size=kernel, stride=stride, padding=padding)


def _check_pool_args(
    x: Tensor, kernel_size: Any, stride: Any, padding: Any, caller: str
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """kernel, stride (the kernel when None) and padding as pairs, checked as PyTorch does."""
    kernel = to_pair(kernel_size, "kernel_size")
    stride = kernel if stride is None else to_pair(stride, "stride")
    padding = to_pair(padding, "padding")
    check_4d(x, caller)
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(
            f"{caller}: kernel_size and stride must be at least 1, got {kernel} and {stride}"
        )
    if min(padding) < 0 or padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{caller}: padding must be between 0 and half the kernel size, got padding "
            f"{padding} for kernel {kernel}"
        )
    return kernel, stride, padding


def _check_output_size(
    H: int, W: int, OH: int, OW: int, kernel: tuple[int, int], padding: tuple[int, int], caller: str
) -> None:
    if OH <= 0 or OW <= 0:
        raise ValueError(
            f"{caller}: output size ({OH}, {OW}) is too small: input ({H}, {W}) with padding "
            f"{padding} is smaller than the kernel {kernel}"
        )


class MaxPool2d(Module):
    def __init__(
        self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        return _max_pool2d(x, self.kernel_size, self.stride, self.padding, caller=name)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# ---------------------------------------------------------------------------------------------
# Average pooling
# ---------------------------------------------------------------------------------------------


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """PyTorch's number of windows along one axis:

        floor mode:  (size + 2 * padding - kernel) // stride + 1
        ceil mode:   ceil((size + 2 * padding - kernel) / stride) + 1, less one if that last
                     window would start at or after size + padding (in the right padding)

    so that with ceil_mode every window starts inside the input or its left padding.
    """
    if not ceil_mode:
        return output_size(size, kernel, stride, padding)
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _window_counts(
    size: int, kernel: int, stride: int, padding: int, out: int, count_include_pad: bool
) -> np.ndarray:
    """How many positions along one axis each of the `out` windows divides by, as PyTorch:

    start = o * stride - padding,   end = min(start + kernel, size + padding)
    count_include_pad:  end - start                      (padding counts, ceil_mode's
                                                         overhang past it does not)
    otherwise:          min(end, size) - max(start, 0)   (only positions inside x)
    """
    start = np.arange(out) * stride - padding
    end = np.minimum(start + kernel, size + padding)
    if count_include_pad:
        return end - start
    return np.minimum(end, size) - np.maximum(start, 0)


class AvgPool2dFunction(Function):
    """y[n, c, oh, ow] = sum over kh < KH, kw < KW of x[n, c, oh * sh - ph + kh, ow * sw - pw + kw]
                         / divisor[oh, ow]

    (x is zero outside its H x W plane.) divisor is the window's size, counted as PyTorch
    does (see _window_counts), or divisor_override.

    Backward: every input in the window contributed 1 / divisor of y, so
        dx[n, c, oh * sh - ph + kh, ow * sw - pw + kw] += dy[n, c, oh, ow] / divisor[oh, ow]
    (+= because overlapping windows, stride < kernel, share inputs; entries that fall in the
    padding are dropped).

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW), OH and OW from pool_output_size.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        kernel_size: tuple[int, int] = (2, 2),
        stride: tuple[int, int] = (2, 2),
        padding: tuple[int, int] = (0, 0),
        out_size: tuple[int, int] = (1, 1),
        divisor: np.ndarray | None = None,
    ) -> np.ndarray:
        N, C, H, W = x.shape
        padded = np.zeros(_padded_shape(x.shape, kernel_size, stride, padding, out_size), x.dtype)
        padded[:, :, padding[0] : padding[0] + H, padding[1] : padding[1] + W] = x
        y = np.zeros((N, C, *out_size), dtype=x.dtype)
        for window in _kernel_offsets(kernel_size, stride, out_size):
            y += padded[window]
        y /= divisor
        ctx.x_shape, ctx.padded_shape, ctx.divisor = x.shape, padded.shape, divisor
        ctx.window = kernel_size, stride, padding, out_size
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        kernel_size, stride, padding, out_size = ctx.window
        H, W = ctx.x_shape[2:]
        share = dy / ctx.divisor
        dpadded = np.zeros(ctx.padded_shape, dtype=dy.dtype)
        for window in _kernel_offsets(kernel_size, stride, out_size):
            # Within one (kh, kw) offset the strided slice has no repeated entries: += is exact.
            dpadded[window] += share
        return np.ascontiguousarray(
            dpadded[:, :, padding[0] : padding[0] + H, padding[1] : padding[1] + W]
        )


def _padded_shape(
    x_shape: tuple[int, ...],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    out_size: tuple[int, int],
) -> tuple[int, int, int, int]:
    """x with its padding, and room for ceil_mode's last windows, which may overhang it."""
    N, C, H, W = x_shape
    rows = max(H + 2 * padding[0], (out_size[0] - 1) * stride[0] + kernel_size[0])
    cols = max(W + 2 * padding[1], (out_size[1] - 1) * stride[1] + kernel_size[1])
    return N, C, rows, cols


def _kernel_offsets(
    kernel_size: tuple[int, int], stride: tuple[int, int], out_size: tuple[int, int]
) -> Iterator[tuple[slice, ...]]:
    """For each kernel offset (kh, kw), the slice of the padded input that it reads in every
    window: padded[window][n, c, oh, ow] = padded[n, c, oh * sh + kh, ow * sw + kw]."""
    (KH, KW), (sh, sw), (OH, OW) = kernel_size, stride, out_size
    for kh in range(KH):
        for kw in range(KW):
            yield (
                slice(None),
                slice(None),
                slice(kh, kh + sh * OH, sh),
                slice(kw, kw + sw * OW, sw),
            )


def avg_pool2d(
    x: Tensor,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Mean over KH x KW windows of x (N, C, H, W), as F.avg_pool2d; stride defaults to kernel.

    ceil_mode: count a last, partial window (one that starts inside the input or its left
    padding). count_include_pad: divide by the window's size with the zero padding in it
    (PyTorch's default), rather than by the number of inputs it covers. divisor_override:
    divide every window's sum by this number instead.
    """
    return _avg_pool2d(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
        caller="avg_pool2d",
    )  # fmt: skip


def _avg_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any,
    padding: Any,
    ceil_mode: bool,
    count_include_pad: bool,
    divisor_override: int | None,
    caller: str,
) -> Tensor:
    kernel, stride, padding = _check_pool_args(x, kernel_size, stride, padding, caller)
    if divisor_override == 0:
        raise ValueError(f"{caller}: divisor_override must not be zero")
    H, W = x.shape[2:]
    OH = pool_output_size(H, kernel[0], stride[0], padding[0], ceil_mode)
    OW = pool_output_size(W, kernel[1], stride[1], padding[1], ceil_mode)
    _check_output_size(H, W, OH, OW, kernel, padding, caller)
    if divisor_override is not None:
        divisor = np.full((OH, OW), divisor_override, dtype=x.dtype)
    else:
        rows = _window_counts(H, kernel[0], stride[0], padding[0], OH, count_include_pad)
        cols = _window_counts(W, kernel[1], stride[1], padding[1], OW, count_include_pad)
        divisor = np.outer(rows, cols).astype(x.dtype)
    return AvgPool2dFunction.apply(
        x, kernel_size=kernel, stride=stride, padding=padding, out_size=(OH, OW), divisor=divisor
    )


class AvgPool2d(Module):
    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return _avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override, caller=type(self).__name__,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# ---------------------------------------------------------------------------------------------
# Adaptive average pooling
# ---------------------------------------------------------------------------------------------


def adaptive_bounds(size: int, out_size: int) -> list[tuple[int, int]]:
    """PyTorch's windows along one axis: output i averages the inputs [start, end) with

        start = floor(i * size / out_size),   end = ceil((i + 1) * size / out_size).

    The windows cover the input; neighbours share an input where out_size does not divide
    size.
    """
    return [((i * size) // out_size, math.ceil((i + 1) * size / out_size)) for i in range(out_size)]


def adaptive_pool_matrix(H: int, W: int, OH: int, OW: int, dtype: Any) -> np.ndarray:
    """The (H * W, OH * OW) matrix P of AdaptiveAvgPool2d: column (i, j) holds 1 / count on the
    inputs of window (i, j) (bounds from adaptive_bounds) and 0 elsewhere, so that

        y.reshape(N * C, OH * OW) = x.reshape(N * C, H * W) @ P.

    Cached per shape and dtype; read-only.
    """
    return _pool_matrix(H, W, OH, OW, np.dtype(dtype).str)


@functools.lru_cache(maxsize=32)
def _pool_matrix(H: int, W: int, OH: int, OW: int, dtype: str) -> np.ndarray:
    P = np.zeros((H, W, OH, OW))
    for i, (h0, h1) in enumerate(adaptive_bounds(H, OH)):
        for j, (w0, w1) in enumerate(adaptive_bounds(W, OW)):
            P[h0:h1, w0:w1, i, j] = 1.0 / ((h1 - h0) * (w1 - w0))
    P = P.reshape(H * W, OH * OW).astype(dtype)
    P.flags.writeable = False
    return P


class AdaptiveAvgPool2dFunction(Function):
    """y[n, c, i, j] = mean of x[n, c, h0:h1, w0:w1], with h0 = floor(i * H / OH),
                       h1 = ceil((i + 1) * H / OH), and likewise for w0, w1 along W.

    For output size (1, 1) this is the global average: y = x.mean(axis=(2, 3)).

    Every output is a fixed weighted sum of inputs, so the whole pool is one matrix product
    with P = adaptive_pool_matrix(H, W, OH, OW) (1 / count inside window (i, j), 0 outside):

        y  = x  @ P      x as (N * C, H * W), y as (N * C, OH * OW)

    Backward: each of the window's count = (h1 - h0) * (w1 - w0) inputs contributed 1/count
    of y, so
        dx[n, c, h0:h1, w0:w1] += dy[n, c, i, j] / count
    (+= because neighbouring windows can share a row or column), which is

        dx = dy @ P.T

    One BLAS product replaces a NumPy mean per window: for one image and a 3x3 output of a
    7x7 map, 9 means took about 0.3 ms, the product a few microseconds.

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW).
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, output_size: tuple[int, int] = (1, 1)) -> np.ndarray:
        N, C, H, W = x.shape
        OH, OW = output_size
        ctx.x_shape, ctx.output_size = x.shape, output_size
        P = adaptive_pool_matrix(H, W, OH, OW, x.dtype)
        if (OH, OW) == (1, 1):  # the global mean: a matrix-vector product, BLAS's gemv
            return (x.reshape(N * C, H * W) @ P[:, 0]).reshape(N, C, 1, 1)
        return (x.reshape(N * C, H * W) @ P).reshape(N, C, OH, OW)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        N, C, H, W = ctx.x_shape
        OH, OW = ctx.output_size
        if (OH, OW) == (1, 1):  # every input gets dy / (H * W): a broadcast, no product
            scale = dy.dtype.type(1.0 / (H * W))
            return np.broadcast_to(dy * scale, ctx.x_shape).copy()
        P = adaptive_pool_matrix(H, W, OH, OW, dy.dtype)
        return (dy.reshape(N * C, OH * OW) @ P.T).reshape(ctx.x_shape)


def adaptive_avg_pool2d(x: Tensor, output_size: int | tuple[int | None, int | None]) -> Tensor:
    """Average x (N, C, H, W) over windows that give an (OH, OW) output, as F.adaptive_avg_pool2d.

    output_size may be an int, or a pair in which None keeps that input dimension.
    """
    return _adaptive_avg_pool2d(x, output_size, caller="adaptive_avg_pool2d")


def _adaptive_avg_pool2d(x: Tensor, output_size: Any, caller: str) -> Tensor:
    check_4d(x, caller)
    H, W = x.shape[2:]
    if isinstance(output_size, int | np.integer):
        output_size = (output_size, output_size)
    if len(output_size) != 2:
        raise ValueError(f"{caller}: output_size must be an int or a pair, got {output_size!r}")
    out = (
        H if output_size[0] is None else int(output_size[0]),
        W if output_size[1] is None else int(output_size[1]),
    )
    if min(out) < 1:
        raise ValueError(f"{caller}: output_size must be positive, got {output_size!r}")
    return AdaptiveAvgPool2dFunction.apply(x, output_size=out)


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        return _adaptive_avg_pool2d(x, self.output_size, caller=name)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
