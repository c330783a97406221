"""Elementwise arithmetic: add, sub, mul, div, neg, exp, log.

They broadcast as NumPy does, so their backward sums dy back to each input's shape with
`unbroadcast`.
"""

from __future__ import annotations

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


class TensorMethods:
    """Tensor's operators and methods that call the Functions above (see ops/__init__.py)."""

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

    def __neg__(self: Tensor) -> Tensor:
        return Neg.apply(self)

    def exp(self: Tensor) -> Tensor:
        return Exp.apply(self)

    def log(self: Tensor) -> Tensor:
        return Log.apply(self)
