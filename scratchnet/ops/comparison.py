"""Comparisons: ==, !=, <, <=, >, >= and their names eq, ne, lt, le, gt, ge.

Each gives a bool Tensor of the broadcast shape, outside the graph: a comparison is a step
function, whose derivative is 0 wherever it exists, so there is no Function and no backward.
A comparison of a float tensor with a Python number compares in the tensor's dtype, as torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from scratchnet.tensor import Tensor


def _compare(op: str, ufunc: Callable[..., np.ndarray], a: Any, b: Any) -> Tensor:
    left = a.data if isinstance(a, Tensor) else a
    right = b.data if isinstance(b, Tensor) else b
    try:
        return Tensor(np.asarray(ufunc(left, right)))
    except ValueError:
        raise RuntimeError(
            f"{op}: shapes {np.shape(left)} and {np.shape(right)} do not broadcast"
        ) from None


def eq(a: Any, b: Any) -> Tensor:
    """a == b elementwise, as torch.eq."""
    return _compare("eq", np.equal, a, b)


def ne(a: Any, b: Any) -> Tensor:
    """a != b elementwise, as torch.ne."""
    return _compare("ne", np.not_equal, a, b)


def lt(a: Any, b: Any) -> Tensor:
    """a < b elementwise, as torch.lt."""
    return _compare("lt", np.less, a, b)


def le(a: Any, b: Any) -> Tensor:
    """a <= b elementwise, as torch.le."""
    return _compare("le", np.less_equal, a, b)


def gt(a: Any, b: Any) -> Tensor:
    """a > b elementwise, as torch.gt."""
    return _compare("gt", np.greater, a, b)


def ge(a: Any, b: Any) -> Tensor:
    """a >= b elementwise, as torch.ge."""
    return _compare("ge", np.greater_equal, a, b)


def equal(a: Tensor, b: Tensor) -> bool:
    """True when a and b have the same shape and the same elements, as torch.equal."""
    return a.shape == b.shape and bool(np.array_equal(a.data, b.data))


class TensorMethods:
    """Tensor's operators and methods that call the comparisons above (see ops/__init__.py).

    The reflected forms (`2 < t` calls `t.__gt__(2)`) come from Python itself.
    """

    def eq(self: Tensor, other: Any) -> Tensor:
        return eq(self, other)

    def ne(self: Tensor, other: Any) -> Tensor:
        return ne(self, other)

    def lt(self: Tensor, other: Any) -> Tensor:
        return lt(self, other)

    def le(self: Tensor, other: Any) -> Tensor:
        return le(self, other)

    def gt(self: Tensor, other: Any) -> Tensor:
        return gt(self, other)

    def ge(self: Tensor, other: Any) -> Tensor:
        return ge(self, other)

    def equal(self: Tensor, other: Tensor) -> bool:
        return equal(self, other)

    __eq__ = eq  # type: ignore[assignment]
    __ne__ = ne  # type: ignore[assignment]
    __lt__ = lt
    __le__ = le
    __gt__ = gt
    __ge__ = ge
