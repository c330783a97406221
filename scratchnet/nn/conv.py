"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col + matmul.

Notation: x (N, C, H, W), weight (OC, C, KH, KW), bias (OC,), stride (sh, sw), padding
(ph, pw). im2col gathers every receptive field of x into a column of a matrix, so that the
whole convolution, over every sample and position, is one BLAS product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.kernels.im2col import col2im, im2col, output_size
from scratchnet.nn import init
from scratchnet.nn.module import Module, Parameter
from scratchnet.tensor import Context, Function, Tensor
from scratchnet.threads import batch_chunks, run_chunks

IntPair = int | tuple[int, int]


class Conv2dFunction(Function):
    """y[n, o, oh, ow] = bias[o] + sum over (c, kh, kw) of
                         weight[o, c, kh, kw] * x[n, c, oh * sh - ph + kh, ow * sw - pw + kw]

    (x is zero outside its H x W plane: that is the padding.) With
    cols = im2col(x) of shape (C * KH * KW, N * OH * OW) and w2 = weight.reshape(OC, -1):

        forward:   y2 = w2 @ cols + bias[:, None]          (OC, N * OH * OW)

    and y is y2 reordered from (OC, N, OH, OW) to (N, OC, OH, OW).

    Backward, with dy2 = dy reordered to (OC, N * OH * OW):

        dbias   = dy2.sum(1)              each bias entry was added at every position
        dweight = dy2 @ cols.T            the gradient of a matmul with respect to its left side
        dcols   = w2.T @ dy2              ... and with respect to its right side
        dx      = col2im(dcols)           every copied x entry gets the sum of its copies'
                                          gradients (overlapping windows add up)

    Samples are independent, so the batch is cut into chunks, one per thread, and each
    chunk runs the formulas above on its own samples; dweight and dbias add up the chunks'
    shares.

    Shapes: x (N, C, H, W), weight (OC, C, KH, KW), bias (OC,) -> y (N, OC, OH, OW), with
        OH = (H + 2 * ph - KH) // sh + 1,   OW = (W + 2 * pw - KW) // sw + 1.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
    ) -> np.ndarray:
        N, C, H, W = x.shape
        OC, _, KH, KW = weight.shape
        (sh, sw), (ph, pw) = stride, padding
        OH = output_size(H, KH, sh, ph)
        OW = output_size(W, KW, sw, pw)

        w2 = weight.reshape(OC, C * KH * KW)
        y = np.empty((N, OC, OH, OW), dtype=x.dtype)

        def forward_chunk(lo: int, hi: int) -> np.ndarray:
            """Samples lo..hi-1: im2col, one matrix product, and the move into NCHW order."""
            cols = im2col(x[lo:hi], KH, KW, sh, sw, ph, pw)
            y2 = w2 @ cols
            if bias is not None:
                y2 += bias[:, None]
            # (OC, n, OH*OW) -> (n, OC, OH*OW): each copied block is one output plane.
            y[lo:hi] = y2.reshape(OC, hi - lo, OH, OW).transpose(1, 0, 2, 3)
            return cols

        # The batch is cut into one chunk of samples per thread (scratchnet.threads), each
        # chunk the whole convolution above on its own samples, on its own core.
        chunks = batch_chunks(N)
        chunk_cols = run_chunks(forward_chunk, chunks)

        ctx.x_shape, ctx.weight, ctx.stride, ctx.padding = x.shape, weight, stride, padding
        ctx.chunks = chunks
        ctx.cols = dict(zip((lo for lo, _ in chunks), chunk_cols))
        if not ctx.needs_input_grad[1]:
            ctx.cols = None
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, ...]:
        _, C, H, W = ctx.x_shape
        weight = ctx.weight
        OC, _, KH, KW = weight.shape
        (sh, sw), (ph, pw) = ctx.stride, ctx.padding
        needs = ctx.needs_input_grad

        w2 = weight.reshape(OC, -1)
        dx = np.empty(ctx.x_shape, dtype=dy.dtype) if needs[0] else None

        def backward_chunk(lo: int, hi: int) -> tuple[Any, Any]:
            """Samples lo..hi-1 (the chunk forward used): their dx, and their share of
            dweight and dbias."""
            dy2 = np.ascontiguousarray(dy[lo:hi].transpose(1, 0, 2, 3)).reshape(OC, -1)
            if needs[0]:  # skipped for the first layer, whose input is the image
                dx[lo:hi] = col2im(w2.T @ dy2, hi - lo, C, H, W, KH, KW, sh, sw, ph, pw)
            dweight = dy2 @ ctx.cols[lo].T if needs[1] else None
            # dy2.sum(1) as a matrix-vector product, which the BLAS runs about 3x faster.
            dbias = dy2 @ np.ones(dy2.shape[1], dtype=dy2.dtype) if has_bias else None
            return dweight, dbias

        has_bias = len(needs) == 3 and needs[2]
        parts = run_chunks(backward_chunk, ctx.chunks)  # the chunks of forward, ctx.cols's keys
        dweight = sum(p[0] for p in parts).reshape(weight.shape) if needs[1] else None
        dbias = sum(p[1] for p in parts) if has_bias else None
        if len(needs) == 2:
            return dx, dweight
        return dx, dweight, dbias


def to_pair(value: IntPair, name: str) -> tuple[int, int]:
    """An int n becomes (n, n); a pair is checked and returned as a tuple of ints."""
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return int(pair[0]), int(pair[1])


def _check_conv_args(
    x: Tensor,
    weight: Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    caller: str,
) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{caller} expects a 4-D input (N, C, H, W), got {x.ndim}-D input of shape "
            f"{tuple(x.shape)}"
        )
    if weight.ndim != 4:
        raise ValueError(f"{caller}: weight must be (OC, C, KH, KW), got shape {weight.shape}")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"{caller} expected {weight.shape[1]} input channels, got {x.shape[1]} "
            f"(input shape {tuple(x.shape)}, weight shape {tuple(weight.shape)})"
        )
    if min(stride) < 1:
        raise ValueError(f"{caller}: stride must be at least 1, got {stride}")
    if min(padding) < 0:
        raise ValueError(f"{caller}: padding must be non-negative, got {padding}")
    (H, W), (KH, KW) = x.shape[2:], weight.shape[2:]
    OH = output_size(H, KH, stride[0], padding[0])
    OW = output_size(W, KW, stride[1], padding[1])
    if OH <= 0 or OW <= 0:
        raise ValueError(
            f"{caller}: output size ({OH}, {OW}) is too small: input ({H}, {W}) with padding "
            f"{padding} is smaller than the kernel ({KH}, {KW})"
        )


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
) -> Tensor:
    """2-D convolution of x (N, C, H, W) with weight (OC, C, KH, KW), as F.conv2d."""
    return _conv2d(x, weight, bias, stride, padding, caller="conv2d")


def _conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: IntPair,
    padding: IntPair,
    caller: str,
) -> Tensor:
    stride = to_pair(stride, "stride")
    padding = to_pair(padding, "padding")
    _check_conv_args(x, weight, stride, padding, caller)
    if bias is None:
        return Conv2dFunction.apply(x, weight, stride=stride, padding=padding)
    return Conv2dFunction.apply(x, weight, bias, stride=stride, padding=padding)


class Conv2d(Module):
    """A 2-D convolution layer, initialised as torch.nn.Conv2d.

    weight ~ kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = in_channels * KH * KW; bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = to_pair(kernel_size, "kernel_size")
        self.stride = to_pair(stride, "stride")
        self.padding = to_pair(padding, "padding")
        shape = (out_channels, in_channels, *self.kernel_size)
        self.weight = Parameter(init.kaiming_uniform(shape, a=5**0.5))
        if bias:
            bound = init.fan_in_bias_bound(shape)
            self.bias = Parameter(init.uniform((out_channels,), -bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        return _conv2d(x, self.weight, self.bias, self.stride, self.padding, caller=name)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.bias is None:
            text += ", bias=False"
        return text
