"""Factories: new Tensors of a given size, filled, ranged or random, as torch.zeros & co.

PyTorch's signatures and defaults:
- a size is given as ints or as one tuple or list: zeros(2, 3) == zeros((2, 3)); zeros(())
  is 0-d;
- floating results are float32 unless dtype= says otherwise; arange of ints and randint give
  int64, full takes the dtype of its fill value (bool, int64 or float32);
- requires_grad=True is allowed for floating dtypes only;
- the *_like forms take the size and dtype of a Tensor (or array);
- the random ones draw from the generator that scratchnet.manual_seed seeds (the one behind
  the layers' default initialisation, scratchnet/nn/init.py), so a seed fixes them all. The
  numbers differ from torch's: the generators are not the same.

NumPy differs in places, and torch wins: np.arange(3.0) is float64 (here float32), np.full
keeps float64 for a float fill (here float32), and linspace's `steps` is required here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from scratchnet.nn.init import get_rng
from scratchnet.tensor import Tensor

__all__ = [
    "arange",
    "empty",
    "empty_like",
    "eye",
    "full",
    "full_like",
    "linspace",
    "ones",
    "ones_like",
    "rand",
    "rand_like",
    "randint",
    "randint_like",
    "randn",
    "randn_like",
    "zeros",
    "zeros_like",
]

Size = int | Sequence[int]

_DEFAULT_FLOAT = np.dtype(np.float32)
_DEFAULT_INT = np.dtype(np.int64)


def _size(op: str, size: tuple[Any, ...]) -> tuple[int, ...]:
    """(2, 3) from zeros(2, 3), zeros((2, 3)) or zeros([2, 3]); () from zeros(())."""
    if len(size) == 1 and isinstance(size[0], Sequence | np.ndarray):
        size = tuple(size[0])
    for n in size:
        if isinstance(n, bool) or not isinstance(n, int | np.integer):
            raise TypeError(f"{op}: size must be ints, got {size!r}")
        if n < 0:
            raise ValueError(f"{op}: negative dimension {n} in size {tuple(size)}")
    return tuple(int(n) for n in size)


def _dtype(op: str, dtype: Any, default: np.dtype, floating: bool = False) -> np.dtype:
    try:
        result = default if dtype is None else np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{op}: {dtype!r} is not a dtype") from error
    if floating and result.kind != "f":
        raise TypeError(f"{op}: needs a floating dtype, got {result}")
    return result


def _make(array: np.ndarray, requires_grad: bool) -> Tensor:
    # dtype= keeps bool and int arrays as they are (Tensor() alone would make bools float32).
    return Tensor(array, requires_grad=requires_grad, dtype=array.dtype)


# ---------------------------------------------------------------------------------------------
# Filled
# ---------------------------------------------------------------------------------------------


def zeros(*size: Size, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A Tensor of zeros, as torch.zeros."""
    shape = _size("zeros", size)
    return _make(np.zeros(shape, _dtype("zeros", dtype, _DEFAULT_FLOAT)), requires_grad)


