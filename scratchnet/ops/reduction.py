"""Reductions: sum, mean, max/min, amax/amin, argmax/argmin, var/std, prod and logsumexp.

Every reduction takes torch's `dim=` and `keepdim=`; NumPy's `axis=` and `keepdims=` are kept
as keyword-only aliases (each function's **aliases). As in torch, dim=None or dim=() reduces
every dimension (NumPy reduces none for axis=()), and a negative dim counts from the end.

In every backward, `dy` has the reduced shape; `kept` is x's shape with each reduced dimension
set to 1, so that dy.reshape(kept) broadcasts against x.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from scratchnet.ops.indexing import gather
from scratchnet.tensor import Context, Function, Tensor, normalize_dim

Dims = int | tuple[int, ...] | None


def normalize_dims(op: str, dim: Dims, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The sorted dims a reduction runs over: all of them for None or an empty tuple, as torch.

    NumPy reads axis=() as "reduce nothing"; torch reads dim=() as "reduce everything", and
    scratchnet follows torch. A 0-d tensor has nothing to reduce: its dims are ().
    """
    dims = () if dim is None else (dim,) if isinstance(dim, int | np.integer) else tuple(dim)
    if not dims:
        return tuple(range(len(shape)))
    normalized = [normalize_dim(op, d, shape) for d in dims]
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{op}: dims {dims} name the same dim twice (shape {tuple(shape)})")
    if not shape:
        return ()
    return tuple(sorted(normalized))


