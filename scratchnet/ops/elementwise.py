"""Elementwise ops: add, sub, mul, div, neg, exp, log, pow, sqrt, abs, sign, and the selections
clamp, maximum, minimum and where.

They broadcast as NumPy does, so their backward sums dy back to each input's shape with
`unbroadcast`. Where NumPy and PyTorch differ, they follow PyTorch:

- integer and bool inputs of exp, log and sqrt (and of pow with a float exponent) become
  float32, torch's default dtype, where NumPy would give float64;
- the subgradients at kinks and ties are torch's: abs' is 0 at 0, clamp's passes dy where
  min <= x <= max, and maximum and minimum split dy half-half between equal inputs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from scratchnet.tensor import Context, Function, Tensor, unbroadcast


def float_data(x: np.ndarray) -> np.ndarray:
    """x itself when it is floating, else x as float32 (torch promotes integers so for sqrt)."""
    return x if x.dtype.kind == "f" else x.astype(np.float32)


def broadcasting(op: str, fn: Callable[..., np.ndarray], *arrays: np.ndarray) -> np.ndarray:
    """fn(*arrays), or a ValueError naming op and the shapes when fn fails on them."""
    try:
        return fn(*arrays)
    except ValueError as error:
        shapes = ", ".join(str(np.shape(a)) for a in arrays)
        try:
            np.broadcast_shapes(*(np.shape(a) for a in arrays))
        except ValueError:
            raise ValueError(f"{op}: shapes {shapes} cannot be broadcast together") from None
        raise ValueError(f"{op}: {error} (shapes {shapes})") from None


class Add(Function):
    """y = a + b

    Backward: da = dy, db = dy (each summed back to its input's shape).
    Shapes: a, b broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a_shape, ctx.b_shape = a.shape, b.shape
        return broadcasting("add", np.add, a, b)

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
        return broadcasting("sub", np.subtract, a, b)

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
        return broadcasting("mul", np.multiply, a, b)

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
        y = broadcasting("div", np.divide, a, b)
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
        ctx.y = np.exp(float_data(x))
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
        ctx.x = float_data(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(ctx.x)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):  # inf at 0, as torch
            return dy / ctx.x


class PowScalar(Function):
    """y = x ** exponent, for a Python number exponent

    Backward: dx = dy * exponent * x ** (exponent - 1), and dx = 0 when exponent == 0 (as in
    torch, so that x ** 0 has no 0 * inf = nan at x = 0).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, exponent: float) -> np.ndarray:
        if isinstance(exponent, float) or x.dtype.kind == "b":
            x = float_data(x)
        elif exponent < 0 and x.dtype.kind in "iu":
            raise ValueError(
                f"pow: integers to negative integer powers are not allowed (a tensor of "
                f"{x.dtype} to the power {exponent})"
            )
        ctx.x, ctx.exponent = x, exponent
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # inf, nan: as torch
            return x**exponent

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        if ctx.exponent == 0:
            return np.zeros_like(dy)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return dy * ctx.exponent * ctx.x ** (ctx.exponent - 1)


class RPowScalar(Function):
    """y = base ** x, for a Python number base (`2 ** x` calls Tensor.__rpow__)

    Backward: dx = dy * y * log(base). For base 0, torch takes dx = 0 where x >= 0 (where y is
    0 or 1, and log(0) = -inf would give nan), and so does this.
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, base: float) -> np.ndarray:
        if isinstance(base, float) or x.dtype.kind == "b":
            x = float_data(x)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = base**x
        ctx.x, ctx.y, ctx.base = x, y, base
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        base = ctx.base
        log_base = math.log(base) if base > 0 else (-math.inf if base == 0 else math.nan)
        with np.errstate(invalid="ignore", over="ignore"):
            dx = dy * (ctx.y * log_base)
        if base == 0:
            dx = np.where(ctx.x >= 0, 0, dx)
        return dx


