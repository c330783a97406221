"""The gradient check, as torch.autograd.gradcheck, and the grad-mode switches.

A hand-written backward is easy to get wrong and hard to see wrong, so every op is checked
against the definition of the derivative. For a function y = f(x1, x2, ...) and a random
upstream gradient dy (never ones: with a `sum` or `mean` upstream, BatchNorm's input gradient
is exactly zero whatever the code does), backward computes the vector-Jacobian product
J^T dy for each input. Finite differences compute the same numbers from forward alone:

    full check, element j of x:   (<dy, f(x + eps e_j)> - <dy, f(x - eps e_j)>) / (2 eps)
    directional check, random v:  (<dy, f(x + eps v)> - <dy, f(x - eps v)>) / (2 eps)
                                  must equal <J^T dy, v> = sum(x.grad * v)

The full check costs two forward passes per input element, so inputs larger than
FULL_CHECK_LIMIT elements get the directional check (HIPS autograd's check_vjp) instead, unless
fast_mode says otherwise. Central differences have an error of order eps**2, which is why
everything runs in float64: in float32 the rounding of f alone is larger than the derivative's
change over eps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from scratchnet.tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad

__all__ = [
    "FULL_CHECK_LIMIT",
    "Function",
    "GradcheckError",
    "enable_grad",
    "gradcheck",
    "gradient_error",
    "is_grad_enabled",
    "no_grad",
    "relative_error",
]

# Inputs with more elements than this get the directional check when fast_mode is None.
FULL_CHECK_LIMIT = 1024


class GradcheckError(RuntimeError):
    """Backward and finite differences disagree (the name torch.autograd uses)."""


@dataclass
class _InputCheck:
    """Backward's and the finite differences' numbers for one input.

    Full check: both arrays have the input's shape (the vector-Jacobian product J^T dy).
    Directional check: both have one value per random direction v.
    """

    index: int
    shape: tuple[int, ...]
    analytic: np.ndarray
    numeric: np.ndarray
    directional: bool


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a|, |b|, tiny): 0 when equal, about 1 when unrelated."""
    a = np.asarray(a)
    b = np.asarray(b)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-12)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def gradcheck(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    *,
    fast_mode: bool | None = None,
    seed: int = 0,
) -> bool:
    """Check fn's backward against central differences, as torch.autograd.gradcheck.

    fn takes the inputs and returns a Tensor or a tuple of Tensors. inputs is one input or a
    sequence of them: the Tensors with requires_grad=True and the floating NumPy arrays are
    checked (as float64 copies, so the caller's data is never touched); anything else (integer
    labels, Tensors without a gradient, options) is passed to fn unchanged.

    An element passes when |backward - numeric| <= atol + rtol * |numeric|, as in torch.
    fast_mode=None runs the full check on inputs of up to FULL_CHECK_LIMIT elements and the
    directional check on larger ones; True and False force one of them.

    Returns True when every input passes. Otherwise raises GradcheckError naming the input,
    the element (or direction) and both values, or returns False if raise_exception=False.
    """
    for check in _compare(fn, inputs, eps, fast_mode, seed):
        error = np.abs(check.analytic - check.numeric)
        allowed = atol + rtol * np.abs(check.numeric)
        failed = ~(error <= allowed)  # NaN fails too
        if not failed.any():
            continue
        if raise_exception:
            raise GradcheckError(_failure_message(check, error, allowed, failed))
        return False
    return True


def gradient_error(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float = 1e-6,
    *,
    fast_mode: bool | None = False,
    directions: int = 3,
    seed: int = 0,
) -> float:
    """The largest relative error between backward and central differences, over the inputs.

    The measuring side of gradcheck, for tests that log how close a backward is: about 1e-9
    for a correct backward in float64, about 1 for a wrong one. For a directional check the
    error of each direction is measured on its own. Arguments as in gradcheck; fast_mode
    defaults to the full check here.
    """
    worst = 0.0
    for check in _compare(fn, inputs, eps, fast_mode, seed, directions):
        if check.directional:
            for a, n in zip(check.analytic, check.numeric):
                worst = max(worst, relative_error(a, n))
        else:
            worst = max(worst, relative_error(check.analytic, check.numeric))
    return worst


# ---------------------------------------------------------------------------------------------
# The comparison both share
# ---------------------------------------------------------------------------------------------


