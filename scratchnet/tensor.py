"""The autograd engine: Tensor, Function and the reverse-mode backward pass.

A Tensor wraps an np.ndarray. Every differentiable operation is a Function subclass with two
static methods that take and return NumPy arrays:

    forward(ctx, *arrays, **options) -> y
    backward(ctx, dy) -> (dx1, dx2, ...)    one gradient (or None) per Tensor input

`Function.apply` runs forward and, when a gradient is needed, records the inputs on the output
Tensor. `Tensor.backward()` then walks that graph from the output back to the leaves in reverse
topological order and calls each `backward` with the upstream gradient `dy`.

This is the chain rule, one node at a time: if y = f(x) and L is the scalar loss, then
dL/dx = dL/dy * dy/dx, and `backward(ctx, dy)` computes exactly that product for its own f.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

ArrayLike = Any  # np.ndarray, a Python scalar or nested list

_FLOAT_DTYPES = (np.float32, np.float64)
_FLOAT_DTYPE_SET = frozenset(np.dtype(t) for t in _FLOAT_DTYPES)  # a hash look-up, for _wrap
_SUPPORTED_KINDS = "fiub"  # floating, signed and unsigned integer, bool


# ---------------------------------------------------------------------------------------------
# Grad mode
# ---------------------------------------------------------------------------------------------

# Grad mode is per thread, as in PyTorch: a server that predicts under no_grad() in a worker
# thread must not switch gradients off for a training loop in another thread.
_grad_mode = threading.local()


def is_grad_enabled() -> bool:
    """Return True when operations record the graph for backward()."""
    return getattr(_grad_mode, "enabled", True)


# Tracing (scratchnet/jit.py): inside `recording()`, Function.apply also appends every
# operation the thread applies to a list, (Function, inputs, options, output). Per thread, as
# grad mode is, so that a trace never picks up another thread's operations.
_recording = threading.local()


@contextlib.contextmanager
def recording() -> Iterator[list[tuple[Any, ...]]]:
    """Collect the operations this thread applies inside the block, in order."""
    previous = getattr(_recording, "ops", None)
    _recording.ops = ops = []
    try:
        yield ops
    finally:
        _recording.ops = previous


class _GradMode:
    """A context manager and decorator that sets grad mode, restoring the old mode on exit."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.previous: list[bool] = []

    def __enter__(self) -> None:
        self.previous.append(is_grad_enabled())
        _grad_mode.enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        _grad_mode.enabled = self.previous.pop()

    def __call__(self, fn: Callable) -> Callable:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _GradMode(self.enabled):
                return fn(*args, **kwargs)

        wrapper.__name__ = getattr(fn, "__name__", "wrapper")
        wrapper.__doc__ = fn.__doc__
        return wrapper


def no_grad() -> _GradMode:
    """Build no graph inside this block (or decorated function): for inference and updates."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Record the graph again inside a no_grad() block."""
    return _GradMode(True)


# ---------------------------------------------------------------------------------------------
# Function: one differentiable operation
# ---------------------------------------------------------------------------------------------


class Context:
    """What forward() keeps for backward(): named attributes, set by the Function itself.

    `needs_input_grad[i]` tells backward whether input i wants a gradient, so that it can skip
    work (conv2d skips dx for the first layer, whose input is the image).
    """

    def __init__(
        self, fn: type[Function], parents: tuple[Tensor, ...], grad_enabled: bool = True
    ) -> None:
        self.fn = fn
        self.parents = parents
        # Under no_grad() no gradient will ever flow: forward keeps nothing for backward.
        self.needs_input_grad = tuple(grad_enabled and p._requires_grad for p in parents)


class Function:
    """Base class of every differentiable operation.

    Subclasses define `forward(ctx, *arrays, **options)` and `backward(ctx, dy)`. Positional
    arguments of `apply` are the differentiable inputs (Tensors, or array-likes that become
    constants); keyword arguments are options such as `stride` or `dim`.

    A Function whose forward may return a view of its first input's memory (reshape, permute,
    expand, basic indexing) sets `returns_view = True`: an output that is a view then shares
    the input's version counter, so that writing into either one is seen by the graph of both.
    """

    returns_view = False

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **options: Any) -> Tensor:
        parents = tuple(x if isinstance(x, Tensor) else _as_tensor(x, inputs) for x in inputs)
        ctx = Context(cls, parents, is_grad_enabled())
        y = cls.forward(ctx, *[p.data for p in parents], **options)
        requires_grad = any(ctx.needs_input_grad)
        out = Tensor._wrap(y)
        if cls.returns_view and np.may_share_memory(y, parents[0].data):
            out._version_counter = parents[0]._version_counter
        if requires_grad:
            out.requires_grad = True  # checks the dtype: only floating outputs can
            # The versions now, for backward to tell whether forward's saved inputs changed.
            ctx.input_counters = tuple(p._version_counter for p in parents)
            ctx.input_versions = tuple(c.value for c in ctx.input_counters)
            ctx.output_version = (out._version_counter, out._version_counter.value, y)
            out._ctx = ctx
        ops = getattr(_recording, "ops", None)
        if ops is not None:
            ops.append((cls, parents, options, out))
        return out


