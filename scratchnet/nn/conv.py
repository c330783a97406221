"""2-D convolution (cross-correlation, as in every deep-learning library) by im2col + matmul.

Notation: x (N, C, H, W), weight (OC, C, KH, KW), bias (OC,), stride (sh, sw), padding
(ph, pw). im2col gathers every receptive field of x into a column of a matrix, so that the
whole convolution, over every sample and position, is one BLAS product.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.kernels import winograd
from scratchnet.kernels.im2col import col2im, im2col, output_size
from scratchnet.kernels.winograd import NB
from scratchnet.nn import init
from scratchnet.nn.module import Module, Parameter
from scratchnet.runtime.threads import batch_chunks, run_chunks
from scratchnet.tensor import Context, Function, Tensor

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

    With few rows in cols (K = C * KH * KW below SMALL_K: the first layer, C = 1, has 9),
    the products go sample by sample instead, with no reordering at all:

        y[n]    = w2 @ cols_n + bias[:, None]     written straight into NCHW order
        dweight = sum over n of dy[n] @ cols_n.T  dy[n] is already (OC, OH * OW)

    where cols_n is sample n's block of columns. Measured at batch 64 on the first layer:
    dweight 1.50 -> 0.62 ms. With many rows the one large product is faster.

    Shapes: x (N, C, H, W), weight (OC, C, KH, KW), bias (OC,) -> y (N, OC, OH, OW), with
        OH = (H + 2 * ph - KH) // sh + 1,   OW = (W + 2 * pw - KW) // sw + 1.
    """

    SMALL_K = 32

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
            if small_k:  # one product per sample, each straight into its (OC, OH*OW) plane
                y3 = y[lo:hi].reshape(hi - lo, OC, OH * OW)
                np.matmul(w2, per_sample(cols, hi - lo), out=y3)
                if bias is not None:
                    y3 += bias[:, None]
                return cols
            y2 = w2 @ cols
            if bias is not None:
                y2 += bias[:, None]
            # (OC, n, OH*OW) -> (n, OC, OH*OW): each copied block is one output plane.
            y[lo:hi] = y2.reshape(OC, hi - lo, OH, OW).transpose(1, 0, 2, 3)
            return cols

        small_k = C * KH * KW < Conv2dFunction.SMALL_K

        # The batch is cut into one chunk of samples per thread (scratchnet.runtime.threads), each
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
            n = hi - lo
            if small_k and not needs[0]:  # the first layer: no dy2 needed
                dy3 = dy[lo:hi].reshape(n, OC, -1)
                dweight = None
                if needs[1]:
                    cols_t = per_sample(ctx.cols[lo], n).transpose(0, 2, 1)
                    dweight = np.matmul(dy3, cols_t).sum(0)
                return dweight, dy3.sum((0, 2)) if has_bias else None
            dy2 = np.ascontiguousarray(dy[lo:hi].transpose(1, 0, 2, 3)).reshape(OC, -1)
            if needs[0]:  # skipped for the first layer, whose input is the image
                dx[lo:hi] = col2im(w2.T @ dy2, n, C, H, W, KH, KW, sh, sw, ph, pw)
            dweight = dy2 @ ctx.cols[lo].T if needs[1] else None
            # dy2.sum(1) as a matrix-vector product, which the BLAS runs about 3x faster.
            dbias = dy2 @ np.ones(dy2.shape[1], dtype=dy2.dtype) if has_bias else None
            return dweight, dbias

        small_k = C * KH * KW < Conv2dFunction.SMALL_K

        has_bias = len(needs) == 3 and needs[2]
        parts = run_chunks(backward_chunk, ctx.chunks)  # the chunks of forward, ctx.cols's keys
        dweight = sum(p[0] for p in parts).reshape(weight.shape) if needs[1] else None
        dbias = sum(p[1] for p in parts) if has_bias else None
        if len(needs) == 2:
            return dx, dweight
        return dx, dweight, dbias


