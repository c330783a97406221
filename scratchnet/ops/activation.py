"""Activations: each a Function with its math, and its functional form, as in torch.

    relu, sigmoid, tanh, softmax, log_softmax     also Tensor methods (x.relu(), ...)
    softplus, leaky_relu, elu, gelu, relu6,       functional only, as in torch.nn.functional
    hardswish, silu, mish

Their Modules (nn.ReLU, nn.Sigmoid, ...) are in scratchnet/nn/activation.py. The subgradient at
each kink is torch's (said in each docstring). Only ReLU, which the CNN runs on every feature
map, has Numba kernels; the others are NumPy lines (GELU's erf, which NumPy lacks, is a kernel
too). relu and relu6 keep an integer dtype, as torch's do; the others compute integers in
float32 (torch promotes sigmoid and tanh so, and has no integer kernel for the rest).
"""

from __future__ import annotations

import math

import numpy as np

from scratchnet.kernels.activation import erf, relu_backward, relu_forward
from scratchnet.ops.elementwise import float_data
from scratchnet.tensor import Context, Function, Tensor, normalize_dim

# The Functions and their functional forms; re-exported by scratchnet.ops and (the functional
# forms) by scratchnet.nn.functional.
__all__ = [
    "ELU",
    "GELU",
    "Hardswish",
    "LeakyReLU",
    "LogSoftmax",
    "Mish",
    "ReLU",
    "ReLU6",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Softplus",
    "Tanh",
    "elu",
    "gelu",
    "hardswish",
    "leaky_relu",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
]


def stable_sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), as e / (1 + e) with e = exp(-|x|) <= 1, so that exp never overflows.

    For x >= 0 that is 1 / (1 + exp(-x)); for x < 0 it is exp(x) / (1 + exp(x)), the same value.
    """
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


class ReLU(Function):
    """y = max(x, 0)

    Backward: dx = dy where x > 0, else 0 (the subgradient at 0 is taken as 0, as in PyTorch).
    y > 0 exactly where x > 0, so backward keeps y rather than x.
    Shapes: any (0-d included); y has x's shape.

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


class Sigmoid(Function):
    """y = 1 / (1 + exp(-x))   (computed without overflow for large |x|: stable_sigmoid)

    Backward: dx = dy * y * (1 - y).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.y = stable_sigmoid(float_data(x))
        return ctx.y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        y = ctx.y
        return dy * y * (1 - y)


class Tanh(Function):
    """y = tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x))   (np.tanh: no overflow)

    Backward: dx = dy * (1 - y**2).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.y = np.tanh(float_data(x))
        return ctx.y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        y = ctx.y
        return dy * (1 - y * y)


class Softplus(Function):
    """y = log(1 + exp(beta * x)) / beta, and y = x where beta * x > threshold (as torch)

    log(1 + exp(z)) is computed as np.logaddexp(0, z), which never overflows; above the
    threshold the two agree to rounding and torch switches to the identity.
    Backward: dx = dy * sigmoid(beta * x), and dx = dy where beta * x > threshold.
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, beta: float, threshold: float) -> np.ndarray:
        x = float_data(x)
        z = beta * x
        linear = z > threshold
        ctx.z, ctx.linear = z, linear
        return np.where(linear, x, np.logaddexp(0, z) / beta)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return np.where(ctx.linear, dy, dy * stable_sigmoid(ctx.z))


class LeakyReLU(Function):
    """y = x where x > 0, else negative_slope * x

    Backward: dx = dy where x > 0, else negative_slope * dy (so negative_slope at 0, as torch).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, negative_slope: float) -> np.ndarray:
        x = float_data(x)
        positive = x > 0
        ctx.positive, ctx.negative_slope = positive, negative_slope
        return np.where(positive, x, negative_slope * x)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return np.where(ctx.positive, dy, ctx.negative_slope * dy)


