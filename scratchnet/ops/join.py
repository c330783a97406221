"""Joins and splits: cat and stack put tensors together, split and chunk take one apart.

cat's backward splits dy where the inputs met; stack's takes dy apart along the new dimension.
split and chunk are slices (x[..., a:b, ...]), so their backward is indexing's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from scratchnet.tensor import Context, Function, Tensor, normalize_dim


def _result_dtype(op: str, tensors: Sequence[Tensor]) -> np.dtype:
    """The dtype of the joined tensor, promoted as torch promotes.

    NumPy joins int64 and float32 into float64; torch (and scratchnet) into float32: a
    floating tensor keeps its own precision, whatever the integers beside it.
    """
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a sequence of Tensors, got {type(t).__name__} at {i}")
    floats = [t.dtype for t in tensors if t.dtype.kind == "f"]
    return np.result_type(*floats) if floats else np.result_type(*(t.dtype for t in tensors))


class Cat(Function):
    """y = cat([x_0, ..., x_k], dim): the inputs one after another along dim

    Backward: dx_i = the slice of dy that x_i filled, dy[..., o_i : o_i + n_i, ...] along dim,
    with o_i = n_0 + ... + n_{i-1}.
    Shapes: every x_i has the same shape apart from dim; y's size along dim is the sum of theirs.
    """

    @staticmethod
    def forward(ctx: Context, *xs: np.ndarray, dim: int = 0, dtype: np.dtype = None) -> np.ndarray:
        ctx.dim, ctx.dtypes = dim, [x.dtype for x in xs]
        ctx.offsets = np.cumsum([x.shape[dim] for x in xs])[:-1]
        return np.concatenate(xs, axis=dim, dtype=dtype)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, ...]:
        parts = np.split(dy, ctx.offsets, axis=ctx.dim)
        return tuple(part.astype(dtype, copy=False) for part, dtype in zip(parts, ctx.dtypes))


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors along an existing dimension, as torch.cat.

    Unlike torch, a 1-d empty tensor is not skipped beside tensors of other shapes (torch's
    legacy exception): every input must match the others.
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    dtype = _result_dtype("cat", tensors)
    first = tensors[0]
    for i, t in enumerate(tensors):
        if t.ndim == 0:
            raise ValueError(f"cat: a 0-d tensor (at position {i}) cannot be concatenated")
    d = normalize_dim("cat", dim, first.shape)
    for i, t in enumerate(tensors):
        others = [n for j, n in enumerate(t.shape) if j != d]
        if t.ndim != first.ndim or others != [n for j, n in enumerate(first.shape) if j != d]:
            raise ValueError(
                f"cat: tensors must have the same shape except in dimension {d}: got "
                f"{tuple(first.shape)} at position 0 and {tuple(t.shape)} at position {i}"
            )
    return Cat.apply(*tensors, dim=d, dtype=dtype)


class Stack(Function):
    """y = stack([x_0, ..., x_k], dim): the inputs side by side along a new dimension dim

    y[..., i, ...] = x_i, with i at position dim.
    Backward: dx_i = dy[..., i, ...], the slice along dim.
    Shapes: every x_i has the same shape S; y has S with k + 1 inserted at dim.
    """

    @staticmethod
    def forward(ctx: Context, *xs: np.ndarray, dim: int = 0, dtype: np.dtype = None) -> np.ndarray:
        ctx.dim, ctx.dtypes = dim, [x.dtype for x in xs]
        return np.stack(xs, axis=dim, dtype=dtype)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> tuple[np.ndarray, ...]:
        parts = np.moveaxis(dy, ctx.dim, 0)
        return tuple(part.astype(dtype) for part, dtype in zip(parts, ctx.dtypes))


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Join tensors of one shape along a new dimension, as torch.stack."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    dtype = _result_dtype("stack", tensors)
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(
                f"stack: every tensor must have the same shape: got {tuple(tensors[0].shape)} at "
                f"position 0 and {tuple(t.shape)} at position {i}"
            )
    d = normalize_dim("stack", dim, (*tensors[0].shape, 1))
    return Stack.apply(*tensors, dim=d, dtype=dtype)


def _pieces(input: Tensor, d: int, sizes: Sequence[int]) -> tuple[Tensor, ...]:
    """input[..., a:b, ...] along d for consecutive pieces of the given sizes."""
    before = (slice(None),) * d
    starts = np.cumsum([0, *sizes[:-1]])
    return tuple(input[(*before, slice(a, a + n))] for a, n in zip(starts, sizes))


def split(
    input: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0
) -> tuple[Tensor, ...]:
    """Cut input along dim, as torch.split.

    An int gives pieces of that size (the last one smaller if the size does not divide);
    a list gives the size of each piece, and must add up to the size of dim.
    """
    if input.ndim == 0:
        raise ValueError("split: a 0-d tensor cannot be split")
    d = normalize_dim("split", dim, input.shape)
    n = input.shape[d]
    if isinstance(split_size_or_sections, int | np.integer):
        size = int(split_size_or_sections)
        if size < 0 or (size == 0 and n != 0):
            raise ValueError(
                f"split: split_size must be positive (or 0 for a dimension of size 0), got "
                f"{size} for dimension {d} of size {n} (input of shape {tuple(input.shape)})"
            )
        sizes = [size] * (n // size) if size else [0]
        if size and n % size:
            sizes.append(n % size)
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if any(s < 0 for s in sizes) or np.sum(sizes) != n:
            raise ValueError(
                f"split: sections {sizes} must be non-negative and add up to {n}, the size of "
                f"dimension {d} (input of shape {tuple(input.shape)})"
            )
    return _pieces(input, d, sizes)


def chunk(input: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """Cut input along dim into `chunks` pieces of ceil(n / chunks), as torch.chunk.

    As in torch, there may be fewer pieces than asked (chunk(6 elements, 4) gives 3 of 2);
    a dimension of size 0 gives `chunks` empty pieces.
    """
    if not isinstance(chunks, int | np.integer) or chunks <= 0:
        raise ValueError(f"chunk: chunks must be a positive int, got {chunks}")
    if input.ndim == 0:
        raise ValueError("chunk: a 0-d tensor cannot be chunked")
    d = normalize_dim("chunk", dim, input.shape)
    n = input.shape[d]
    if n == 0:
        return _pieces(input, d, [0] * int(chunks))
    return split(input, math.ceil(n / chunks), d)


class TensorMethods:
    """Tensor's methods that call the functions above (see ops/__init__.py)."""

    def split(
        self: Tensor, split_size_or_sections: int | Sequence[int], dim: int = 0
    ) -> tuple[Tensor, ...]:
        return split(self, split_size_or_sections, dim)

    def chunk(self: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        return chunk(self, chunks, dim)