class Winograd3x3Function(Function):
    """The same convolution for 3x3 kernels at stride 1, by Winograd's F(4x4, 3x3).

    See scratchnet/kernels/winograd.py for the algorithm. The image is cut into 6x6 tiles,
    4 apart; each tile d gives a 4x4 block of the output. With the transforms

        U[xi] = (G @ weight[o, c] @ G.T)[xi]        for each (o, c)     U: (36, OC, C)
        V[xi] = (BT @ d @ BT.T)[xi]                 for each (c, tile)  V: (36, C, tiles)

    and xi running over the 36 entries of a 6x6 transformed tile:

        forward:   M[xi] = U[xi] @ V[xi]             36 matrix products  (36, OC, tiles)
                   y tile = AT @ M @ AT.T + bias     4x4 outputs per tile

    Every step is linear, so the backward runs the same steps transposed, in reverse order:

        dM       = A @ (dy tile) @ A.T               A = AT.T             (36, OC, tiles)
        dU[xi]   = dM[xi] @ V[xi].T                  the left factor's gradient
        dweight  = G.T @ dU @ G                      for each (o, c)
        dV[xi]   = U[xi].T @ dM[xi]                  the right factor's gradient
        dx       = B @ dV @ B.T per tile, added      B = BT.T; neighbouring tiles overlap by 2
                   into the (padded) image           and their gradients add up, like col2im
        dbias    = dy.sum((0, 2, 3))

    The batch is processed in chunks of winograd.NB samples, in the kernels' layout
    (C, H, W, NB), and the chunks are shared among the threads as in Conv2dFunction. V is not
    kept for backward: recomputing it from x is cheaper than reading it back from memory.

    Shapes: x (N, C, H, W), weight (OC, C, 3, 3), bias (OC,) -> y (N, OC, OH, OW), with
        OH = H + 2 * ph - 2,   OW = W + 2 * pw - 2.
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray | None = None,
        padding: tuple[int, int] = (1, 1),
    ) -> np.ndarray:
        N, C, H, W = x.shape
        OC = weight.shape[0]
        ph, pw = padding
        OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
        tiles_h, tiles_w = winograd.num_tiles(OH), winograd.num_tiles(OW)
        rows, cols, tiles = 4 * tiles_h, 4 * tiles_w, tiles_h * tiles_w
        U = winograd.weight_transform(weight)
        b = np.zeros(OC, dtype=x.dtype) if bias is None else bias
        y = np.empty((N, OC, OH, OW), dtype=x.dtype)

        def forward_chunk(lo: int, hi: int) -> None:
            """Samples lo..hi-1, NB at a time, in buffers reused from one NB to the next."""
            padded = np.zeros((C, rows + 2, cols + 2, NB), dtype=x.dtype)
            V, M = _transformed(C, tiles, x.dtype), _transformed(OC, tiles, x.dtype)
            out = np.empty((OC, rows, cols, NB), dtype=x.dtype)
            for s in range(lo, hi, NB):
                e = min(s + NB, hi)
                winograd.pack_into(x[s:e], ph, pw, padded)
                winograd.input_transform_into(padded, tiles_h, tiles_w, V)
                np.matmul(U, V[:, :C], out=M[:, :OC])
                winograd.output_transform_into(M, tiles_h, tiles_w, out)
                winograd.unpack_into(out, 0, 0, b, y[s:e])

        chunks = batch_chunks(N, min_chunk=winograd.NB)
        run_chunks(forward_chunk, chunks)
        ctx.x, ctx.weight, ctx.U, ctx.padding, ctx.chunks = x, weight, U, padding, chunks
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, ...]:
        x, weight, U = ctx.x, ctx.weight, ctx.U
        C = x.shape[1]
        OC = weight.shape[0]
        ph, pw = ctx.padding
        OH, OW = dy.shape[2:]
        tiles_h, tiles_w = winograd.num_tiles(OH), winograd.num_tiles(OW)
        rows, cols, tiles = 4 * tiles_h, 4 * tiles_w, tiles_h * tiles_w
        needs = ctx.needs_input_grad
        UT = np.ascontiguousarray(U.transpose(0, 2, 1))
        dx = np.empty_like(x) if needs[0] else None
        no_bias = np.zeros(C, dtype=dy.dtype)

        def backward_chunk(lo: int, hi: int) -> np.ndarray | None:
            """Samples lo..hi-1, NB at a time: their dx, and their share of dU."""
            dU = np.zeros_like(U) if needs[1] else None
            padded = np.zeros((C, rows + 2, cols + 2, NB), dtype=x.dtype)  # x, then dx
            dy_tiles = np.zeros((OC, rows, cols, NB), dtype=dy.dtype)
            V = _transformed(C, tiles, x.dtype)  # V, then dV
            dM = _transformed(OC, tiles, dy.dtype)
            for s in range(lo, hi, NB):
                e = min(s + NB, hi)
                winograd.pack_into(dy[s:e], 0, 0, dy_tiles)
                winograd.output_transform_adjoint_into(dy_tiles, tiles_h, tiles_w, dM)
                if needs[1]:
                    winograd.pack_into(x[s:e], ph, pw, padded)
                    winograd.input_transform_into(padded, tiles_h, tiles_w, V)
                    dU += dM[:, :OC] @ V[:, :C].transpose(0, 2, 1)
                if needs[0]:
                    np.matmul(UT, dM[:, :OC], out=V[:, :C])
                    padded[...] = 0
                    winograd.input_transform_adjoint_into(V, tiles_h, tiles_w, padded)
                    winograd.unpack_into(padded, ph, pw, no_bias, dx[s:e])
                    padded[...] = 0  # the margins must be zero again for the next x
            return dU

        parts = run_chunks(backward_chunk, ctx.chunks)
        dweight = winograd.weight_transform_adjoint(sum(parts)) if needs[1] else None
        if len(needs) == 2:
            return dx, dweight
        return dx, dweight, dy.sum((0, 2, 3)) if needs[2] else None


def _transformed(channels: int, tiles: int, dtype: Any) -> np.ndarray:
    """An empty transformed array for `channels` channels, with one channel more than needed.

    The kernels write and read channels 0..channels-1 of it, contiguous; the matrix products
    take the view [:, :channels]. The spare channel keeps the 36 planes from lying a multiple
    of 4 KB apart (64 KB for 64 channels of 16 tiles), so that the kernels' 36 streams, one
    per plane, do not all fall into the same L1 cache set. Measured, on their own: the four
    transforms 10-40% faster.
    """
    return np.empty((36, channels + 1, tiles * NB), dtype=dtype)


def per_sample(cols: np.ndarray, n: int) -> np.ndarray:
    """cols (K, n * P) viewed as n matrices (K, P), one per sample: no copy."""
    K = cols.shape[0]
    return cols.reshape(K, n, -1).transpose(1, 0, 2)


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


ALGORITHMS = ("auto", "im2col", "winograd")


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    algorithm: str = "auto",
) -> Tensor:
    """2-D convolution of x (N, C, H, W) with weight (OC, C, KH, KW), as F.conv2d.

    algorithm: "im2col" (any kernel and stride), "winograd" (3x3 kernels at stride 1 only),
    or "auto", which picks Winograd where it is faster (see `choose_algorithm`).
    """
    return _conv2d(x, weight, bias, stride, padding, caller="conv2d", algorithm=algorithm)


def choose_algorithm(x_shape: tuple[int, ...], weight_shape: tuple[int, ...],
                     stride: tuple[int, int]) -> str:  # fmt: skip
    """Winograd for 3x3 kernels at stride 1, with enough input channels and samples to fill
    its matrix products and its 16-sample chunks; im2col for everything else (the first
    layer's single input channel, single images, other kernels and strides)."""
    winograd_fits = tuple(weight_shape[2:]) == (3, 3) and stride == (1, 1)
    if winograd_fits and x_shape[1] >= 8 and x_shape[0] >= winograd.NB // 2:
        return "winograd"
    return "im2col"


def _conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: IntPair,
    padding: IntPair,
    caller: str,
    algorithm: str = "auto",
) -> Tensor:
    stride = to_pair(stride, "stride")
    padding = to_pair(padding, "padding")
    _check_conv_args(x, weight, stride, padding, caller)
    if algorithm not in ALGORITHMS:
        raise ValueError(f"{caller}: algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
    if algorithm == "auto":
        algorithm = choose_algorithm(x.shape, weight.shape, stride)
    elif algorithm == "winograd" and (tuple(weight.shape[2:]) != (3, 3) or stride != (1, 1)):
        raise ValueError(
            f"{caller}: the winograd algorithm needs a 3x3 kernel and stride 1, got kernel "
            f"{tuple(weight.shape[2:])} and stride {stride}"
        )
    inputs = (x, weight) if bias is None else (x, weight, bias)
    if algorithm == "winograd":
        return Winograd3x3Function.apply(*inputs, padding=padding)
    return Conv2dFunction.apply(*inputs, stride=stride, padding=padding)


class Conv2d(Module):
    """A 2-D convolution layer, initialised as torch.nn.Conv2d.

    weight ~ kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = in_channels * KH * KW; bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

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
        bias: bool = True,
        algorithm: str = "auto",
    ) -> None:
        super().__init__()
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {algorithm!r}")
        self.algorithm = algorithm
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
        return _conv2d(x, self.weight, self.bias, self.stride, self.padding, name, self.algorithm)

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.bias is None:
            text += ", bias=False"
        if self.algorithm != "auto":
            text += f", algorithm={self.algorithm!r}"
        return text
