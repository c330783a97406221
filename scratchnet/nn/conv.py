"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col + matmul.

Notation: x (N, C, H, W), weight (OC, C, KH, KW), bias (OC,), stride (sh, sw), padding
(ph, pw). im2col gathers every receptive field of x into a column of a matrix, so that the
whole convolution, over every sample and position, is one BLAS product. 3x3 kernels at
stride 1 can go by Winograd's algorithm instead (scratchnet/nn/winograd.py); `conv2d` picks.
Dilated and grouped convolutions (depthwise included) take a path of their own,
GroupedConv2dFunction, so that the common case keeps its fast paths.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.kernels.im2col import col2im, im2col, output_size
from scratchnet.kernels.winograd import NB
from scratchnet.nn.module import Module
from scratchnet.nn.utils import IntPair, check_4d, init_weight_and_bias, to_pair
from scratchnet.nn.winograd import Winograd3x3Function
from scratchnet.runtime.mode import reference_mode
from scratchnet.runtime.threads import batch_chunks, map_chunks
from scratchnet.tensor import Context, Function, Tensor

# Below this many rows in cols (K = C * KH * KW), the products go one sample at a time (the
# first layer, C = 1, has K = 9): see multiply_per_sample.
SMALL_K = 32


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
    shares. With few rows in cols (K < SMALL_K), the products go sample by sample instead
    (multiply_per_sample, weight_grads_per_sample).

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
        N, _, H, W = x.shape
        OC, _, KH, KW = weight.shape
        (sh, sw), (ph, pw) = stride, padding
        window = (KH, KW, sh, sw, ph, pw)
        OH, OW = output_size(H, KH, sh, ph), output_size(W, KW, sw, pw)
        w2 = weight.reshape(OC, -1)
        y = np.empty((N, OC, OH, OW), dtype=x.dtype)
        multiply = multiply_per_sample if w2.shape[1] < SMALL_K else multiply_per_chunk

        def forward_chunk(lo: int, hi: int) -> np.ndarray:
            cols = im2col(x[lo:hi], *window)
            multiply(w2, cols, bias, out=y[lo:hi])
            return cols

        cols = map_chunks(forward_chunk, batch_chunks(N))  # {(lo, hi): that chunk's cols}
        # Only dweight reads cols again; the chunks themselves are backward's to reuse.
        ctx.cols = cols if ctx.needs_input_grad[1] else dict.fromkeys(cols)
        ctx.x_shape, ctx.weight, ctx.window = x.shape, weight, window
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, ...]:
        needs = ctx.needs_input_grad
        has_bias = len(needs) == 3 and needs[2]
        w2 = ctx.weight.reshape(len(ctx.weight), -1)
        dx = np.empty(ctx.x_shape, dtype=dy.dtype) if needs[0] else None
        # The first layer (its input is the image): no dx, and few rows in cols.
        per_sample = w2.shape[1] < SMALL_K and not needs[0]

        def backward_chunk(lo: int, hi: int) -> tuple[Any, Any]:
            cols = ctx.cols[lo, hi]
            if per_sample:
                return weight_grads_per_sample(dy[lo:hi], cols, needs[1], has_bias)
            dy2 = np.ascontiguousarray(dy[lo:hi].transpose(1, 0, 2, 3)).reshape(len(w2), -1)
            if needs[0]:
                dx[lo:hi] = col2im(w2.T @ dy2, hi - lo, *ctx.x_shape[1:], *ctx.window)
            dweight = dy2 @ cols.T if needs[1] else None
            dbias = row_sums(dy2) if has_bias else None
            return dweight, dbias

        return sum_chunk_grads(ctx, backward_chunk, dx)


