"""Pooling: max pooling over sliding windows, and adaptive average pooling."""

from __future__ import annotations

import math
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
        y, argmax = max_pool2d_forward(x, *kernel_size, *stride, *padding)
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
    H, W = x.shape[2:]
    OH = output_size(H, kernel[0], stride[0], padding[0])
    OW = output_size(W, kernel[1], stride[1], padding[1])
    if OH <= 0 or OW <= 0:
        raise ValueError(
            f"{caller}: output size ({OH}, {OW}) is too small: input ({H}, {W}) with padding "
            f"{padding} is smaller than the kernel {kernel}"
        )
    return MaxPool2dFunction.apply(x, kernel_size=kernel, stride=stride, padding=padding)


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
# Adaptive average pooling
# ---------------------------------------------------------------------------------------------


def _adaptive_bounds(size: int, out_size: int) -> list[tuple[int, int]]:
    """PyTorch's windows along one axis: output i averages the inputs [start, end) with

        start = floor(i * size / out_size),   end = ceil((i + 1) * size / out_size).

    The windows cover the input; neighbours share an input where out_size does not divide
    size.
    """
    return [((i * size) // out_size, math.ceil((i + 1) * size / out_size)) for i in range(out_size)]


class AdaptiveAvgPool2dFunction(Function):
    """y[n, c, i, j] = mean of x[n, c, h0:h1, w0:w1], with h0 = floor(i * H / OH),
                       h1 = ceil((i + 1) * H / OH), and likewise for w0, w1 along W.

    For output size (1, 1) this is the global average: y = x.mean(axis=(2, 3)).

    Backward: each of the window's count = (h1 - h0) * (w1 - w0) inputs contributed 1/count
    of y, so
        dx[n, c, h0:h1, w0:w1] += dy[n, c, i, j] / count
    (+= because neighbouring windows can share a row or column).

    Shapes: x (N, C, H, W) -> y (N, C, OH, OW).
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, output_size: tuple[int, int] = (1, 1)) -> np.ndarray:
        N, C, H, W = x.shape
        OH, OW = output_size
        ctx.x_shape, ctx.output_size = x.shape, output_size
        if (OH, OW) == (1, 1):
            # The global mean as a matrix-vector product: BLAS sums rows of 49 numbers about
            # five times faster than x.mean(axis=(2, 3)).
            weights = np.full(H * W, 1.0 / (H * W), dtype=x.dtype)
            return (x.reshape(N * C, H * W) @ weights).reshape(N, C, 1, 1)
        y = np.empty((N, C, OH, OW), dtype=x.dtype)
        for i, (h0, h1) in enumerate(_adaptive_bounds(H, OH)):
            for j, (w0, w1) in enumerate(_adaptive_bounds(W, OW)):
                y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        H, W = ctx.x_shape[2:]
        OH, OW = ctx.output_size
        if (OH, OW) == (1, 1):
            scale = dy.dtype.type(1.0 / (H * W))
            return np.broadcast_to(dy * scale, ctx.x_shape).copy()
        dx = np.zeros(ctx.x_shape, dtype=dy.dtype)
        for i, (h0, h1) in enumerate(_adaptive_bounds(H, OH)):
            for j, (w0, w1) in enumerate(_adaptive_bounds(W, OW)):
                count = (h1 - h0) * (w1 - w0)
                dx[:, :, h0:h1, w0:w1] += (dy[:, :, i, j] / dy.dtype.type(count))[:, :, None, None]
        return dx


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
