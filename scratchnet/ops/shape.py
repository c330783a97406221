"""Shapes and indexing: reshape, permute, expand, repeat, indexing, and the calls built on them
(view, flatten, unsqueeze, squeeze, transpose, t, T, mT, expand_as). No arithmetic: the
backward of each moves dy back to where the input's elements were.

Dims follow PyTorch: a negative dim counts from the end, and `transpose(dim0, dim1)` swaps two
dims (NumPy's `transpose(axes)` takes a whole permutation: that is `permute` here).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scratchnet.tensor import Context, Function, Tensor, normalize_dim, unbroadcast


def _sizes(op: str, sizes: tuple[Any, ...]) -> tuple[int, ...]:
    """The sizes of reshape(2, 3), reshape((2, 3)) and reshape([2, 3]) as one tuple of ints."""
    if len(sizes) == 1 and not isinstance(sizes[0], int | np.integer):
        sizes = tuple(sizes[0])
    if not all(isinstance(n, int | np.integer) and not isinstance(n, bool) for n in sizes):
        raise TypeError(f"{op}: sizes must be ints, got {sizes!r}")
    return tuple(int(n) for n in sizes)


class Reshape(Function):
    """y = x.reshape(shape)   (one entry may be -1: the size that makes the numbers fit)

    Backward: dx = dy.reshape(x.shape): reshaping moves no numbers, so neither does its
    gradient.
    Shapes: y has `shape`, with as many elements as x.
    """

    returns_view = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: tuple[int, ...] = ()) -> np.ndarray:
        ctx.x_shape = x.shape
        try:
            return x.reshape(shape)
        except ValueError:
            raise RuntimeError(
                f"reshape: shape {list(shape)} is invalid for a tensor of shape {x.shape} "
                f"({x.size} elements)"
            ) from None

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(ctx.x_shape)


def reshape(x: Tensor, *shape: int | tuple[int, ...]) -> Tensor:
    """x with a new shape of the same number of elements, as torch.reshape."""
    return Reshape.apply(x, shape=_sizes("reshape", shape))


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims start_dim..end_dim into one, as torch.flatten (a 0-d x gives shape (1,))."""
    shape = x.shape
    start = normalize_dim("flatten", start_dim, shape)
    end = normalize_dim("flatten", end_dim, shape)
    if start > end:
        raise IndexError(
            f"flatten: start_dim {start_dim} comes after end_dim {end_dim} for a tensor of "
            f"shape {tuple(shape)}"
        )
    if x.ndim == 0:
        return Reshape.apply(x, shape=(1,))
    merged = math.prod(shape[start : end + 1])
    return Reshape.apply(x, shape=(*shape[:start], merged, *shape[end + 1 :]))


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """x with a new dim of size 1 at position dim, in [-ndim - 1, ndim], as torch.unsqueeze."""
    shape = x.shape
    dim = normalize_dim("unsqueeze", dim, (*shape, 1))
    return Reshape.apply(x, shape=(*shape[:dim], 1, *shape[dim:]))


def squeeze(x: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """x without its dims of size 1: all of them, or those of `dim` (an int or a tuple).

    As in torch, a named dim whose size is not 1 is left alone, without an error.
    """
    shape = x.shape
    if dim is None:
        dims = set(range(len(shape)))
    else:
        named = (dim,) if isinstance(dim, int | np.integer) else tuple(dim)
        dims = {normalize_dim("squeeze", d, shape) for d in named}
    kept = tuple(n for i, n in enumerate(shape) if n != 1 or i not in dims)
    return Reshape.apply(x, shape=kept)


class Permute(Function):
    """y = x.permute(dims): y's dim i is x's dim dims[i]

    Backward: dx = dy.permute(inverse of dims), the permutation that puts each dim back.
    Shapes: y.shape[i] = x.shape[dims[i]].
    """

    returns_view = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dims: tuple[int, ...] = ()) -> np.ndarray:
        ctx.dims = dims
        return x.transpose(dims)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy.transpose(np.argsort(ctx.dims))


