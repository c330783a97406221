"""Activations the Tensor methods call: ReLU, log-softmax and softmax."""

from __future__ import annotations

import numpy as np

from scratchnet.kernels.activation import relu_backward, relu_forward
from scratchnet.tensor import Context, Function, Tensor


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


class TensorMethods:
    """Tensor's operators and methods that call the Functions above (see ops/__init__.py)."""

    def relu(self: Tensor) -> Tensor:
        return relu(self)

    def log_softmax(self: Tensor, dim: int = -1) -> Tensor:
        return log_softmax(self, dim)

    def softmax(self: Tensor, dim: int = -1) -> Tensor:
        return softmax(self, dim)