def _kept_shape(shape: tuple[int, ...], dims: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(1 if i in dims else n for i, n in enumerate(shape))


def _reduced_shape(shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool) -> tuple:
    if keepdim:
        return _kept_shape(shape, dims)
    return tuple(n for i, n in enumerate(shape) if i not in dims)


def _count(shape: tuple[int, ...], dims: tuple[int, ...]) -> int:
    """The number of elements that each output element reduces over."""
    return math.prod(shape[i] for i in dims)


def _dim_and_keepdim(op: str, dim: Any, keepdim: bool, aliases: dict[str, Any]) -> tuple:
    """Read NumPy's axis=/keepdims= (the keyword arguments in aliases) as torch's dim=/keepdim=."""
    unknown = aliases.keys() - {"axis", "keepdims"}
    if unknown:
        raise TypeError(f"{op}() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    axis, keepdims = aliases.get("axis"), aliases.get("keepdims")
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both dim= and axis= (axis is NumPy's name for dim)")
        dim = axis
    return dim, keepdim if keepdims is None else keepdims


def _require_float(op: str, input: Tensor) -> None:
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: needs a floating-point tensor, got {input.dtype}")


def _require_elements(op: str, input: Tensor, dims: tuple[int, ...]) -> None:
    """max, min, amax and amin have no value on an empty slice (there is no identity)."""
    for d in dims:
        if input.shape[d] == 0:
            raise ValueError(
                f"{op}: cannot reduce dimension {d} of size 0 (input of shape {tuple(input.shape)})"
            )


class Sum(Function):
    """y = x.sum(dims, keepdim)

    Backward: dx = dy broadcast back over the summed dims (every x element contributed once).
    Shapes: x (...); y drops the summed dims, or keeps them as size 1 with keepdim.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dims: tuple = (), keepdim: bool = False) -> Any:
        ctx.x_shape, ctx.kept = x.shape, _kept_shape(x.shape, dims)
        return np.asarray(x.sum(axis=dims, keepdims=keepdim))

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return np.broadcast_to(dy.reshape(ctx.kept), ctx.x_shape).copy()


class Mean(Function):
    """y = x.mean(dims, keepdim) = x.sum(dims) / n, with n the number of elements averaged

    Backward: dx = dy / n, broadcast back over the averaged dims.
    Shapes: as Sum. The mean of no elements is nan, as in torch.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dims: tuple = (), keepdim: bool = False) -> Any:
        ctx.x_shape, ctx.kept = x.shape, _kept_shape(x.shape, dims)
        ctx.n = _count(x.shape, dims)
        with np.errstate(invalid="ignore"):
            return np.asarray(x.sum(axis=dims, keepdims=keepdim) / x.dtype.type(ctx.n))

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        dx = np.broadcast_to(dy.reshape(ctx.kept) / dy.dtype.type(ctx.n), ctx.x_shape)
        return dx.copy()


def _split_among_ties(ctx: Context, dy: np.ndarray) -> np.ndarray:
    """dx = dy / k at each of the k elements equal to their slice's extreme, 0 elsewhere."""
    return np.where(ctx.is_extreme, dy.reshape(ctx.kept) / ctx.ties, 0).astype(dy.dtype)


def _extreme(ctx: Context, x: np.ndarray, y: np.ndarray, dims: tuple, keepdim: bool) -> Any:
    """Keep where the extremes are (NaN counts as one: it is what max returns) and return y."""
    ctx.kept = _kept_shape(x.shape, dims)
    ctx.is_extreme = (x == y) | np.isnan(x)
    ctx.ties = ctx.is_extreme.sum(axis=dims, keepdims=True)
    return np.asarray(y if keepdim else y.reshape(_reduced_shape(x.shape, dims, False)))


class AMax(Function):
    """y = x.amax(dims, keepdim): the largest element of each slice

    Backward: the gradient is split evenly among ties, as torch's amax and max() do:
        dx = dy / k where x equals its slice's maximum (k such elements), 0 elsewhere.
    Shapes: as Sum.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dims: tuple = (), keepdim: bool = False) -> Any:
        return _extreme(ctx, x, x.max(axis=dims, keepdims=True), dims, keepdim)

    backward = staticmethod(_split_among_ties)


class AMin(Function):
    """y = x.amin(dims, keepdim): the smallest element of each slice

    Backward: as AMax, with the minimum.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dims: tuple = (), keepdim: bool = False) -> Any:
        return _extreme(ctx, x, x.min(axis=dims, keepdims=True), dims, keepdim)

    backward = staticmethod(_split_among_ties)


class Prod(Function):
    """y = x.prod(dim, keepdim): the product of each slice along dim

    Backward: dy/dx_i = the product of all the other elements of x_i's slice, so
        dx_i = dy * (x_0 * ... * x_{i-1}) * (x_{i+1} * ... * x_{n-1})
    computed as an exclusive cumulative product from the left times one from the right. No
    division by x_i: the gradient stays right when the slice holds zeros.
    Shapes: as Sum, over one dim.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dim: int = 0, keepdim: bool = False) -> Any:
        ctx.x, ctx.dim, ctx.kept = x, dim, _kept_shape(x.shape, (dim,))
        return np.asarray(x.prod(axis=dim, keepdims=keepdim))

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        if ctx.x.shape[ctx.dim] == 0:
            return np.zeros_like(ctx.x)
        x = np.moveaxis(ctx.x, ctx.dim, -1)
        ones = np.ones((*x.shape[:-1], 1), dtype=x.dtype)
        before = np.cumprod(np.concatenate([ones, x[..., :-1]], axis=-1), axis=-1)
        after = np.cumprod(np.concatenate([ones, x[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
        others = np.moveaxis(before * after, -1, ctx.dim)
        return others * dy.reshape(ctx.kept)


def _centered(ctx: Context, x: np.ndarray, dims: tuple, correction: float) -> np.ndarray:
    """Keep x - mean for backward and return sum((x - mean)^2) / max(0, n - correction)."""
    ctx.kept = _kept_shape(x.shape, dims)
    ctx.xmu = x - x.mean(axis=dims, keepdims=True)
    # (The builtin max is shadowed here by this module's max.)
    ctx.divisor = x.dtype.type(np.maximum(0, _count(x.shape, dims) - correction))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ctx.xmu * ctx.xmu).sum(axis=dims, keepdims=True) / ctx.divisor


class Var(Function):
    """y = x.var(dims, correction, keepdim) = sum((x - mean)^2) / max(0, n - correction)

    correction=1 (the default, as torch 2.x) is the unbiased estimate, 0 the biased one; with
    n - correction <= 0 the result is nan or inf, as in torch.
    Backward: dx = dy * 2 (x - mean) / (n - correction). The mean's own dependence on x drops
    out: sum(x - mean) = 0.
    Shapes: as Sum.
    """

    @staticmethod
    def forward(
        ctx: Context, x: np.ndarray, dims: tuple = (), correction: float = 1, keepdim: bool = False
    ) -> Any:
        var = _centered(ctx, x, dims, correction)
        return np.asarray(var if keepdim else var.reshape(_reduced_shape(x.shape, dims, False)))

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return dy.reshape(ctx.kept) * 2 * ctx.xmu / ctx.divisor


class Std(Function):
    """y = x.std(dims, correction, keepdim) = sqrt(x.var(dims, correction))

    Backward: dx = dy * (x - mean) / ((n - correction) * std), and 0 where std is 0 (torch
    does the same rather than return nan for a constant slice).
    Shapes: as Sum.
    """

    @staticmethod
    def forward(
        ctx: Context, x: np.ndarray, dims: tuple = (), correction: float = 1, keepdim: bool = False
    ) -> Any:
        ctx.std = np.sqrt(_centered(ctx, x, dims, correction))
        std = ctx.std if keepdim else ctx.std.reshape(_reduced_shape(x.shape, dims, False))
        return np.asarray(std)

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            dstd = np.where(ctx.std == 0, 0, dy.reshape(ctx.kept) / (ctx.divisor * ctx.std))
        return (dstd * ctx.xmu).astype(dy.dtype)


class LogSumExp(Function):
    """y = x.logsumexp(dims, keepdim) = m + log(sum(exp(x - m))), m = the slice's maximum

    Subtracting m keeps exp from overflowing; it changes nothing in exact arithmetic. A slice
    whose maximum is infinite uses m = 0, so that all -inf gives -inf and any +inf gives +inf.
    Backward: dx = dy * exp(x - y), the softmax of the slice.
    Shapes: as Sum.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dims: tuple = (), keepdim: bool = False) -> Any:
        m = x.max(axis=dims, keepdims=True, initial=-np.inf)
        m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
        with np.errstate(divide="ignore"):
            y = np.log(np.exp(x - m).sum(axis=dims, keepdims=True)) + m
        ctx.x, ctx.y = x, y
        return np.asarray(y if keepdim else y.reshape(_reduced_shape(x.shape, dims, False)))

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(ctx.y.shape) * np.exp(ctx.x - ctx.y)


