"""Reductions: sum and mean over some dimensions or all of them."""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.tensor import Context, Function, Tensor


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


class TensorMethods:
    """Tensor's operators and methods that call the Functions above (see ops/__init__.py)."""

    def sum(
        self: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        return Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(
        self: Tensor, axis: int | tuple[int, ...] | None = None, keepdims: bool = False
    ) -> Tensor:
        return Mean.apply(self, axis=axis, keepdims=keepdims)