def permute(x: Tensor, *dims: int | tuple[int, ...]) -> Tensor:
    """x with its dims reordered: permute(2, 0, 1) puts the last dim first, as torch.permute."""
    dims = _sizes("permute", dims)
    if len(dims) != x.ndim:
        raise RuntimeError(
            f"permute: the number of dims ({len(dims)}) must match the tensor's ({x.ndim}), "
            f"got dims {list(dims)} for shape {tuple(x.shape)}"
        )
    normalized = tuple(normalize_dim("permute", d, x.shape) for d in dims)
    if len(set(normalized)) != len(normalized):
        raise RuntimeError(f"permute: dims {list(dims)} repeat a dim")
    return Permute.apply(x, dims=normalized)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """x with dims dim0 and dim1 swapped, as torch.transpose (NumPy's transpose is permute)."""
    order = list(range(x.ndim))
    if x.ndim == 0:
        normalize_dim("transpose", dim0, x.shape)
        normalize_dim("transpose", dim1, x.shape)
        return Permute.apply(x, dims=())
    i = normalize_dim("transpose", dim0, x.shape)
    j = normalize_dim("transpose", dim1, x.shape)
    order[i], order[j] = order[j], order[i]
    return Permute.apply(x, dims=tuple(order))


def t(x: Tensor) -> Tensor:
    """The transpose of a matrix (a tensor of at most 2 dims is returned as it is), as torch.t."""
    if x.ndim > 2:
        raise RuntimeError(
            f"t: expects a tensor with <= 2 dimensions, got shape {tuple(x.shape)}: use "
            f"transpose(dim0, dim1) or .mT"
        )
    return Permute.apply(x, dims=tuple(range(x.ndim))[::-1])


class Expand(Function):
    """y = x broadcast to `shape` (a view: no copy)

    Backward: dx = dy summed over the dims that were added or stretched from size 1 (each x
    element was used once per position it was copied to).
    Shapes: x (s1, ..., sk) -> y (n1, ..., nm), m >= k; each si is 1 or equal to its n.
    """

    returns_view = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, shape: tuple[int, ...] = ()) -> np.ndarray:
        ctx.x_shape = x.shape
        return np.broadcast_to(x, shape)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return unbroadcast(dy, ctx.x_shape)


def expand(x: Tensor, *sizes: int | tuple[int, ...]) -> Tensor:
    """x repeated along its dims of size 1 (and new leading dims) without copying, as
    torch.Tensor.expand. A size of -1 keeps that dim's size.

    As in torch, the result shares memory between its elements: writing into it is an error.
    """
    sizes = _sizes("expand", sizes)
    shape = x.shape
    lead = len(sizes) - len(shape)
    if lead < 0:
        raise RuntimeError(
            f"expand: the number of sizes ({len(sizes)}) must be at least the tensor's number "
            f"of dims ({len(shape)}), got {list(sizes)} for shape {tuple(shape)}"
        )
    target = []
    for i, n in enumerate(sizes):
        old = shape[i - lead] if i >= lead else None
        if n == -1:
            if old is None:
                raise RuntimeError(
                    f"expand: -1 is not allowed for a new leading dim ({i}), got sizes "
                    f"{list(sizes)} for shape {tuple(shape)}"
                )
            n = old
        if n < 0 or (old is not None and old != 1 and old != n):
            raise RuntimeError(
                f"expand: the expanded size {n} must match the existing size {old} at "
                f"non-singleton dim {i}: sizes {list(sizes)}, tensor shape {tuple(shape)}"
            )
        target.append(n)
    return Expand.apply(x, shape=tuple(target))