class ValuesIndices(NamedTuple):
    """What max and min with a dim return, as torch.return_types.max: (values, indices)."""

    values: Tensor
    indices: Tensor


# The functions below are torch's, with `input` first; TensorMethods makes each a method.
# They shadow the builtins sum, max and min inside this module, as torch.sum does in torch.


def sum(input: Tensor, dim: Dims = None, keepdim: bool = False, **aliases: Any) -> Tensor:
    """The sum over dim (all dims when None), as torch.sum."""
    dim, keepdim = _dim_and_keepdim("sum", dim, keepdim, aliases)
    return Sum.apply(input, dims=normalize_dims("sum", dim, input.shape), keepdim=keepdim)


def mean(input: Tensor, dim: Dims = None, keepdim: bool = False, **aliases: Any) -> Tensor:
    """The mean over dim (all dims when None), as torch.mean; floating-point tensors only."""
    dim, keepdim = _dim_and_keepdim("mean", dim, keepdim, aliases)
    _require_float("mean", input)
    return Mean.apply(input, dims=normalize_dims("mean", dim, input.shape), keepdim=keepdim)


def _max_or_min(
    op: str,
    input: Tensor,
    dim: Any,
    keepdim: bool,
    aliases: dict,
    extreme: type[Function],
    arg: Any,
) -> Tensor | ValuesIndices:
    dim, keepdim = _dim_and_keepdim(op, dim, keepdim, aliases)
    if dim is None:
        if input.numel() == 0:
            raise ValueError(f"{op}: an empty tensor of shape {tuple(input.shape)} has no {op}imum")
        return extreme.apply(input, dims=normalize_dims(op, None, input.shape))
    if isinstance(dim, Tensor):
        raise TypeError(f"{op}: dim must be an int; for two tensors use {op}imum(a, b)")
    d = normalize_dim(op, dim, input.shape)
    _require_elements(op, input, (d,) if input.ndim else ())
    indices = arg(input.data, axis=d if input.ndim else None, keepdims=True)
    values = gather(input, d, indices)
    if not keepdim:
        values = values.reshape(_reduced_shape(input.shape, (d,), False))
        indices = indices.reshape(values.shape)
    return ValuesIndices(values, Tensor(indices))


def max(
    input: Tensor, dim: int | None = None, keepdim: bool = False, **aliases: Any
) -> Tensor | ValuesIndices:
    """The largest element, as torch.max.

    Without dim: a 0-d tensor, whose gradient is split evenly among ties (as torch's max()).
    With dim: (values, indices), indices the FIRST maximum of each slice (as torch and
    np.argmax); the gradient goes to that index only. NaN counts as the largest value.
    """
    return _max_or_min("max", input, dim, keepdim, aliases, AMax, np.argmax)


def min(
    input: Tensor, dim: int | None = None, keepdim: bool = False, **aliases: Any
) -> Tensor | ValuesIndices:
    """The smallest element, as torch.min: see max."""
    return _max_or_min("min", input, dim, keepdim, aliases, AMin, np.argmin)


def _amax_or_amin(
    op: str, input: Tensor, dim: Dims, keepdim: bool, aliases: dict, extreme: type[Function]
) -> Tensor:
    dim, keepdim = _dim_and_keepdim(op, dim, keepdim, aliases)
    dims = normalize_dims(op, dim, input.shape)
    _require_elements(op, input, dims)
    return extreme.apply(input, dims=dims, keepdim=keepdim)


def amax(input: Tensor, dim: Dims = None, keepdim: bool = False, **aliases: Any) -> Tensor:
    """The largest element over dim (all dims by default), as torch.amax: ties split dy."""
    return _amax_or_amin("amax", input, dim, keepdim, aliases, AMax)


