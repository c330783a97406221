"""Shapes and indexing: reshape, flatten, transpose, indexing. No arithmetic: the backward of
each moves dy back to where the input's elements were."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scratchnet.tensor import Context, Function, Tensor


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


class TensorMethods:
    """Tensor's operators and methods that call the Functions above (see ops/__init__.py)."""

    def __getitem__(self: Tensor, index: Any) -> Tensor:
        return Index.apply(self, index=index)

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