class Pow(Function):
    """y = a ** b   (elementwise, both tensors)

    Backward:
        da = dy * b * a ** (b - 1), and 0 where b == 0
        db = dy * y * log(a), and 0 where a == 0 and b >= 0 (torch's choice: log(0) = -inf)
    For a < 0, log(a) is nan, so db is nan there, as in torch.
    Shapes: a, b broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = broadcasting("pow", np.power, a, b)
        ctx.a, ctx.b, ctx.y = a, b, y
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, Any]:
        a, b = ctx.a, ctx.b
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if ctx.needs_input_grad[0]:
                da = unbroadcast(np.where(b == 0, 0, dy * b * a ** (b - 1)), a.shape)
            if ctx.needs_input_grad[1]:
                dlog = np.where((a == 0) & (b >= 0), 0, ctx.y * np.log(a))
                db = unbroadcast(dy * dlog, b.shape)
        return da, db


class Sqrt(Function):
    """y = sqrt(x)   (nan for x < 0, as in torch)

    Backward: dx = dy / (2 * sqrt(x)) = dy / (2 * y); inf at x = 0, as in torch.
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            ctx.y = np.sqrt(float_data(x))
        return ctx.y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return dy / (2 * ctx.y)


class Abs(Function):
    """y = |x|

    Backward: dx = dy * sign(x), so 0 at x = 0, as in torch.
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.x = x
        return np.abs(x)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy * np.sign(ctx.x)


class Sign(Function):
    """y = sign(x): -1, 0 or 1 (nan stays nan)

    Backward: dx = 0 everywhere (a step function; torch's sign is differentiable with this
    zero gradient, so a graph through it does not break).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.x_shape = x.shape
        return np.sign(x)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return np.zeros(ctx.x_shape, dtype=dy.dtype)


class Clamp(Function):
    """y = minimum(maximum(x, min), max)   (so y = max wherever min > max, as in torch)

    Either bound may be left out (has_min, has_max say which are given, in the order x, min,
    max). Backward, with torch's rules at the boundaries:
        dx   = dy where min <= x <= max, else 0
        dmin = dy where x < min and min < max (only x < min, without max), else 0
        dmax = dy where x > max or max < min (only x > max, without min), else 0
    Shapes: x, min and max broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(
        ctx: Context, x: np.ndarray, *bounds: np.ndarray, has_min: bool, has_max: bool
    ) -> np.ndarray:
        low = bounds[0] if has_min else None
        high = bounds[-1] if has_max else None
        y = x
        if has_min:
            y = broadcasting("clamp", np.maximum, y, low)
        if has_max:
            y = broadcasting("clamp", np.minimum, y, high)
        ctx.x, ctx.low, ctx.high = x, low, high
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, ...]:
        x, low, high = ctx.x, ctx.low, ctx.high
        inside = np.ones(dy.shape, dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        grads = [unbroadcast(np.where(inside, dy, 0), x.shape)]
        if low is not None:
            below = x < low if high is None else (x < low) & (low < high)
            grads.append(unbroadcast(np.where(below, dy, 0), low.shape))
        if high is not None:
            above = x > high if low is None else (x > high) | (high < low)
            grads.append(unbroadcast(np.where(above, dy, 0), high.shape))
        return tuple(grads)


def _split_at_ties(
    dy: np.ndarray, a: np.ndarray, b: np.ndarray, a_loses: np.ndarray, b_loses: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """maximum's and minimum's gradients: the winner takes dy, and equal inputs take dy / 2 each.

    This is torch's rule. Where one input is nan, neither loses, and both take dy.
    """
    shared = np.where(a == b, dy / 2, dy)
    da = unbroadcast(np.where(a_loses, 0, shared), a.shape)
    db = unbroadcast(np.where(b_loses, 0, shared), b.shape)
    return da, db


class Maximum(Function):
    """y = maximum(a, b)   (elementwise; nan if either is nan, as in torch)

    Backward: da = dy where a > b, db = dy where b > a, and dy / 2 to each where a == b.
    Shapes: a, b broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        return broadcasting("maximum", np.maximum, a, b)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = ctx.a, ctx.b
        return _split_at_ties(dy, a, b, a_loses=a < b, b_loses=a > b)


class Minimum(Function):
    """y = minimum(a, b)   (elementwise; nan if either is nan, as in torch)

    Backward: da = dy where a < b, db = dy where b < a, and dy / 2 to each where a == b.
    Shapes: a, b broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        return broadcasting("minimum", np.minimum, a, b)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a, b = ctx.a, ctx.b
        return _split_at_ties(dy, a, b, a_loses=a > b, b_loses=a < b)


class Where(Function):
    """y = a where condition, else b   (condition: a bool array, not differentiable)

    Backward: da = dy where condition, else 0; db = dy where not condition, else 0.
    Shapes: condition, a and b broadcastable; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray, condition: np.ndarray) -> np.ndarray:
        ctx.a_shape, ctx.b_shape, ctx.condition = a.shape, b.shape, condition
        return broadcasting("where", np.where, condition, a, b)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        da = unbroadcast(np.where(ctx.condition, dy, 0), ctx.a_shape)
        db = unbroadcast(np.where(ctx.condition, 0, dy), ctx.b_shape)
        return da, db