class _VersionCounter:
    """How many times a tensor's memory was written in place; shared by its views."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0


def _check_saved_versions(ctx: Context) -> None:
    """Raise if a tensor that forward kept on ctx was written in place since.

    Function.apply notes the version of every input and of the output, which costs next to
    nothing; only when one of them has changed does this look at whether forward kept that
    tensor's memory (as a named attribute, as the house does: ctx.x, ctx.y). A tensor it did
    not keep (Add keeps neither input) may change freely, as in torch.
    """
    counter, version, y = ctx.output_version
    changed = [
        (p.data, c.value, v)
        for p, c, v in zip(ctx.parents, ctx.input_counters, ctx.input_versions)
        if c.value != v
    ]
    if counter.value != version:
        changed.append((y, counter.value, version))
    if not changed:
        return
    saved = [value for value in vars(ctx).values() if isinstance(value, np.ndarray)]
    for data, now, then in changed:
        if any(array is data or np.may_share_memory(array, data) for array in saved):
            raise RuntimeError(
                f"one of the variables needed for gradient computation has been modified by "
                f"an inplace operation: {ctx.fn.__name__} kept a tensor of shape {data.shape} "
                f"at version {then}, and it is now at version {now}. Clone it before writing "
                f"into it, or write into it after backward()"
            )


def _as_tensor(x: Any, like: Sequence[Any] = ()) -> Tensor:
    """Wrap a constant as a Tensor, taking the float dtype of the Tensors beside it.

    `x * 2` on a float32 Tensor must stay float32, so a Python scalar takes the dtype of the
    first floating Tensor among the operation's inputs.
    """
    if isinstance(x, Tensor):
        return x
    dtype = None
    for other in like:
        if isinstance(other, Tensor) and other.data.dtype in _FLOAT_DTYPES:
            dtype = other.data.dtype
            break
    if dtype is not None and not isinstance(x, np.ndarray):
        return Tensor(np.asarray(x, dtype=dtype))
    return Tensor(x)


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum a broadcast gradient back to the shape of the input it came from.

    If x of shape (3, 1) was broadcast to (2, 3, 4) in the forward pass, each element of x was
    used 2 * 4 times, so its gradient is the sum of dy over the leading axis and the axis of
    size 1.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


# ---------------------------------------------------------------------------------------------
# Tensor
# ---------------------------------------------------------------------------------------------


class Size(tuple):
    """The shape of a Tensor, as torch.Size: a tuple of ints that also knows its numel().

    It prints as a plain tuple, (2, 3), so that error messages read the same for arrays and
    Tensors.
    """

    def numel(self) -> int:
        return math.prod(self)


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Floating data is float32 by default; float64 data stays float64 through every operation.
    Integer arrays (class labels) and bool arrays (comparisons, masks) keep their dtype and
    cannot require a gradient, as in PyTorch.

    `Tensor(data)` makes Python numbers float32, as torch.Tensor does; `tensor(data)` infers
    int64, float32 or bool from them, as torch.tensor does.
    """

    __array_priority__ = 1000  # so that `ndarray * Tensor` calls Tensor.__rmul__

    def __init__(
        self,
        data: ArrayLike,
        requires_grad: bool = False,
        dtype: np.dtype | type | str | None = None,
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None:
            array = np.asarray(data, dtype=dtype)
        elif isinstance(data, np.ndarray | np.generic):
            array = np.asarray(data)
            if array.dtype.kind == "f" and array.dtype not in _FLOAT_DTYPES:
                array = array.astype(np.float32)  # float16 has no kernels here
        else:
            array = np.asarray(data, dtype=np.float32)
        if array.dtype.kind not in _SUPPORTED_KINDS:
            raise TypeError(
                f"tensor: unsupported dtype {array.dtype}: scratchnet holds float32, float64, "
                f"integer and bool data"
            )
        self.data: np.ndarray = array
        self._requires_grad = False
        self.requires_grad = requires_grad
        self.grad: np.ndarray | None = None
        self._ctx: Context | None = None
        self._version_counter = _VersionCounter()

    @classmethod
    def _wrap(cls, data: ArrayLike) -> Tensor:
        """Tensor(data), without a gradient, for a Function's output: a float32 or float64
        array (what forward almost always returns) skips __init__'s conversions and checks,
        which cost more than a small layer's whole forward under no_grad()."""
        if type(data) is not np.ndarray or data.dtype not in _FLOAT_DTYPE_SET:
            return cls(data)
        out = cls.__new__(cls)
        out.data = data
        out._requires_grad = False
        out.grad = None
        out._ctx = None
        out._version_counter = _VersionCounter()
        return out

    # -- attributes --------------------------------------------------------------------------

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, requires_grad: bool) -> None:
        if requires_grad and self.data.dtype not in _FLOAT_DTYPES:
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients, got {self.dtype}"
            )
        self._requires_grad = bool(requires_grad)

    @property
    def shape(self) -> Size:
        return Size(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self) -> Context | None:
        """The record of the op that made this tensor (its `fn` and its input `parents`), or
        None for a leaf or once backward() has freed it, as torch's grad_fn."""
        return self._ctx

    @property
    def _version(self) -> int:
        """How many in-place writes this tensor's memory has had, as torch's `_version`."""
        return self._version_counter.value

    def size(self, dim: int | None = None) -> Size | int:
        """The shape as a Size, or the length of one dimension (negative dims count back)."""
        if dim is None:
            return self.shape
        return self.data.shape[normalize_dim("size", dim, self.data.shape)]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return self.data.size

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        # Without this, Python would iterate through __getitem__ and stop silently on a 0-d
        # tensor (NumPy's IndexError ends the loop).
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20)
        return f"tensor({body}, dtype={self.dtype}{grad})"

    # -- conversions -------------------------------------------------------------------------

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        """np.asarray(tensor) gives the data (shared unless a dtype or copy asks otherwise)."""
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise RuntimeError(
                f"a Tensor with {self.data.size} elements cannot be converted to a Python "
                f"scalar (item() needs one element, got shape {tuple(self.shape)})"
            )
        return self.data.item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(
                f"bool() of a Tensor with {self.data.size} elements is ambiguous: use "
                f"(t != 0).any() or .all() explicitly (shape {tuple(self.shape)})"
            )
        return bool(self.data.item())

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shared memory and version counter, as in torch)."""
        out = Tensor(self.data)
        out._version_counter = self._version_counter
        return out

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    # -- in place ----------------------------------------------------------------------------
    # These write into self.data. They bump the version counter, so that a backward() that
    # needs the old values raises instead of computing a wrong gradient.

    def zero_(self) -> Tensor:
        """Set every element to 0, in place."""
        return self.fill_(0)

    def fill_(self, value: ArrayLike) -> Tensor:
        """Set every element to value (a number or a one-element Tensor), in place."""
        if isinstance(value, Tensor):
            value = value.item()
        self._check_inplace("fill_")
        self.data[...] = value
        self._version_counter.value += 1
        return self

    def __setitem__(self, index: Any, value: ArrayLike) -> None:
        """self[index] = value, in place, with NumPy's (and torch's) indexing and broadcasting."""
        self._check_inplace("__setitem__")
        if isinstance(index, Tensor):
            index = index.data
        if isinstance(value, Tensor):
            value = value.data
        try:
            self.data[index] = value
        except (IndexError, ValueError) as error:
            raise type(error)(
                f"__setitem__: cannot assign a value of shape {np.shape(value)} at index "
                f"{index!r} of a tensor of shape {tuple(self.shape)}: {error}"
            ) from None
        self._version_counter.value += 1

    def _check_inplace(self, op: str) -> None:
        if self.requires_grad and is_grad_enabled():
            if self.is_leaf:
                raise RuntimeError(
                    f"{op}: a leaf Variable that requires grad is being used in an in-place "
                    f"operation (update parameters under scratchnet.no_grad())"
                )
            raise RuntimeError(
                f"{op}: in-place operations on a tensor inside the graph are not supported: "
                f"use the out-of-place form, or clone() first"
            )
        if not self.data.flags.writeable:
            raise RuntimeError(
                f"{op}: this tensor's memory is read-only or shared by several of its elements "
                f"(an expand()): clone() it before writing into it"
            )

    # -- backward ----------------------------------------------------------------------------

    def backward(self, gradient: ArrayLike | None = None, retain_graph: bool = False) -> None:
        """Compute d(self)/d(leaf) for every leaf that requires a gradient, into `leaf.grad`.

        `gradient` is d(loss)/d(self). It may be left out only when self holds one element,
        where it is 1. Gradients accumulate (`+=`) into `.grad`, as in PyTorch: call
        `zero_grad()` between steps.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the "
                "computation had requires_grad=True (or it ran under no_grad())"
            )
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a scalar output, got shape "
                    f"{self.shape}: pass gradient= of the same shape, or reduce first"
                )
            dy = np.ones_like(self.data)
        else:
            dy = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient)
            if dy.shape != self.shape:
                raise ValueError(f"gradient has shape {dy.shape}, expected {self.shape}")
            dy = dy.astype(self.dtype, copy=False)

        # Each node's gradient is complete once every node that used it has run backward:
        # reverse topological order guarantees exactly that.
        grads: dict[int, np.ndarray] = {id(self): dy}
        for node in reversed(self._topological_order()):
            dy = grads.pop(id(node), None)
            if dy is None:
                continue
            ctx = node._ctx
            if ctx is None:
                node._accumulate(dy)
                continue

            _check_saved_versions(ctx)
            dxs = ctx.fn.backward(ctx, dy)
            if not isinstance(dxs, tuple):
                dxs = (dxs,)
            if len(dxs) != len(ctx.parents):
                raise RuntimeError(
                    f"{ctx.fn.__name__}.backward returned {len(dxs)} gradients for "
                    f"{len(ctx.parents)} inputs"
                )
            for parent, dx in zip(ctx.parents, dxs):
                if dx is None or not parent.requires_grad:
                    continue
                if dx.shape != parent.shape:
                    raise RuntimeError(
                        f"{ctx.fn.__name__}.backward returned a gradient of shape {dx.shape} "
                        f"for an input of shape {parent.shape}"
                    )
                key = id(parent)
                grads[key] = grads[key] + dx if key in grads else dx
            if not retain_graph:
                node._ctx = None  # free what forward kept; the graph is used once

    def _accumulate(self, dy: np.ndarray) -> None:
        """Add dy into a leaf's .grad, never aliasing an array that backward handed over."""
        dy = dy.astype(self.dtype, copy=False)
        if self.grad is None:
            self.grad = np.array(dy, copy=True)
        else:
            self.grad = self.grad + dy

    def _topological_order(self) -> list[Tensor]:
        """The graph's nodes, each after all of its inputs: an iterative depth-first search.

        Recursion would hit Python's limit at about 1,000 nodes; an explicit stack does not.
        """
        order: list[Tensor] = []
        visited: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, inputs_done = stack.pop()
            if inputs_done:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            if node._ctx is not None:
                for parent in node._ctx.parents:
                    if parent.requires_grad and id(parent) not in visited:
                        stack.append((parent, False))
        return order

    # -- operators -------------------------------------------------------------------------
    # The operators (+, -, *, /, @, [], unary -, comparisons) and the differentiable methods
    # (exp, log, relu, sum, reshape, permute, transpose, T, ...) are the calls of the Functions
    # in scratchnet/ops/, which adds them to this class (see ops.TensorMethods: this file
    # cannot import the one that builds on it).

    # ops/comparison.py defines __eq__, which would make Python drop the inherited __hash__;
    # the autograd keys tensors by identity, so they stay hashable by identity.
    __hash__ = object.__hash__


def normalize_dim(op: str, dim: int, shape: tuple[int, ...]) -> int:
    """dim in [0, ndim), from a dim in [-ndim, ndim), or a clear IndexError naming op and shape.

    A 0-d tensor accepts dim 0 and -1, as in PyTorch.
    """
    ndim = max(len(shape), 1)
    if not isinstance(dim, int | np.integer) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    if not -ndim <= dim < ndim:
        raise IndexError(
            f"{op}: dim {dim} is out of range for a tensor of shape {tuple(shape)} "
            f"(expected a dim in [{-ndim}, {ndim - 1}])"
        )
    return int(dim) % ndim


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Build a Tensor, inferring the dtype as torch.tensor does.

    Python floats give float32, ints int64 and bools bool; an array keeps its dtype. The data
    is copied, as torch.tensor copies.
    """
    if isinstance(data, Tensor):
        data = data.data
    if dtype is None and not isinstance(data, np.ndarray | np.generic):
        array = np.array(data)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        elif array.dtype.kind in "iu":
            array = array.astype(np.int64)
        return Tensor(array, requires_grad=requires_grad)
    return Tensor(np.array(data, dtype=dtype), requires_grad=requires_grad)
