"""Batch normalisation: normalise each channel over the batch, then scale and shift it."""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.kernels.batchnorm import (
    channel_grad_sums,
    channel_mean_var,
    normalize,
    normalize_backward,
)
from scratchnet.nn.module import Module, Parameter
from scratchnet.tensor import Context, Function, Tensor


class BatchNormFunction(Function):
    """For each channel c, over its m = N * H * W values (N * L for (N, C, L), N for (N, C)):

        mean    = mean(x)                      (training: the batch's; eval: running_mean)
        var     = mean((x - mean)**2)          (biased; eval: running_var)
        inv_std = 1 / sqrt(var + eps)
        xhat    = (x - mean) * inv_std
        y       = weight * xhat + bias

    Training also updates the running statistics in place, with the UNBIASED batch variance:
        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var  + momentum * var * m / (m - 1)

    Backward (mean(.) and sum(.) are per channel, over the m values):
        dbias   = sum(dy)
        dweight = sum(dy * xhat)
        training: dx = weight * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat))
        eval:     dx = weight * inv_std * dy      (mean and var are constants there)

    Shapes: x (N, C, ...), weight, bias, running_mean, running_var (C,) -> y of x's shape.

    The per-channel sums and elementwise passes run as kernels (scratchnet/kernels/
    batchnorm.py); beside each call is the NumPy line it computes, with x3 = x viewed as
    (N, C, L) and the per-channel vectors broadcast as (C, 1).
    """

    @staticmethod
    def forward(
        ctx: Context,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray,
        running_mean: np.ndarray | None = None,
        running_var: np.ndarray | None = None,
        training: bool = False,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ) -> np.ndarray:
        N, C = x.shape[:2]
        x3 = x.reshape(N, C, -1)
        m = x3.size // C
        if training:
            mean, var = channel_mean_var(x3)  # x3.mean((0, 2)), x3.var((0, 2))
            if running_mean is not None:
                running_mean[...] = (1 - momentum) * running_mean + momentum * mean
            if running_var is not None:
                unbiased = var * (m / (m - 1))
                running_var[...] = (1 - momentum) * running_var + momentum * unbiased
        else:
            mean = running_mean.astype(np.float64)
            var = running_var.astype(np.float64)
        inv_std = 1.0 / np.sqrt(var + eps)
        y = normalize(x3, mean, weight * inv_std, bias)  # (x3 - mean) * weight * inv_std + bias

        ctx.x3, ctx.mean, ctx.inv_std, ctx.weight = x3, mean, inv_std, weight
        ctx.training, ctx.x_shape = training, x.shape
        return y.reshape(x.shape)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[Any, Any, Any]:
        x3, mean, inv_std, weight = ctx.x3, ctx.mean, ctx.inv_std, ctx.weight
        m = x3.size // x3.shape[1]
        dy3 = dy.reshape(x3.shape)
        needs = ctx.needs_input_grad

        dx = sum_dy = sum_dy_xhat = None
        if ctx.training or needs[1] or needs[2]:
            # NumPy: sum_dy = dy3.sum((0, 2)), sum_dy_xmu = (dy3 * (x3 - mean)).sum((0, 2))
            sum_dy, sum_dy_xmu = channel_grad_sums(dy3, x3, mean)
            sum_dy_xhat = sum_dy_xmu * inv_std

        if needs[0] and ctx.training:
            # Step by step, as in "Deep Learning from Scratch" (xmu = x - mean, per channel):
            #   dxhat = dy * weight
            #   dvar  = sum(dxhat * xmu) * (-1/2) * inv_std**3
            #   dmean = -sum(dxhat) * inv_std + dvar * mean(-2 * xmu)     (the last term is 0)
            #   dx    = dxhat * inv_std + dvar * 2 * xmu / m + dmean / m
            # Substituting xhat = xmu * inv_std, the three terms collect into
            #   dx    = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)),
            # and weight, constant over the channel, factors out of dxhat:
            #   dx    = weight * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat))
            mean_dy, mean_dy_xhat = sum_dy / m, sum_dy_xhat / m
            # NumPy: dx = weight * inv_std * (dy3 - mean_dy - (x3 - mean) * inv_std * mean_dy_xhat)
            dx = normalize_backward(dy3, x3, mean, inv_std, weight * inv_std, mean_dy, mean_dy_xhat)
        elif needs[0]:
            # Evaluation: mean and var are the running statistics, constants, so y is affine.
            zeros = np.zeros(x3.shape[1])
            dx = normalize(dy3, zeros, weight * inv_std, zeros)  # dy3 * weight * inv_std

        dx = dx.reshape(ctx.x_shape) if needs[0] else None
        dweight = sum_dy_xhat.astype(weight.dtype) if needs[1] else None  # sum(dy * xhat)
        dbias = sum_dy.astype(weight.dtype) if needs[2] else None  # sum(dy)
        return dx, dweight, dbias