class ELU(Function):
    """y = x where x > 0, else alpha * (exp(x) - 1)   (exp(x) - 1 as np.expm1, exact near 0)

    Backward: dx = dy where x > 0, else dy * alpha * exp(x) (so alpha at 0, as torch).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, alpha: float) -> np.ndarray:
        x = float_data(x)
        ctx.x, ctx.alpha = x, alpha
        # min(x, 0): no overflow in the branch that np.where drops for x > 0
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        # alpha * exp(x), not y + alpha, which loses every digit for x << 0
        x = ctx.x
        return np.where(x > 0, dy, dy * ctx.alpha * np.exp(np.minimum(x, 0)))


class GELU(Function):
    """The Gaussian error linear unit, exact or with torch's tanh approximation.

    approximate='none':
        y  = x * Phi(x),  Phi(x) = (1 + erf(x / sqrt(2))) / 2   (the normal CDF)
        dx = dy * (Phi(x) + x * phi(x)),  phi(x) = exp(-x**2 / 2) / sqrt(2 pi)
    approximate='tanh':
        u  = sqrt(2 / pi) * (x + 0.044715 * x**3),  t = tanh(u)
        y  = x * (1 + t) / 2
        dx = dy * ((1 + t) / 2 + x / 2 * (1 - t**2) * sqrt(2 / pi) * (1 + 3 * 0.044715 * x**2))
    Shapes: any; y has x's shape.
    """

    KAPPA = 0.044715
    SQRT_2_OVER_PI = math.sqrt(2 / math.pi)

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, approximate: str) -> np.ndarray:
        x = float_data(x)
        ctx.x, ctx.approximate = x, approximate
        if approximate == "tanh":
            ctx.t = np.tanh(GELU.SQRT_2_OVER_PI * (x + GELU.KAPPA * x**3))
            return 0.5 * x * (1 + ctx.t)
        ctx.cdf = 0.5 * (1 + erf(x * math.sqrt(0.5)))
        return x * ctx.cdf

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        x = ctx.x
        if ctx.approximate == "tanh":
            t = ctx.t
            du = GELU.SQRT_2_OVER_PI * (1 + 3 * GELU.KAPPA * x * x)
            return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return dy * (ctx.cdf + x * pdf)


class ReLU6(Function):
    """y = min(max(x, 0), 6)

    Backward: dx = dy where 0 < x < 6, else 0 (0 at both kinks, as torch's hardtanh).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        ctx.inside = (x > 0) & (x < 6)
        return np.minimum(np.maximum(x, 0), 6)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return np.where(ctx.inside, dy, 0)


class Hardswish(Function):
    """y = x * relu6(x + 3) / 6: 0 for x <= -3, x for x >= 3, x * (x + 3) / 6 between

    Backward: dx = 0 where x <= -3, dy where x >= 3, dy * (x / 3 + 1/2) between (torch 2.13's
    values at the two kinks: 0 at -3, 1 at 3).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        x = float_data(x)
        ctx.x = x
        return x * np.minimum(np.maximum(x + 3, 0), 6) / 6

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        x = ctx.x
        slope = np.where(x <= -3, 0, np.where(x < 3, x / 3 + 0.5, 1))
        return dy * slope


class SiLU(Function):
    """y = x * sigmoid(x)   (also called swish)

    Backward: dx = dy * s * (1 + x * (1 - s)), with s = sigmoid(x).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        x = float_data(x)
        ctx.x, ctx.s = x, stable_sigmoid(x)
        return x * ctx.s

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        x, s = ctx.x, ctx.s
        return dy * s * (1 + x * (1 - s))


class Mish(Function):
    """y = x * tanh(softplus(x)), softplus(x) = log(1 + exp(x))   (np.logaddexp(0, x))

    Backward: dx = dy * (t + x * sigmoid(x) * (1 - t**2)), with t = tanh(softplus(x)), since
    d softplus(x) / dx = sigmoid(x).
    Shapes: any; y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        x = float_data(x)
        ctx.x, ctx.t = x, np.tanh(np.logaddexp(0, x))
        return x * ctx.t

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        x, t = ctx.x, ctx.t
        return dy * (t + x * stable_sigmoid(x) * (1 - t * t))


class LogSoftmax(Function):
    """y = x - logsumexp(x, dim), computed as (x - max) - log(sum(exp(x - max))) for stability

    Backward: dx = dy - softmax(x) * sum(dy, dim), with softmax(x) = exp(y).
    Shapes: any (0-d included, where y = 0); the softmax runs along dim, y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dim: int) -> np.ndarray:
        x = float_data(x)
        axis = normalize_dim("log_softmax", dim, x.shape)
        if x.ndim == 0:
            axis = None  # NumPy has no axis 0 on a 0-d array; torch accepts dim 0 and -1
        # initial=-inf: an empty dim reduces to -inf instead of raising, as torch returns empty
        shifted = x - x.max(axis=axis, keepdims=True, initial=-np.inf)
        with np.errstate(divide="ignore"):  # log(0) of an empty dim's sum: nothing uses it
            y = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.y, ctx.axis = y, axis
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy - np.exp(ctx.y) * dy.sum(axis=ctx.axis, keepdims=True)