class GroupedConv2dFunction(Function):
    """The general convolution: G groups and dilation (dh, dw). With Cg = C / G input and
    OCg = OC / G output channels per group, output channel o belongs to group g = o // OCg and
    sees only that group's inputs:

        y[n, o, oh, ow] = bias[o] + sum over (c < Cg, kh, kw) of weight[o, c, kh, kw] *
                          x[n, g * Cg + c, oh * sh - ph + kh * dh, ow * sw - pw + kw * dw]

    G = 1 with dilation 1 is Conv2dFunction's convolution; G = C is the depthwise one. The
    rows of cols = im2col(x) (dilated) run over (c, kh, kw), so group g's rows are one block:

        cols3 = cols.reshape(G, Cg * KH * KW, N * OH * OW)
        w3    = weight.reshape(G, OCg, Cg * KH * KW)
        forward:   y3 = w3 @ cols3 + bias        G products at once, (G, OCg, N * OH * OW)

    and y is y3, that is (OC, N, OH, OW), reordered to (N, OC, OH, OW). Backward, with dy3 =
    dy reordered to (G, OCg, N * OH * OW), is Conv2dFunction's, one product per group:

        dbias   = dy3 summed over its positions
        dweight = dy3 @ cols3.transpose(0, 2, 1)
        dcols   = w3.transpose(0, 2, 1) @ dy3
        dx      = col2im(dcols)                  (dilated, as im2col was)

    The batch is cut into one chunk per thread, as in Conv2dFunction.

    Shapes: x (N, C, H, W), weight (OC, C / G, KH, KW), bias (OC,) -> y (N, OC, OH, OW), with
        OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1,   and OW likewise.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
        dilation: tuple[int, int] = (1, 1),
        groups: int = 1,
    ) -> np.ndarray:
        N, _, H, W = x.shape
        OC, _, KH, KW = weight.shape
        window = (KH, KW, *stride, *padding, *dilation)
        OH = output_size(H, KH, stride[0], padding[0], dilation[0])
        OW = output_size(W, KW, stride[1], padding[1], dilation[1])
        w3 = weight.reshape(groups, OC // groups, -1)
        y = np.empty((N, OC, OH, OW), dtype=x.dtype)

        def forward_chunk(lo: int, hi: int) -> np.ndarray:
            cols3 = im2col(x[lo:hi], *window).reshape(groups, w3.shape[2], -1)
            y2 = (w3 @ cols3).reshape(OC, -1)
            if bias is not None:
                y2 += bias[:, None]
            y[lo:hi] = y2.reshape(OC, hi - lo, OH, OW).transpose(1, 0, 2, 3)
            return cols3

        ctx.cols = map_chunks(forward_chunk, batch_chunks(N))  # {(lo, hi): that chunk's cols3}
        ctx.x_shape, ctx.weight, ctx.window, ctx.groups = x.shape, weight, window, groups
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, ...]:
        needs = ctx.needs_input_grad
        has_bias = len(needs) == 3 and needs[2]
        OC = len(ctx.weight)
        w3 = ctx.weight.reshape(ctx.groups, OC // ctx.groups, -1)
        dx = np.empty(ctx.x_shape, dtype=dy.dtype) if needs[0] else None

        def backward_chunk(lo: int, hi: int) -> tuple[Any, Any]:
            cols3 = ctx.cols[lo, hi]
            dy2 = np.ascontiguousarray(dy[lo:hi].transpose(1, 0, 2, 3)).reshape(OC, -1)
            dy3 = dy2.reshape(w3.shape[0], w3.shape[1], -1)
            if needs[0]:
                dcols = (w3.transpose(0, 2, 1) @ dy3).reshape(-1, dy2.shape[1])
                dx[lo:hi] = col2im(dcols, hi - lo, *ctx.x_shape[1:], *ctx.window)
            dweight = dy3 @ cols3.transpose(0, 2, 1) if needs[1] else None
            dbias = row_sums(dy2) if has_bias else None
            return dweight, dbias

        return sum_chunk_grads(ctx, backward_chunk, dx)


def multiply_per_chunk(
    w2: np.ndarray, cols: np.ndarray, bias: np.ndarray | None, out: np.ndarray
) -> None:
    """out = w2 @ cols + bias[:, None], one product for the chunk's n samples.

    The product comes out as (OC, n, OH, OW); each copied block of the move into out's
    (n, OC, OH, OW) is one output plane. For one sample that order is already NCHW, so the
    product is written straight into out (a single image's forward pass: no move at all).
    """
    n, OC, OH, OW = out.shape
    direct = n == 1 and out.flags.c_contiguous  # then reshape is a view of out, not a copy
    if direct:
        y2 = out.reshape(OC, OH * OW)
        np.matmul(w2, cols, out=y2)
    else:
        y2 = w2 @ cols
    if bias is not None:
        y2 += bias[:, None]
    if not direct:
        out[...] = y2.reshape(OC, n, OH, OW).transpose(1, 0, 2, 3)


def multiply_per_sample(
    w2: np.ndarray, cols: np.ndarray, bias: np.ndarray | None, out: np.ndarray
) -> None:
    """The small-K algorithm: out[i] = w2 @ cols_i + bias[:, None], one product per sample.

    cols_i, sample i's block of columns (K, OH * OW), gives an (OC, OH * OW) product that is
    already sample i's NCHW plane: there is nothing to reorder. With few rows (K < SMALL_K)
    the reordering costs more than one large product saves.
    """
    n, OC = out.shape[:2]
    out3 = out.reshape(n, OC, -1)
    np.matmul(w2, per_sample(cols, n), out=out3)
    if bias is not None:
        out3 += bias[:, None]


def weight_grads_per_sample(
    dy: np.ndarray, cols: np.ndarray | None, needs_weight: bool, needs_bias: bool
) -> tuple[Any, Any]:
    """The small-K algorithm's backward, without dx (the first layer):

        dweight = sum over i of dy[i] @ cols_i.T     dy[i] is already (OC, OH * OW)
        dbias   = dy.sum((0, 2, 3))

    No dy2 is built, so dy is never reordered. Measured at batch 64 on the first layer:
    dweight 1.50 -> 0.62 ms against dy2 @ cols.T.
    """
    n, OC = dy.shape[:2]
    dy3 = dy.reshape(n, OC, -1)
    dweight = (
        np.matmul(dy3, per_sample(cols, n).transpose(0, 2, 1)).sum(0) if needs_weight else None
    )
    dbias = dy3.sum((0, 2)) if needs_bias else None
    return dweight, dbias


def per_sample(cols: np.ndarray, n: int) -> np.ndarray:
    """cols (K, n * P) viewed as n matrices (K, P), one per sample: no copy."""
    K = cols.shape[0]
    return cols.reshape(K, n, -1).transpose(1, 0, 2)


def row_sums(a: np.ndarray) -> np.ndarray:
    """a.sum(1), as a matrix-vector product, which the BLAS runs about 3x faster."""
    return a @ np.ones(a.shape[1], dtype=a.dtype)


def sum_chunk_grads(ctx: Context, backward_chunk: Any, dx: np.ndarray | None) -> tuple[Any, ...]:
    """Run backward_chunk(lo, hi) over forward's batch chunks and add up their (dweight, dbias).

    The chunks write their rows of dx themselves. Returns (dx, dweight) or (dx, dweight, dbias),
    one gradient for each input of the Function, as its backward must.
    """
    needs = ctx.needs_input_grad
    parts = map_chunks(backward_chunk, ctx.cols).values()
    dweight = sum(p[0] for p in parts).reshape(ctx.weight.shape) if needs[1] else None
    if len(needs) == 2:
        return dx, dweight
    dbias = sum(p[1] for p in parts) if needs[2] else None
    return dx, dweight, dbias


def _check_conv_args(
    x: Tensor,
    weight: Tensor,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
    caller: str,
) -> None:
    check_4d(x, caller)
    if weight.ndim != 4:
        raise ValueError(
            f"{caller}: weight must be (OC, C / groups, KH, KW), got shape {weight.shape}"
        )
    shapes = f"(input shape {tuple(x.shape)}, weight shape {tuple(weight.shape)})"
    if not isinstance(groups, int | np.integer) or groups < 1:
        raise ValueError(f"{caller}: groups must be a positive integer, got {groups!r}")
    if weight.shape[0] % groups != 0:
        raise ValueError(
            f"{caller}: out_channels {weight.shape[0]} is not divisible by groups {groups} {shapes}"
        )
    if x.shape[1] != weight.shape[1] * groups:
        per_group = f" ({weight.shape[1]} in each of {groups} groups)" if groups > 1 else ""
        raise ValueError(
            f"{caller} expected {weight.shape[1] * groups} input channels{per_group}, got "
            f"{x.shape[1]} {shapes}"
        )
    if min(stride) < 1:
        raise ValueError(f"{caller}: stride must be at least 1, got {stride}")
    if min(padding) < 0:
        raise ValueError(f"{caller}: padding must be non-negative, got {padding}")
    if min(dilation) < 1:
        raise ValueError(f"{caller}: dilation must be at least 1, got {dilation}")
    (H, W), (KH, KW) = x.shape[2:], weight.shape[2:]
    OH = output_size(H, KH, stride[0], padding[0], dilation[0])
    OW = output_size(W, KW, stride[1], padding[1], dilation[1])
    if OH <= 0 or OW <= 0:
        raise ValueError(
            f"{caller}: output size ({OH}, {OW}) is too small: input ({H}, {W}) with padding "
            f"{padding} is smaller than the kernel ({KH}, {KW}) with dilation {dilation}"
        )


ALGORITHMS = ("auto", "im2col", "winograd")


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    algorithm: str = "auto",
) -> Tensor:
    """2-D convolution of x (N, C, H, W) with weight (OC, C / groups, KH, KW), as F.conv2d.

    groups: split the channels into this many groups, each convolved with its own OC / groups
    filters (groups = C is the depthwise convolution). dilation: the spacing of the kernel's
    taps. algorithm (not in torch): "im2col" (any kernel and stride), "winograd" (3x3 kernels
    at stride 1 only), or "auto", which picks Winograd where it is faster (see
    `choose_algorithm`). Grouped or dilated convolutions always go by im2col.
    """
    return _conv2d(x, weight, bias, stride, padding, dilation, groups, "conv2d", algorithm)


def choose_algorithm(x_shape: tuple[int, ...], weight_shape: tuple[int, ...],
                     stride: tuple[int, int]) -> str:  # fmt: skip
    """Winograd for 3x3 kernels at stride 1, with enough input channels and samples to fill
    its matrix products and its 16-sample chunks; im2col for everything else (the first
    layer's single input channel, single images, other kernels and strides). Reading mode
    (scratchnet.set_reference_mode) always takes im2col, the formula the docstrings teach."""
    if reference_mode():
        return "im2col"
    winograd_fits = tuple(weight_shape[2:]) == (3, 3) and stride == (1, 1)
    if winograd_fits and x_shape[1] >= 8 and x_shape[0] >= NB // 2:
        return "winograd"
    return "im2col"


def _conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: IntPair,
    padding: IntPair,
    dilation: IntPair,
    groups: int,
    caller: str,
    algorithm: str = "auto",
) -> Tensor:
    stride = to_pair(stride, "stride")
    padding = to_pair(padding, "padding")
    dilation = to_pair(dilation, "dilation")
    _check_conv_args(x, weight, stride, padding, dilation, groups, caller)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{caller}: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if groups != 1 or dilation != (1, 1):
        if algorithm == "winograd":
            raise ValueError(
                f"{caller}: the winograd algorithm needs groups=1 and dilation 1, got groups="
                f"{groups} and dilation {dilation}"
            )
        return GroupedConv2dFunction.apply(
            *inputs, stride=stride, padding=padding, dilation=dilation, groups=int(groups)
        )
    if algorithm == "auto":
        algorithm = choose_algorithm(x.shape, weight.shape, stride)
    elif algorithm == "winograd" and (tuple(weight.shape[2:]) != (3, 3) or stride != (1, 1)):
        raise ValueError(
            f"{caller}: the winograd algorithm needs a 3x3 kernel and stride 1, got kernel "
            f"{tuple(weight.shape[2:])} and stride {stride}"
        )
    if algorithm == "winograd":
        return Winograd3x3Function.apply(*inputs, padding=padding)
    return Conv2dFunction.apply(*inputs, stride=stride, padding=padding)


class Conv2d(Module):
    """A 2-D convolution layer, initialised as torch.nn.Conv2d.

    weight (out_channels, in_channels / groups, KH, KW) ~ kaiming_uniform(a=sqrt(5)), i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = in_channels / groups * KH * KW;
    bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    `algorithm` (not in torch) is conv2d's: "auto", "im2col" or "winograd". It can be
    changed at any time (`layer.algorithm = "im2col"`); float32 Winograd rounds a little more
    than im2col: 2e-6 to 5e-6 of the output's scale instead of under 1e-6.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        algorithm: str = "auto",
    ) -> None:
        super().__init__()
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"both be divisible by groups ({groups})"
            )
        self.algorithm = algorithm
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = to_pair(kernel_size, "kernel_size")
        self.stride = to_pair(stride, "stride")
        self.padding = to_pair(padding, "padding")
        self.dilation = to_pair(dilation, "dilation")
        self.groups = groups
        weight_shape = (out_channels, in_channels // groups, *self.kernel_size)
        init_weight_and_bias(self, weight_shape, bias)

    def forward(self, x: Tensor) -> Tensor:
        return _conv2d(
            x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
            type(self).__name__, self.algorithm,
        )  # fmt: skip

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.algorithm != "auto":
            text += f", algorithm={self.algorithm!r}"
        return text