def batch_norm(
    x: Tensor,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each channel of x (N, C, ...), as F.batch_norm.

    training=True uses the batch's statistics and updates running_mean and running_var in
    place (when given); training=False uses the running statistics.
    """
    return _batch_norm(
        x, running_mean, running_var, weight, bias, training, momentum, eps, "batch_norm"
    )


def _batch_norm(
    x: Tensor,
    running_mean: Any,
    running_var: Any,
    weight: Tensor | None,
    bias: Tensor | None,
    training: bool,
    momentum: float,
    eps: float,
    caller: str,
) -> Tensor:
    if x.ndim < 2:
        raise ValueError(f"{caller} expects an input (N, C, ...), got shape {tuple(x.shape)}")
    C = x.shape[1]
    running_mean = _array_or_none(running_mean)
    running_var = _array_or_none(running_var)
    for name, value in (
        ("weight", weight),
        ("bias", bias),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        if value is not None and tuple(value.shape) != (C,):
            raise ValueError(
                f"{caller} expected {value.shape[0] if value.ndim else 1} channels, got {C} "
                f"(input shape {tuple(x.shape)}, {name} shape {tuple(value.shape)})"
            )
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{caller}: evaluation needs running_mean and running_var")
    if training and x.numel() // C <= 1:
        raise ValueError(
            f"{caller}: expected more than 1 value per channel when training, got input shape "
            f"{tuple(x.shape)}"
        )

    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float32
    weight = np.ones(C, dtype=dtype) if weight is None else weight
    bias = np.zeros(C, dtype=dtype) if bias is None else bias
    return BatchNormFunction.apply(
        x,
        weight,
        bias,
        running_mean=running_mean,
        running_var=running_var,
        training=training,
        momentum=momentum,
        eps=eps,
    )


def _array_or_none(value: Any) -> np.ndarray | None:
    return value.data if isinstance(value, Tensor) else value


class _BatchNorm(Module):
    """BatchNorm1d and BatchNorm2d: the same layer, checking a different input rank."""

    expected_dims: tuple[int, ...] = ()
    layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=np.float32))
            self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
            self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def forward(self, x: Tensor) -> Tensor:
        name = type(self).__name__
        if x.ndim not in self.expected_dims:
            raise ValueError(
                f"{name} expects a {' or '.join(f'{d}-D' for d in self.expected_dims)} input "
                f"{self.layout}, got {x.ndim}-D input of shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{name} expected {self.num_features} channels, got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )

        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            # Index assignment keeps the buffer's array (an attribute assignment would not).
            self.num_batches_tracked[...] += 1
            if self.momentum is None:  # a cumulative average over every batch so far
                factor = 1.0 / float(self.num_batches_tracked)

        # As in PyTorch: without running statistics, even evaluation uses the batch's.
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return _batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
            name,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, H, W) for each channel of an (N, C, H, W) input, as in PyTorch.

    weight starts at ones, bias at zeros; running_mean at zeros, running_var at ones.
    """

    expected_dims = (4,)
    layout = "(N, C, H, W)"


class BatchNorm1d(_BatchNorm):
    """Batch norm for each feature of an (N, C) input, or each channel of (N, C, L)."""

    expected_dims = (2, 3)
    layout = "(N, C) or (N, C, L)"