class Softmax(Function):
    """y = exp(x - max) / sum(exp(x - max), dim)   (shifted by the max so that exp never overflows)

    Backward: dx = y * (dy - sum(dy * y, dim)), the Jacobian diag(y) - y y^T applied to dy in
    one pass (exp(log_softmax) would lose about 1e-9 to cancellation on large logits).
    Shapes: any (0-d included, where y = 1); the softmax runs along dim, y has x's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dim: int) -> np.ndarray:
        x = float_data(x)
        axis = normalize_dim("softmax", dim, x.shape)
        if x.ndim == 0:
            axis = None  # as in LogSoftmax
        e = np.exp(x - x.max(axis=axis, keepdims=True, initial=-np.inf))
        with np.errstate(invalid="ignore"):  # 0 / 0 of an empty dim's sum: nothing uses it
            y = e / e.sum(axis=axis, keepdims=True)
        ctx.y, ctx.axis = y, axis
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        y = ctx.y
        return y * (dy - (dy * y).sum(axis=ctx.axis, keepdims=True))


# ---------------------------------------------------------------------------------------------
# The functional forms, as torch.nn.functional (and torch.sigmoid, torch.tanh, ...)
# ---------------------------------------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    """max(x, 0), elementwise, as torch.relu."""
    return ReLU.apply(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + exp(-x)), elementwise, as torch.sigmoid."""
    return Sigmoid.apply(x)


def tanh(x: Tensor) -> Tensor:
    """The hyperbolic tangent, elementwise, as torch.tanh."""
    return Tanh.apply(x)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, linear above threshold, as F.softplus."""
    if beta == 0:
        raise ValueError("softplus: beta must not be 0")
    return Softplus.apply(x, beta=float(beta), threshold=float(threshold))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x, as F.leaky_relu."""
    return LeakyReLU.apply(x, negative_slope=float(negative_slope))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1), as F.elu."""
    return ELU.apply(x, alpha=float(alpha))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) (approximate='none') or its tanh approximation ('tanh'), as F.gelu."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(x, approximate=approximate)


def relu6(x: Tensor) -> Tensor:
    """min(max(x, 0), 6), as F.relu6."""
    return ReLU6.apply(x)


def hardswish(x: Tensor) -> Tensor:
    """x * relu6(x + 3) / 6, as F.hardswish."""
    return Hardswish.apply(x)


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x), as F.silu."""
    return SiLU.apply(x)


def mish(x: Tensor) -> Tensor:
    """x * tanh(softplus(x)), as F.mish."""
    return Mish.apply(x)


def _require_dim(op: str, dim: int | None) -> int:
    if dim is None:
        # torch guesses a dim when it is left out (0 for 1-D and 3-D inputs, else 1), with a
        # deprecation warning; a guess that differs from dim=-1 on images would be a trap.
        raise TypeError(f"{op}: pass dim, the dimension to normalise over (as in torch.{op})")
    return dim


def log_softmax(x: Tensor, dim: int | None = None) -> Tensor:
    """log(softmax(x)) along dim, computed stably, as torch.log_softmax."""
    return LogSoftmax.apply(x, dim=_require_dim("log_softmax", dim))


def softmax(x: Tensor, dim: int | None = None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim, computed stably, as torch.softmax: each slice sums to 1."""
    return Softmax.apply(x, dim=_require_dim("softmax", dim))


class TensorMethods:
    """Tensor's operators and methods that call the Functions above (see ops/__init__.py)."""

    def relu(self: Tensor) -> Tensor:
        return relu(self)

    def sigmoid(self: Tensor) -> Tensor:
        return sigmoid(self)

    def tanh(self: Tensor) -> Tensor:
        return tanh(self)

    def log_softmax(self: Tensor, dim: int | None = None) -> Tensor:
        return log_softmax(self, dim)

    def softmax(self: Tensor, dim: int | None = None) -> Tensor:
        return softmax(self, dim)
