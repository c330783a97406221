"""Copies and dtype conversions: clone, to(dtype), float, double, long.

Both are differentiable where torch's are: a copy passes dy through, and a cast between float
dtypes passes dy through in the input's dtype. A cast to an integer or bool dtype leaves the
graph, as in torch (such a tensor cannot require a gradient).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scratchnet.tensor import Context, Function, Tensor, no_grad


class Clone(Function):
    """y = a copy of x, with its own memory

    Backward: dx = dy.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray) -> np.ndarray:
        return x.copy()

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy


class Cast(Function):
    """y = x converted to `dtype` (float32 <-> float64)

    Backward: dx = dy converted back to x's dtype.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dtype: np.dtype | None = None) -> np.ndarray:
        ctx.x_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy.astype(ctx.x_dtype)


def _dtype(value: Any) -> np.dtype:
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"to: {value!r} is not a dtype") from None
    if dtype.kind not in "fiub":
        raise TypeError(f"to: unsupported dtype {dtype}: use a float, integer or bool dtype")
    return dtype


def to(x: Tensor, *args: Any, dtype: Any = None, copy: bool = False) -> Tensor:
    """x in another dtype, as torch.Tensor.to: x.to(np.float64), x.to("cpu"), x.to(other).

    The device is accepted and ignored ("cpu" is the only one). As in torch, x itself comes
    back when nothing changes and copy is False.
    """
    for arg in args:
        if isinstance(arg, Tensor):
            dtype = arg.dtype
        elif not (isinstance(arg, str) and arg.startswith("cpu")):
            dtype = arg
    if dtype is None or _dtype(dtype) == x.dtype:
        return Clone.apply(x) if copy else x
    dtype = _dtype(dtype)
    if dtype.kind == "f":
        if dtype.itemsize < 4:
            raise TypeError(f"to: {dtype} is not supported: use float32 or float64")
        return Cast.apply(x, dtype=dtype)
    with no_grad():  # an integer or bool result has no gradient
        return Cast.apply(x, dtype=dtype)


class TensorMethods:
    """Tensor's methods that call the Functions above (see ops/__init__.py)."""

    def clone(self: Tensor) -> Tensor:
        return Clone.apply(self)

    def to(self: Tensor, *args: Any, dtype: Any = None, copy: bool = False) -> Tensor:
        return to(self, *args, dtype=dtype, copy=copy)

    def float(self: Tensor) -> Tensor:
        return to(self, np.float32)

    def double(self: Tensor) -> Tensor:
        return to(self, np.float64)

    def long(self: Tensor) -> Tensor:
        return to(self, np.int64)
