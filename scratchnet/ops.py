"""The basic differentiable operations: elementwise arithmetic, matmul, reductions, reshapes.

Each class is one operation, its forward and its hand-written backward a few lines apart. In
every docstring, `dy` is the gradient of the loss with respect to the output y, and the backward
formulas give the gradient with respect to each input.

Elementwise operations broadcast as NumPy does, so their backward sums dy back to each input's
shape with `unbroadcast`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scratchnet.tensor import Context, Function, Tensor, unbroadcast


class Add(Function):
    """y = a + b

    Backward: da = dy, db = dy (each summed back to its input's shape).
    Shapes: a, b broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return unbroadcast(dy, ctx.a_shape), unbroadcast(dy, ctx.b_shape)


class Sub(Function):
    """y = a - b

    Backward: da = dy, db = -dy.
    Shapes: a, b broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return unbroadcast(dy, ctx.a_shape), unbroadcast(-dy, ctx.b_shape)


class Mul(Function):
    """y = a * b   (elementwise)

    Backward: da = dy * b, db = dy * a.
    Shapes: a, b broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, Any]:
        da = unbroadcast(dy * ctx.b, ctx.a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(dy * ctx.a, ctx.b.shape) if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """y = a / b   (elementwise)

    Backward: da = dy / b, db = -dy * a / b**2 = -dy * y / b.
    Shapes: a, b broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        y = a / b
        ctx.a_shape, ctx.b, ctx.y = a.shape, b, y
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, Any]:
        da = unbroadcast(dy / ctx.b, ctx.a_shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(-dy * ctx.y / ctx.b, ctx.b.shape) if ctx.needs_input_grad[1] else None
        return da, db


class Neg(Function):
    """y = -x

    Backward: dx = -dy.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return -x

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return -dy


class Exp(Function):
    """y = exp(x)

    Backward: dx = dy * exp(x) = dy * y.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.y = np.exp(x)
        return ctx.y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy * ctx.y


class Log(Function):
    """y = log(x)   (natural logarithm; log(0) = -inf, log of a negative = nan, as in NumPy)

    Backward: dx = dy / x.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.x = x
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy / ctx.x


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


def _normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < max(ndim, 1):
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(ax % max(ndim, 1))
    return tuple(sorted(out))


class Sum(Function):
    """y = x.sum(axis, keepdims)

    Backward: dx = dy broadcast back over the summed axes (every x element contributed once).
    Shapes: x (...); y drops the summed axes, or keeps them as size 1 with keepdims.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Any = None, keepdims: bool = False) -> Any:
        ctx.x_shape = x.shape
        ctx.axes = _normalize_axis(axis, x.ndim)
        return np.asarray(x.sum(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        kept_shape = tuple(1 if i in ctx.axes else n for i, n in enumerate(ctx.x_shape))
        return np.broadcast_to(dy.reshape(kept_shape), ctx.x_shape).copy()


class Mean(Function):
    """y = x.mean(axis, keepdims) = x.sum(axis) / n, with n the number of elements averaged

    Backward: dx = dy / n, broadcast back over the averaged axes.
    Shapes: as Sum.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: Any = None, keepdims: bool = False) -> Any:
        ctx.x_shape = x.shape
        ctx.axes = _normalize_axis(axis, x.ndim)
        ctx.n = int(np.prod([x.shape[i] for i in ctx.axes])) if ctx.axes else 1
        return np.asarray(x.mean(axis=ctx.axes, keepdims=keepdims))

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        kept_shape = tuple(1 if i in ctx.axes else n for i, n in enumerate(ctx.x_shape))
        dx = np.broadcast_to(dy.reshape(kept_shape) / dy.dtype.type(ctx.n), ctx.x_shape)
        return dx.copy()


class Reshape(Function):
    """y = x.reshape(shape)   (one entry may be -1)

    Backward: dx = dy.reshape(x.shape): reshaping moves no numbers, so neither does its
    gradient.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: tuple[int, ...] = ()) -> np.ndarray:
        ctx.x_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {x.shape} ({x.size} elements) "
                f"into {tuple(shape)}"
            ) from None

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(ctx.x_shape)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge axes start_dim..end_dim into one, as torch.flatten does (a Reshape)."""
    shape = x.shape
    if x.ndim == 0:
        return x.reshape(1)
    start = start_dim % x.ndim
    end = end_dim % x.ndim
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    merged = math.prod(shape[start : end + 1])
    return x.reshape((*shape[:start], merged, *shape[end + 1 :]))


class Transpose(Function):
    """y = x.transpose(axes)   (all axes reversed when axes is None)

    Backward: dx = dy.transpose(inverse permutation).
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axes: Any = None) -> np.ndarray:
        ctx.axes = tuple(range(x.ndim))[::-1] if axes is None else tuple(axes)
        return x.transpose(ctx.axes)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy.transpose(np.argsort(ctx.axes))


class Index(Function):
    """y = x[index]   (basic or advanced NumPy indexing)

    Backward: dx = zeros like x, with dy added at the indexed places (np.add.at, so that an
    index repeated k times receives k contributions).
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, index: Any = None) -> np.ndarray:
        if isinstance(index, Tensor):
            index = index.data
        ctx.x_shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        return np.asarray(x[index])

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        dx = np.zeros(ctx.x_shape, dtype=ctx.dtype)
        np.add.at(dx, ctx.index, dy)
        return dx
