"""The 3x3, stride-1 convolution by Winograd's F(4x4, 3x3): 4x fewer multiplications.

The algorithm and its tile transforms are in scratchnet/kernels/winograd.py; this file holds
the layer's math, which composes those transforms with 36 matrix products. `conv2d`
(scratchnet/nn/conv.py) chooses between this and im2col.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.kernels import winograd
from scratchnet.kernels.winograd import NB
from scratchnet.runtime.threads import batch_chunks, map_chunks
from scratchnet.tensor import Context, Function


class Winograd3x3Function(Function):
    """The same convolution as Conv2dFunction, for 3x3 kernels at stride 1.

    The image is cut into 6x6 tiles, 4 apart; each tile d gives a 4x4 block of the output.
    With the transforms

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

    The batch is processed in blocks of NB samples (the kernels' innermost loop), and the
    threads share the batch in chunks of samples, as in Conv2dFunction.
    V is not kept for backward: recomputing it from x is cheaper than reading it back from
    memory.

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
        tiles = tiles_h * tiles_w
        U = winograd.weight_transform(weight)
        b = np.zeros(OC, dtype=x.dtype) if bias is None else bias
        y = np.empty((N, OC, OH, OW), dtype=x.dtype)

        def forward_chunk(lo: int, hi: int) -> None:
            """Samples lo..hi-1, NB at a time, in buffers reused from one NB to the next."""
            V, M = transformed(C, tiles, x.dtype), transformed(OC, tiles, x.dtype)
            for s in range(lo, hi, NB):
                e = min(s + NB, hi)
                winograd.input_transform_into(x[s:e], ph, pw, tiles_h, tiles_w, V)  # BT d BT.T
                np.matmul(U, V[:, :C], out=M[:, :OC])  # M = U @ V
                winograd.output_transform_into(M, tiles_h, tiles_w, b, y[s:e])  # AT M AT.T + b

        ctx.chunks = list(map_chunks(forward_chunk, batch_chunks(N, min_chunk=NB)))
        ctx.x, ctx.weight, ctx.U, ctx.padding = x, weight, U, padding
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, ...]:
        x, weight, U = ctx.x, ctx.weight, ctx.U
        C = x.shape[1]
        OC = weight.shape[0]
        ph, pw = ctx.padding
        OH, OW = dy.shape[2:]
        tiles_h, tiles_w = winograd.num_tiles(OH), winograd.num_tiles(OW)
        tiles = tiles_h * tiles_w
        needs = ctx.needs_input_grad
        dy = np.ascontiguousarray(dy)
        UT = U.transpose(0, 2, 1)  # a view: the matrix products read it as transposed
        dx = np.empty_like(x) if needs[0] else None
        needs_bias = len(needs) == 3 and needs[2]

        def backward_chunk(lo: int, hi: int) -> tuple[np.ndarray | None, np.ndarray | None]:
            """Samples lo..hi-1, NB at a time: their dx, and their shares of dU and dbias."""
            dbias = dy[lo:hi].sum((0, 2, 3)) if needs_bias else None
            dU = np.zeros_like(U) if needs[1] else None
            V = transformed(C, tiles, x.dtype)  # V, then dV
            dM = transformed(OC, tiles, dy.dtype)
            for s in range(lo, hi, NB):
                e = min(s + NB, hi)
                winograd.output_transform_adjoint_into(dy[s:e], tiles_h, tiles_w, dM)  # A dy A.T
                if needs[1]:
                    winograd.input_transform_into(x[s:e], ph, pw, tiles_h, tiles_w, V)
                    dU += dM[:, :OC] @ V[:, :C].transpose(0, 2, 1)  # dU = dM @ V.T
                if needs[0]:
                    np.matmul(UT, dM[:, :OC], out=V[:, :C])  # dV = U.T @ dM
                    # dx = B dV B.T, tile by tile, the overlaps added up, the padding cut off
                    winograd.input_transform_adjoint_into(V, tiles_h, tiles_w, ph, pw, dx[s:e])
            return dU, dbias

        dU_parts, dbias_parts = zip(*map_chunks(backward_chunk, ctx.chunks).values())
        dweight = winograd.weight_transform_adjoint(sum(dU_parts)) if needs[1] else None  # G.T dU G
        if len(needs) == 2:
            return dx, dweight
        return dx, dweight, sum(dbias_parts) if needs_bias else None  # dy.sum((0, 2, 3))


def transformed(channels: int, tiles: int, dtype: Any) -> np.ndarray:
    """An empty transformed array for `channels` channels, with one channel more than needed.

    The kernels write and read channels 0..channels-1 of it, contiguous; the matrix products
    take the view [:, :channels]. The spare channel keeps the 36 planes from lying a multiple
    of 4 KB apart (64 KB for 64 channels of 16 tiles), so that the kernels' 36 streams, one
    per plane, do not all fall into the same L1 cache set. Measured, on their own: the four
    transforms 10-40% faster.
    """
    return np.empty((36, channels + 1, tiles * NB), dtype=dtype)
