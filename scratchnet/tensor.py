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

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ArrayLike = Any  # np.ndarray, a Python scalar or nested list

_FLOAT_DTYPES = (np.float32, np.float64)


# ---------------------------------------------------------------------------------------------
# Grad mode
# ---------------------------------------------------------------------------------------------

# Grad mode is per thread, as in PyTorch: a server that predicts under no_grad() in a worker
# thread must not switch gradients off for a training loop in another thread.
_grad_mode = threading.local()


def is_grad_enabled() -> bool:
    """Return True when operations record the graph for backward()."""
    return getattr(_grad_mode, "enabled", True)


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

    def __init__(self, fn: type[Function], parents: tuple[Tensor, ...]) -> None:
        self.fn = fn
        self.parents = parents
        self.needs_input_grad = tuple(p.requires_grad for p in parents)


class Function:
    """Base class of every differentiable operation.

    Subclasses define `forward(ctx, *arrays, **options)` and `backward(ctx, dy)`. Positional
    arguments of `apply` are the differentiable inputs (Tensors, or array-likes that become
    constants); keyword arguments are options such as `stride` or `axis`.
    """

    @staticmethod
    def forward(ctx: Context, *args: Any, **kwargs: Any) -> np.ndarray:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, dy: np.ndarray) -> Any:
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs: Any, **options: Any) -> Tensor:
        parents = tuple(_as_tensor(x, like=inputs) for x in inputs)
        ctx = Context(cls, parents)
        y = cls.forward(ctx, *(p.data for p in parents), **options)
        requires_grad = is_grad_enabled() and any(ctx.needs_input_grad)
        out = Tensor(y, requires_grad=requires_grad)
        if requires_grad:
            out._ctx = ctx
        return out


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


class Tensor:
    """An n-dimensional array that can record the operations applied to it.

    Floating data is float32 by default; float64 data stays float64 through every operation.
    Integer arrays (class labels) are kept as integers and cannot require a gradient.
    """

    __array_priority__ = 1000  # so that `ndarray * Tensor` calls Tensor.__rmul__

    def __init__(
        self,
        data: ArrayLike,
        requires_grad: bool = False,
        dtype: np.dtype | type | None = None,
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data
        if dtype is not None:
            array = np.asarray(data, dtype=dtype)
        elif isinstance(data, np.ndarray | np.generic):
            array = np.asarray(data)
            is_bool = array.dtype.kind == "b"
            if is_bool or (array.dtype.kind == "f" and array.dtype not in _FLOAT_DTYPES):
                array = array.astype(np.float32)
        else:
            array = np.asarray(data, dtype=np.float32)
        if requires_grad and array.dtype not in _FLOAT_DTYPES:
            raise TypeError(
                f"only float32 and float64 tensors can require gradients, got {array.dtype}"
            )
        self.data: np.ndarray = array
        self.requires_grad: bool = requires_grad
        self.grad: np.ndarray | None = None
        self._ctx: Context | None = None

    # -- attributes --------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        body = np.array2string(self.data, separator=", ", precision=4, threshold=20)
        return f"tensor({body}, dtype={self.dtype}{grad})"

    def numpy(self) -> np.ndarray:
        """The underlying array (shared, not copied)."""
        return self.data

    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def zero_(self) -> Tensor:
        self.data[...] = 0
        return self

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype not in _FLOAT_DTYPES:
            raise TypeError(f"only float tensors can require gradients, got {self.dtype}")
        self.requires_grad = requires_grad
        return self

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
    # The operators (+, -, *, /, @, [], unary -) and the differentiable methods (exp, log,
    # relu, softmax, log_softmax, sum, mean, reshape, view, flatten, transpose, T) are the
    # calls of the Functions in scratchnet/ops/, which adds them to this class (see
    # ops.TensorMethods: this file cannot import the one that builds on it).

    def argmax(self, axis: int | None = None) -> np.ndarray:
        return self.data.argmax(axis=axis)

    # Comparisons give plain boolean arrays: they have no gradient.
    def __eq__(self, other: object) -> np.ndarray:  # type: ignore[override]
        return self.data == (other.data if isinstance(other, Tensor) else other)

    __hash__ = object.__hash__


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Build a Tensor, as torch.tensor does."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