def _compare(
    fn: Callable[..., Any],
    inputs: Any,
    eps: float,
    fast_mode: bool | None,
    seed: int,
    directions: int = 3,
) -> list[_InputCheck]:
    rng = np.random.default_rng(seed)
    args, wrt = _prepare(inputs)

    with enable_grad():
        outputs = _float_outputs(fn(*args))
        dys = [rng.standard_normal(out.shape) for out in outputs]
        for out, dy in zip(outputs, dys):
            if out.requires_grad:
                out.backward(dy, retain_graph=True)

    def objective() -> float:
        """<dy, f(inputs)>, summed over the outputs: its derivatives are J^T dy."""
        with no_grad():
            outs = _float_outputs(fn(*args))
        return float(sum(np.sum(out.data.astype(np.float64) * dy) for out, dy in zip(outs, dys)))

    checks = []
    for i in wrt:
        x = args[i]
        analytic = np.zeros_like(x.data) if x.grad is None else x.grad.astype(np.float64)
        directional = x.data.size > FULL_CHECK_LIMIT if fast_mode is None else fast_mode
        if directional:
            numeric, analytic = _directional(x, analytic, objective, eps, rng, directions)
        else:
            numeric = _full(x, objective, eps)
        checks.append(_InputCheck(i, tuple(x.shape), analytic, numeric, directional))
    return checks


def _prepare(inputs: Any) -> tuple[list[Any], list[int]]:
    """fn's arguments, with float64 copies of the inputs to check, and their positions."""
    if isinstance(inputs, Tensor | np.ndarray) or not isinstance(inputs, Sequence):
        inputs = (inputs,)
    args: list[Any] = []
    wrt: list[int] = []
    for i, x in enumerate(inputs):
        checked = (isinstance(x, Tensor) and x.requires_grad) or (
            isinstance(x, np.ndarray) and x.dtype.kind == "f"
        )
        if checked:
            data = x.data if isinstance(x, Tensor) else x
            args.append(Tensor(np.array(data, dtype=np.float64), requires_grad=True))
            wrt.append(i)
        else:
            args.append(x)
    if not wrt:
        raise ValueError(
            "gradcheck: no input to check: pass floating NumPy arrays or Tensors with "
            "requires_grad=True"
        )
    return args, wrt


def _float_outputs(result: Any) -> list[Tensor]:
    """fn's floating outputs: a Tensor, or the floating Tensors of a tuple (not indices)."""
    outputs = list(result) if isinstance(result, tuple | list) else [result]
    if not all(isinstance(out, Tensor) for out in outputs):
        kinds = ", ".join(type(out).__name__ for out in outputs)
        raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got {kinds}")
    floating = [out for out in outputs if out.dtype.kind == "f"]
    if not floating:
        raise TypeError("gradcheck: fn returned no floating Tensor to differentiate")
    return floating


def _full(x: Tensor, objective: Callable[[], float], eps: float) -> np.ndarray:
    """Central differences of the objective, one element of x at a time."""
    numeric = np.zeros_like(x.data)
    flat = x.data.reshape(-1)  # a view: x.data is a contiguous float64 copy
    for j in range(flat.size):
        old = flat[j]
        flat[j] = old + eps
        plus = objective()
        flat[j] = old - eps
        minus = objective()
        flat[j] = old
        numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
    return numeric


def _directional(
    x: Tensor,
    grad: np.ndarray,
    objective: Callable[[], float],
    eps: float,
    rng: np.random.Generator,
    directions: int,
) -> tuple[np.ndarray, np.ndarray]:
    """<dy, J v> by central differences and <J^T dy, v> by backward, for random directions v."""
    base = x.data.copy()
    numeric, analytic = [], []
    for _ in range(directions):
        v = rng.standard_normal(base.shape)
        x.data[...] = base + eps * v
        plus = objective()
        x.data[...] = base - eps * v
        minus = objective()
        x.data[...] = base
        numeric.append((plus - minus) / (2 * eps))
        analytic.append(float(np.sum(grad * v)))
    return np.array(numeric), np.array(analytic)


def _failure_message(
    check: _InputCheck, error: np.ndarray, allowed: np.ndarray, failed: np.ndarray
) -> str:
    excess = np.where(np.isnan(error), np.inf, error - allowed)
    worst = np.unravel_index(int(np.argmax(excess)), error.shape)
    a, n = check.analytic[worst], check.numeric[worst]
    if check.directional:
        where = f"in random direction {worst[0]}"
        values = f"<J^T dy, v> from backward is {a:.6g}, <dy, J v> from differences is {n:.6g}"
    else:
        where = f"at element {tuple(int(k) for k in worst)}"
        values = f"backward gives {a:.6g}, central differences give {n:.6g}"
    return (
        f"gradcheck failed for input {check.index} (shape {check.shape}) {where}: {values} "
        f"(|difference| {error[worst]:.2e} > atol + rtol * |numeric| = {allowed[worst]:.2e}); "
        f"{int(failed.sum())} of {failed.size} {'directions' if check.directional else 'elements'}"
        " fail"
    )