# ---------------------------------------------------------------------------------------------
# The functions, as torch.pow, torch.sqrt, ... (scratchnet.pow, ...)
# ---------------------------------------------------------------------------------------------


def _number(value: Any) -> Any:
    """A NumPy scalar as the Python number it holds: NumPy 2 lets np.float64(2) turn a float32
    tensor into float64, where a Python 2.0 keeps its dtype (torch keeps it for both)."""
    return value.item() if isinstance(value, np.generic) else value


def pow(input: Tensor | float, exponent: Tensor | float) -> Tensor:
    """input ** exponent, elementwise, as torch.pow: either side may be a Python number."""
    if isinstance(exponent, numbers.Number):
        return PowScalar.apply(input, exponent=_number(exponent))
    if isinstance(input, numbers.Number):
        return RPowScalar.apply(exponent, base=_number(input))
    return Pow.apply(input, exponent)


def sqrt(input: Tensor) -> Tensor:
    """The square root, elementwise, as torch.sqrt (nan for negative values)."""
    return Sqrt.apply(input)


def abs(input: Tensor) -> Tensor:
    """|input|, elementwise, as torch.abs (its gradient at 0 is 0)."""
    return Abs.apply(input)


def sign(input: Tensor) -> Tensor:
    """-1, 0 or 1, elementwise, as torch.sign (its gradient is 0)."""
    return Sign.apply(input)


def _bound(value: Any, x: Tensor) -> Tensor:
    """A clamp bound as a Tensor; a Python number takes x's dtype (an int keeps ints ints)."""
    if isinstance(value, Tensor):
        return value
    if isinstance(value, numbers.Number):
        return Tensor(np.asarray(value, dtype=np.result_type(x.dtype, _number(value))))
    return Tensor(np.asarray(value))


def clamp(input: Tensor, min: Any = None, max: Any = None) -> Tensor:
    """Clamp every element into [min, max], as torch.clamp.

    min and max are numbers or tensors (broadcast against input), and either may be None;
    where min > max, the result is max. The gradient passes where min <= x <= max.
    """
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must not be None")
    if not isinstance(input, Tensor):
        input = Tensor(input)
    if input.dtype.kind in "iub" and any(isinstance(v, float) for v in (min, max)):
        input = Tensor(float_data(input.data))  # an int tensor clamped to 0.5 is float32
    bounds = [_bound(v, input) for v in (min, max) if v is not None]
    return Clamp.apply(input, *bounds, has_min=min is not None, has_max=max is not None)


clip = clamp


def maximum(input: Tensor, other: Tensor) -> Tensor:
    """The larger of two tensors, elementwise, as torch.maximum (ties share the gradient)."""
    return Maximum.apply(input, other)


def minimum(input: Tensor, other: Tensor) -> Tensor:
    """The smaller of two tensors, elementwise, as torch.minimum (ties share the gradient)."""
    return Minimum.apply(input, other)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """input where condition is True, else other, as torch.where(condition, input, other).

    condition is a bool Tensor or array; input and other are tensors or numbers, all three
    broadcast together.
    """
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {cond.dtype}")
    return Where.apply(input, other, condition=cond)


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

    def __pow__(self: Tensor, exponent: Any) -> Tensor:
        return pow(self, exponent)

    def __rpow__(self: Tensor, base: Any) -> Tensor:
        return pow(base, self)

    def pow(self: Tensor, exponent: Any) -> Tensor:
        return pow(self, exponent)

    def sqrt(self: Tensor) -> Tensor:
        return sqrt(self)

    def abs(self: Tensor) -> Tensor:
        return abs(self)

    def __abs__(self: Tensor) -> Tensor:
        return abs(self)

    def sign(self: Tensor) -> Tensor:
        return sign(self)

    def clamp(self: Tensor, min: Any = None, max: Any = None) -> Tensor:
        return clamp(self, min, max)

    def clip(self: Tensor, min: Any = None, max: Any = None) -> Tensor:
        return clamp(self, min, max)

    def maximum(self: Tensor, other: Any) -> Tensor:
        return maximum(self, other)

    def minimum(self: Tensor, other: Any) -> Tensor:
        return minimum(self, other)

    def where(self: Tensor, condition: Any, other: Any) -> Tensor:
        return where(condition, self, other)
