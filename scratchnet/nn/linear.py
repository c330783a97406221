"""Linear (fully connected) layer and Flatten."""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet import ops
from scratchnet.nn.module import Module
from scratchnet.nn.utils import init_weight_and_bias
from scratchnet.runtime.threads import PARALLEL_MIN_WORK, parallel_for
from scratchnet.tensor import Context, Function, Tensor


class LinearFunction(Function):
    """y = x @ weight.T + bias

    Backward: dx = dy @ weight
              dweight = dy.T @ x
              dbias = dy.sum(0)
    Shapes: x (N, in), weight (out, in), bias (out,) -> y (N, out).

    A large forward (a batch of 1,000 images, say) cuts its rows into one block per thread:
    the BLAS itself runs single-threaded (scratchnet/runtime/threads.py).
    """

    @staticmethod
    def forward(
        ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None
    ) -> np.ndarray:
        ctx.x, ctx.weight = x, weight
        # One image or a training batch: one product, without the chunking's closure and
        # output buffer (one image through the linear model: 15.4 -> 13.7 us).
        if x.size < PARALLEL_MIN_WORK:
            y = x @ weight.T
            if bias is not None:
                y += bias
            return y
        y = np.empty((x.shape[0], weight.shape[0]), dtype=np.result_type(x, weight))

        def rows(lo: int, hi: int) -> None:
            np.matmul(x[lo:hi], weight.T, out=y[lo:hi])
            if bias is not None:
                y[lo:hi] += bias

        parallel_for(rows, x.shape[0], x.size, min_chunk=64)
        return y

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, ...]:
        needs = ctx.needs_input_grad
        dx = dy @ ctx.weight if needs[0] else None
        dweight = dy.T @ ctx.x if needs[1] else None
        if len(needs) == 2:
            return dx, dweight
        dbias = dy.sum(axis=0) if needs[2] else None
        return dx, dweight, dbias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ weight.T + bias, as F.linear. x is (N, in) or (in,)."""
    if x.ndim not in (1, 2):
        raise ValueError(f"linear expects input of shape (N, in) or (in,), got {x.shape}")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input has {x.shape[-1]} features, the weight expects {weight.shape[1]} "
            f"(input shape {x.shape}, weight shape {weight.shape})"
        )
    if x.ndim == 1:
        return linear(x.reshape(1, -1), weight, bias).reshape(weight.shape[0])
    if bias is None:
        return LinearFunction.apply(x, weight)
    return LinearFunction.apply(x, weight, bias)


class Linear(Module):
    """A fully connected layer, initialised as torch.nn.Linear.

    weight ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a=sqrt(5)), bias likewise.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        init_weight_and_bias(self, (out_features, in_features), bias)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Flatten(Module):
    """Merge dimensions start_dim..end_dim (by default all but the batch dimension)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Tensor) -> Tensor:
        return ops.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Return the input unchanged. Any constructor arguments are accepted and ignored, as in
    PyTorch, so that it can stand in for a layer built with arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x