class Repeat(Function):
    """y = x tiled `repeats` times along each dim, as torch.Tensor.repeat (NumPy's np.tile)

    Backward: view dy as (r1, s1, r2, s2, ...), one copy of x per (r1, r2, ...), and sum over
    the copies: dx = dy.reshape(r1, s1, r2, s2, ...).sum(over r1, r2, ...).
    Shapes: x (s1, ..., sk) -> y (r1 * s1', ..., rm * sm'), where x's shape is padded on the
    left with 1s to the m = len(repeats) dims.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, repeats: tuple[int, ...] = ()) -> np.ndarray:
        ctx.x_shape = x.shape
        ctx.repeats = repeats
        return np.tile(x, repeats)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        repeats = ctx.repeats
        padded = (1,) * (len(repeats) - len(ctx.x_shape)) + ctx.x_shape
        interleaved = [n for pair in zip(repeats, padded) for n in pair]
        dx = dy.reshape(interleaved).sum(axis=tuple(range(0, 2 * len(repeats), 2)))
        return dx.reshape(ctx.x_shape)


def repeat(x: Tensor, *repeats: int | tuple[int, ...]) -> Tensor:
    """x copied repeats[i] times along dim i, as torch.Tensor.repeat."""
    repeats = _sizes("repeat", repeats)
    if len(repeats) < x.ndim or any(r < 0 for r in repeats):
        raise RuntimeError(
            f"repeat: needs one non-negative count per dim (at least {x.ndim}), got "
            f"{list(repeats)} for shape {tuple(x.shape)}"
        )
    return Repeat.apply(x, repeats=repeats)


class Index(Function):
    """y = x[index]   (basic or advanced NumPy indexing; a bool or integer Tensor index works)

    Backward: dx = zeros like x, with dy added at the indexed places (np.add.at, so that an
    index repeated k times receives k contributions).
    """

    returns_view = True  # basic indexing gives a view; advanced indexing a copy, told apart

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, index: Any = None) -> np.ndarray:
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        ctx.x_shape, ctx.dtype, ctx.index = x.shape, x.dtype, index
        try:
            return np.asarray(x[index])
        except IndexError as error:
            raise IndexError(f"index: {error}, for a tensor of shape {x.shape}") from None

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
        return reshape(self, *shape)

    def view(self: Tensor, *shape: int | tuple[int, ...]) -> Tensor:
        """As reshape: NumPy arrays have no contiguity rule to enforce, so view never fails
        where torch's would ask for .contiguous()."""
        return reshape(self, *shape)

    def view_as(self: Tensor, other: Tensor) -> Tensor:
        return reshape(self, other.shape)

    def flatten(self: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        return flatten(self, start_dim, end_dim)

    def unsqueeze(self: Tensor, dim: int) -> Tensor:
        return unsqueeze(self, dim)

    def squeeze(self: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
        return squeeze(self, dim)

    def permute(self: Tensor, *dims: int | tuple[int, ...]) -> Tensor:
        return permute(self, *dims)

    def transpose(self: Tensor, dim0: int, dim1: int) -> Tensor:
        return transpose(self, dim0, dim1)

    def t(self: Tensor) -> Tensor:
        return t(self)

    @property
    def T(self: Tensor) -> Tensor:
        """All dims reversed, as torch's .T."""
        return Permute.apply(self, dims=tuple(range(self.ndim))[::-1])

    @property
    def mT(self: Tensor) -> Tensor:
        """The last two dims swapped: a batch of matrices, each transposed."""
        if self.ndim < 2:
            raise RuntimeError(f"mT: needs at least 2 dims, got shape {tuple(self.shape)}")
        return transpose(self, -2, -1)

    def expand(self: Tensor, *sizes: int | tuple[int, ...]) -> Tensor:
        return expand(self, *sizes)

    def expand_as(self: Tensor, other: Tensor) -> Tensor:
        return expand(self, other.shape)

    def repeat(self: Tensor, *repeats: int | tuple[int, ...]) -> Tensor:
        return repeat(self, *repeats)
