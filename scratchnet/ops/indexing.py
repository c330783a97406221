"""Indexing by tensors: gather (pick along a dimension) and masked_fill (overwrite where a mask is
set). Their backward sends dy back to the elements that the forward read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.tensor import Context, Function, Tensor, normalize_dim, unbroadcast


def _gather_index(index: np.ndarray, dim: int) -> tuple[np.ndarray, ...]:
    """The NumPy index of gather: `index` along dim, an open grid (0..n-1) along the others."""
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim] = index
    return tuple(grid)


class Gather(Function):
    """y = x.gather(dim, index): along dim, pick the element that index names.

    For a 3-D x and dim=1:   y[i, j, k] = x[i, index[i, j, k], k]

    Backward: dx = zeros like x, with dy[i, j, k] added at x[i, index[i, j, k], k]. An element
    picked k times receives k contributions (np.add.at: a scatter with add).
    Shapes: index has x's number of dimensions and, apart from dim, sizes no larger than x's;
    y has index's shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dim: int = 0, index: Any = None) -> np.ndarray:
        ctx.x_shape, ctx.dtype = x.shape, x.dtype
        ctx.where = _gather_index(index, dim)
        return x[ctx.where]

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        dx = np.zeros(ctx.x_shape, dtype=ctx.dtype)
        np.add.at(dx, ctx.where, dy)
        return dx


def gather(input: Tensor, dim: int, index: Tensor | np.ndarray) -> Tensor:
    """Pick, along dim, the elements of input that index names, as torch.gather.

    As in torch (and unlike NumPy's take_along_axis), index may be smaller than input in the
    other dimensions, and negative indices are an error rather than counted from the end.
    """
    index = np.asarray(index.data if isinstance(index, Tensor) else index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got {index.dtype}")
    if index.ndim != input.ndim:
        raise ValueError(
            f"gather: index of shape {tuple(index.shape)} and input of shape "
            f"{tuple(input.shape)} must have the same number of dimensions"
        )
    d = normalize_dim("gather", dim, input.shape)
    if input.ndim == 0:
        # A 0-d tensor is gathered as the one element of a 1-d tensor, as torch does.
        return gather(input.reshape(1), 0, index.reshape(1)).reshape(())
    for i, (m, n) in enumerate(zip(index.shape, input.shape)):
        if i != d and m > n:
            raise ValueError(
                f"gather: index of shape {tuple(index.shape)} is larger than input of shape "
                f"{tuple(input.shape)} in dimension {i} (only dimension {d} may differ)"
            )
    size = input.shape[d]
    outside = (index < 0) | (index >= size)
    if outside.any():
        raise IndexError(
            f"gather: index {index[outside][0]} is out of bounds for dimension {d} with size "
            f"{size} (input of shape {tuple(input.shape)})"
        )
    return Gather.apply(input, dim=d, index=index)


class MaskedFill(Function):
    """y = x.masked_fill(mask, value): value where mask is True, x elsewhere.

    Backward: dx = dy where mask is False, 0 where it is True (those outputs do not depend on
    x); dvalue = the sum of dy where mask is True (value is a 0-d tensor used there).
    Shapes: mask broadcasts against x; y has the broadcast shape.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, value: np.ndarray, mask: Any = None) -> np.ndarray:
        ctx.x_shape, ctx.value_shape, ctx.mask = x.shape, value.shape, mask
        return np.where(mask, value.astype(x.dtype), x)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mask = np.broadcast_to(ctx.mask, dy.shape)
        dx = unbroadcast(np.where(mask, 0, dy), ctx.x_shape)
        dvalue = dy[mask].sum().reshape(ctx.value_shape)
        return dx, dvalue


def masked_fill(input: Tensor, mask: Tensor | np.ndarray, value: float | Tensor) -> Tensor:
    """Replace the elements of input where mask is True with value, as torch.masked_fill.

    mask must be boolean and broadcast against input; value is a number or a 0-d tensor (which
    then gets a gradient).
    """
    mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a boolean tensor, got {mask.dtype}")
    try:
        np.broadcast_shapes(input.shape, mask.shape)
    except ValueError:
        raise ValueError(
            f"masked_fill: mask of shape {tuple(mask.shape)} does not broadcast against input of "
            f"shape {tuple(input.shape)}"
        ) from None
    if isinstance(value, Tensor) and value.ndim != 0:
        raise ValueError(
            f"masked_fill: value must be a number or a 0-d tensor, got shape {tuple(value.shape)}"
        )
    return MaskedFill.apply(input, value, mask=mask)


class TensorMethods:
    """Tensor's methods that call the Functions above (see ops/__init__.py)."""

    def gather(self: Tensor, dim: int, index: Tensor | np.ndarray) -> Tensor:
        return gather(self, dim, index)

    def masked_fill(self: Tensor, mask: Tensor | np.ndarray, value: float | Tensor) -> Tensor:
        return masked_fill(self, mask, value)
