"""Matrix products: matmul, with NumPy's (and torch's) batching and 1-D rules."""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.tensor import Context, Function, Tensor, unbroadcast


class MatMul(Function):
    """y = a @ b

    Backward: da = dy @ b.T, db = a.T @ dy   (transposing the last two axes; leading batch
    axes broadcast and are summed back).
    Shapes: a (..., n, k), b (..., k, m) -> y (..., n, m). A 1-D a is a row (1, k) and a 1-D b
    a column (k, 1), whose added axis is then dropped, as in NumPy and PyTorch.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError("matmul: both operands need at least one dimension, got a scalar")
        k_a = a.shape[-1]
        k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
        if k_a != k_b:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                f"a's last dimension ({k_a}) must equal b's "
                f"{'second-to-last' if b.ndim > 1 else 'only'} dimension ({k_b})"
            )
        ctx.a, ctx.b = a, b
        return a @ b

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, Any]:
        a, b = ctx.a, ctx.b
        # Give 1-D operands their implied axis back, so that one formula covers every case.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        dy2 = dy
        if a.ndim == 1:
            dy2 = np.expand_dims(dy2, -2)
        if b.ndim == 1:
            dy2 = np.expand_dims(dy2, -1)

        da = db = None
        if ctx.needs_input_grad[0]:
            da = dy2 @ np.swapaxes(b2, -1, -2)
            da = unbroadcast(da, a2.shape).reshape(a.shape)
        if ctx.needs_input_grad[1]:
            db = np.swapaxes(a2, -1, -2) @ dy2
            db = unbroadcast(db, b2.shape).reshape(b.shape)
        return da, db


class TensorMethods:
    """Tensor's operators and methods that call the Functions above (see ops/__init__.py)."""

    def __matmul__(self: Tensor, other: Any) -> Tensor:
        return MatMul.apply(self, other)

    def __rmatmul__(self: Tensor, other: Any) -> Tensor:
        return MatMul.apply(other, self)