def amin(input: Tensor, dim: Dims = None, keepdim: bool = False, **aliases: Any) -> Tensor:
    """The smallest element over dim (all dims by default), as torch.amin: ties split dy."""
    return _amax_or_amin("amin", input, dim, keepdim, aliases, AMin)


def _arg(op: str, input: Tensor, dim: int | None, keepdim: bool, aliases: dict, arg: Any) -> Tensor:
    """The int64 index of the first extreme: flat over all dims when dim is None, as torch."""
    dim, keepdim = _dim_and_keepdim(op, dim, keepdim, aliases)
    if dim is None:
        if input.numel() == 0:
            raise ValueError(f"{op}: an empty tensor of shape {tuple(input.shape)} has no {op[3:]}")
        flat = np.asarray(arg(input.data), dtype=np.int64)
        return Tensor(flat.reshape((1,) * input.ndim) if keepdim else flat)
    d = normalize_dim(op, dim, input.shape)
    if not input.ndim:
        return Tensor(np.zeros((), dtype=np.int64))
    _require_elements(op, input, (d,))
    return Tensor(np.asarray(arg(input.data, axis=d, keepdims=keepdim), dtype=np.int64))


def argmax(input: Tensor, dim: int | None = None, keepdim: bool = False, **aliases: Any) -> Tensor:
    """The index of the first maximum, as torch.argmax: an int64 Tensor, with no gradient."""
    return _arg("argmax", input, dim, keepdim, aliases, np.argmax)


def argmin(input: Tensor, dim: int | None = None, keepdim: bool = False, **aliases: Any) -> Tensor:
    """The index of the first minimum, as torch.argmin: an int64 Tensor, with no gradient."""
    return _arg("argmin", input, dim, keepdim, aliases, np.argmin)


def _var_dims(
    op: str, input: Tensor, dim: Dims, keepdim: bool, aliases: dict
) -> tuple[tuple[int, ...], bool]:
    """The dims and keepdim of var or std, after checking that input is floating-point."""
    dim, keepdim = _dim_and_keepdim(op, dim, keepdim, aliases)
    _require_float(op, input)
    return normalize_dims(op, dim, input.shape), keepdim


def var(
    input: Tensor, dim: Dims = None, *, correction: float = 1, keepdim: bool = False, **aliases: Any
) -> Tensor:
    """The variance over dim with Bessel's correction (1 by default), as torch.var.

    NumPy's var defaults to ddof=0 (the biased estimate); torch's and scratchnet's default is
    correction=1. Pass correction=0 for NumPy's answer.
    """
    dims, keepdim = _var_dims("var", input, dim, keepdim, aliases)
    return Var.apply(input, dims=dims, correction=correction, keepdim=keepdim)


def std(
    input: Tensor, dim: Dims = None, *, correction: float = 1, keepdim: bool = False, **aliases: Any
) -> Tensor:
    """The standard deviation, sqrt(var), as torch.std (correction=1 by default: see var)."""
    dims, keepdim = _var_dims("std", input, dim, keepdim, aliases)
    return Std.apply(input, dims=dims, correction=correction, keepdim=keepdim)


def prod(input: Tensor, dim: int | None = None, keepdim: bool = False, **aliases: Any) -> Tensor:
    """The product over one dim, or of every element when dim is None, as torch.prod."""
    dim, keepdim = _dim_and_keepdim("prod", dim, keepdim, aliases)
    if dim is None:
        return Prod.apply(input.reshape(-1), dim=0).reshape(())
    d = normalize_dim("prod", dim, input.shape)
    if not input.ndim:
        return Prod.apply(input.reshape(1), dim=0).reshape(())
    return Prod.apply(input, dim=d, keepdim=keepdim)


def logsumexp(
    input: Tensor, dim: int | tuple[int, ...], keepdim: bool = False, **aliases: Any
) -> Tensor:
    """log(sum(exp(input))) over dim, computed stably, as torch.logsumexp.

    As in torch, dim is required, and an integer tensor is promoted to float32.
    """
    dim, keepdim = _dim_and_keepdim("logsumexp", dim, keepdim, aliases)
    if input.dtype.kind != "f":
        input = Tensor(input.data.astype(np.float32))
    dims = normalize_dims("logsumexp", dim, input.shape)
    return LogSumExp.apply(input, dims=dims, keepdim=keepdim)


class TensorMethods:
    """Tensor's methods: the functions above, with self as input (see ops/__init__.py)."""

    sum = sum
    mean = mean
    max = max
    min = min
    amax = amax
    amin = amin
    argmax = argmax
    argmin = argmin
    var = var
    std = std
    prod = prod
    logsumexp = logsumexp
