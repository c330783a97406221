"""The engine's primitives: arithmetic, matmul, reductions, reshapes, ReLU and log-softmax.

Each class is one operation, its forward and its hand-written backward a few lines apart. In
every docstring, `dy` is the gradient of the loss with respect to the output y, and the backward
formulas give the gradient with respect to each input.

Elementwise operations broadcast as NumPy does, so their backward sums dy back to each input's
shape with `unbroadcast`.

Tensor's operators and methods (`a + b`, `x.relu()`, `x.sum(1)`, ...) are the calls of these
Functions, and are defined at the end of this file (`TensorMethods`).
"""

from __future__ import annotations

import math
from types import FunctionType
from typing import Any

import numpy as np

from scratchnet.kernels.activation import relu_backward, relu_forward
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


# ---------------------------------------------------------------------------------------------
# Activations
# ---------------------------------------------------------------------------------------------


class ReLU(Function):
    """y = max(x, 0)

    Backward: dx = dy where x > 0, else 0 (the subgradient at 0 is taken as 0, as in PyTorch).
    y > 0 exactly where x > 0, so backward keeps y rather than x.
    Shapes: any; y has x's shape.

    Both passes are one-loop kernels (scratchnet/kernels/activation.py); the NumPy line each
    replaces is beside its call.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.y = relu_forward(x)  # np.maximum(x, 0)
        return ctx.y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return relu_backward(dy, ctx.y)  # dy * (ctx.y > 0)


class LogSoftmax(Function):
    """y = x - logsumexp(x, axis), computed as (x - max) - log(sum(exp(x - max))) for stability

    Backward: dx = dy - softmax(x) * sum(dy, axis), with softmax(x) = exp(y).
    Shapes: any; the softmax runs along `axis` (default: the last), y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, axis: int = -1) -> np.ndarray:
        shifted = x - x.max(axis=axis, keepdims=True)
        y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.y, ctx.axis = y, axis
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy - np.exp(ctx.y) * dy.sum(axis=ctx.axis, keepdims=True)


def relu(x: Tensor) -> Tensor:
    """max(x, 0), elementwise, as torch.relu."""
    return ReLU.apply(x)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """log(softmax(x)) along dim, computed stably, as torch.log_softmax."""
    return LogSoftmax.apply(x, axis=dim)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """softmax(x) = exp(log_softmax(x)) along dim, differentiable through both."""
    return log_softmax(x, dim).exp()


# ---------------------------------------------------------------------------------------------
# Tensor's operators and methods
# ---------------------------------------------------------------------------------------------


class TensorMethods:
    """Tensor's operators and methods: each one calls its Function above.

    tensor.py cannot import this file, which builds on it, so these are copied onto Tensor
    below, once, when scratchnet is imported. Chainer v1 adds Variable's operators the same
    way (functions/basic_math.py), and so does PyTorch for much of torch.Tensor.
    """

    def __add__(self: Tensor, other: Any) -> Tensor:
        return Add.apply(self, other)

    def __radd__(self: Tensor, other: Any) -> Tensor:
        return Add.apply(other, self)

    def __sub__(self: Tensor, other: Any) -> Tensor:
        return Sub.apply(self, other)

    def __rsub__(self: Tensor, other: Any) -> Tensor:
        return Sub.apply(other, self)

    def __mul__(self: Tensor, other: Any) -> Tensor:
        return Mul.apply(self, other)

    def __rmul__(self: Tensor, other: Any) -> Tensor:
        return Mul.apply(other, self)

    def __truediv__(self: Tensor, other: Any) -> Tensor:
        return Div.apply(self, other)

    def __rtruediv__(self: Tensor, other: Any) -> Tensor:
        return Div.apply(other, self)

    def __matmul__(self: Tensor, other: Any) -> Tensor:
        return MatMul.apply(self, other)

    def __rmatmul__(self: Tensor, other: Any) -> Tensor:
        return MatMul.apply(other, self)

    def __neg__(self: Tensor) -> Tensor:
        return Neg.apply(self)

    def __getitem__(self: Tensor, index: Any) -> Tensor:
        return Index.apply(self, index=index)

    def exp(self: Tensor) -> Tensor:
        return Exp.apply(self)

    def log(self: Tensor) -> Tensor:
        return Log.apply(self)

    def relu(self: Tensor) -> Tensor:
        return relu(self)

    def log_softmax(self: Tensor, dim: int = -1) -> Tensor:
        return log_softmax(self, dim)

    def softmax(self: Tensor, dim: int = -1) -> Tensor:
        return softmax(self, dim)

    def sum(
        self: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(
        self: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        return Mean.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self: Tensor, *shape: int | tuple[int, ...]) -> Tensor:
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])
        return Reshape.apply(self, shape=shape)

    def view(self: Tensor, *shape: int | tuple[int, ...]) -> Tensor:
        return self.reshape(*shape)

    def flatten(self: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return flatten(self, start_dim, end_dim)

    def transpose(self: Tensor, *axes: int) -> Tensor:
        return Transpose.apply(self, axes=axes or None)

    @property
    def T(self: Tensor) -> Tensor:
        return Transpose.apply(self)


def _install_tensor_methods() -> None:
    for name, member in vars(TensorMethods).items():
        if isinstance(member, FunctionType | property):
            setattr(Tensor, name, member)


_install_tensor_methods()