def ones(*size: Size, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A Tensor of ones, as torch.ones."""
    shape = _size("ones", size)
    return _make(np.ones(shape, _dtype("ones", dtype, _DEFAULT_FLOAT)), requires_grad)


def empty(*size: Size, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A Tensor whose values are whatever the memory held, as torch.empty."""
    shape = _size("empty", size)
    return _make(np.empty(shape, _dtype("empty", dtype, _DEFAULT_FLOAT)), requires_grad)


def full(size: Size, fill_value: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A Tensor filled with fill_value, as torch.full.

    Without dtype=, a bool fill gives bool, an int fill int64 and a float fill float32.
    """
    shape = _size("full", (size,))
    return _make(
        np.full(shape, fill_value, _dtype("full", dtype, _fill_dtype(fill_value))), requires_grad
    )


def _fill_dtype(value: Any) -> np.dtype:
    if isinstance(value, bool | np.bool_):
        return np.dtype(np.bool_)
    if isinstance(value, int | np.integer):
        return _DEFAULT_INT
    return _DEFAULT_FLOAT


def eye(n: int, m: int | None = None, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """The n x m identity (m = n by default), as torch.eye."""
    rows, cols = _size("eye", (n, n if m is None else m))
    return _make(np.eye(rows, cols, dtype=_dtype("eye", dtype, _DEFAULT_FLOAT)), requires_grad)


# ---------------------------------------------------------------------------------------------
# Ranges
# ---------------------------------------------------------------------------------------------


def arange(
    start: float,
    end: float | None = None,
    step: float = 1,
    *,
    dtype: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """start, start + step, ... up to but excluding end, as torch.arange.

    arange(end) counts from 0. The result is int64 when start, end and step are all ints,
    else float32; it has ceil((end - start) / step) elements.
    """
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if (end - start) * step < 0:
        raise ValueError(
            f"arange: the range from {start} to {end} goes the other way from step {step}"
        )
    integral = all(isinstance(v, int | np.integer) for v in (start, end, step))
    result = _dtype("arange", dtype, _DEFAULT_INT if integral else _DEFAULT_FLOAT)
    # As torch, the values are start + i * step in int64 or float64, cast at the end.
    count = math.ceil((end - start) / step)
    values = start + np.arange(count, dtype=np.int64 if integral else np.float64) * step
    return _make(values.astype(result), requires_grad)


def linspace(
    start: float, end: float, steps: int, *, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    """steps evenly spaced values from start to end, both included, as torch.linspace.

    As torch does, the first half counts up from start and the second half down from end,
    so both ends are exact.
    """
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative int, got {steps!r}")
    result = _dtype("linspace", dtype, _DEFAULT_FLOAT)
    i = np.arange(steps, dtype=np.float64)
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    first_half = i < max(steps // 2, 1)  # steps == 1 gives [start], as in torch
    values = np.where(first_half, start + i * step, end - (steps - 1 - i) * step)
    return _make(values.astype(result), requires_grad)


# ---------------------------------------------------------------------------------------------
# Random, from the generator that manual_seed seeds
# ---------------------------------------------------------------------------------------------


def rand(*size: Size, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples from [0, 1), as torch.rand."""
    shape = _size("rand", size)
    result = _dtype("rand", dtype, _DEFAULT_FLOAT, floating=True)
    return _make(get_rng().random(shape).astype(result), requires_grad)


def randn(*size: Size, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Samples from the standard normal distribution N(0, 1), as torch.randn."""
    shape = _size("randn", size)
    result = _dtype("randn", dtype, _DEFAULT_FLOAT, floating=True)
    return _make(get_rng().standard_normal(shape).astype(result), requires_grad)


def randint(
    low: int,
    high: int | Size | None = None,
    size: Size | None = None,
    *,
    dtype: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """Uniform integers from [low, high), as torch.randint: randint(high, size) or
    randint(low, high, size). The result is int64 unless dtype= says otherwise.
    """
    if size is None and isinstance(high, Sequence):
        low, high, size = 0, low, high
    elif size is not None and high is None:
        low, high = 0, low
    if size is None or high is None:
        raise TypeError("randint: expects randint(high, size) or randint(low, high, size)")
    if high <= low:
        raise ValueError(f"randint: the range [{low}, {high}) is empty")
    shape = _size("randint", (size,))
    result = _dtype("randint", dtype, _DEFAULT_INT)
    return _make(get_rng().integers(low, high, shape).astype(result), requires_grad)


# ---------------------------------------------------------------------------------------------
# *_like: the size and dtype of another Tensor
# ---------------------------------------------------------------------------------------------


def _like(x: Any, dtype: Any) -> tuple[tuple[int, ...], Any]:
    """x's shape, and dtype or else x's own dtype."""
    array = x.data if isinstance(x, Tensor) else np.asarray(x)
    return array.shape, array.dtype if dtype is None else dtype


def zeros_like(input: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(input, dtype)
    return zeros(shape, dtype=dtype, requires_grad=requires_grad)


def ones_like(input: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(input, dtype)
    return ones(shape, dtype=dtype, requires_grad=requires_grad)


def empty_like(input: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(input, dtype)
    return empty(shape, dtype=dtype, requires_grad=requires_grad)


def full_like(
    input: Any, fill_value: Any, *, dtype: Any = None, requires_grad: bool = False
) -> Tensor:
    shape, dtype = _like(input, dtype)
    return full(shape, fill_value, dtype=dtype, requires_grad=requires_grad)


def rand_like(input: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(input, dtype)
    return rand(shape, dtype=dtype, requires_grad=requires_grad)


def randn_like(input: Any, *, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    shape, dtype = _like(input, dtype)
    return randn(shape, dtype=dtype, requires_grad=requires_grad)


def randint_like(
    input: Any,
    low: int,
    high: int | None = None,
    *,
    dtype: Any = None,
    requires_grad: bool = False,
) -> Tensor:
    """randint_like(x, high) or randint_like(x, low, high), with x's size and dtype."""
    shape, dtype = _like(input, dtype)
    if high is None:
        low, high = 0, low
    return randint(low, high, shape, dtype=dtype, requires_grad=requires_grad)
