"""Finite-difference gradient checks, shared by the tests.

Two checks, both in float64 and both against a random upstream gradient `dy` (never ones: with
`sum` or `mean` upstream, BatchNorm's input gradient is exactly zero whatever the code does):

- `gradcheck`: full central differences, one input element at a time, for small shapes;
- `vjp_check`: a directional check for larger shapes. For a random direction v,
  <dy, (f(x + h v) - f(x - h v)) / 2h>  must equal  <J^T dy, v>  = sum(x.grad * v).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from scratchnet import Tensor


def _loss_and_grads(fn, inputs, dy):
    for t in inputs:
        t.grad = None
    out = fn(*inputs)
    out.backward(dy)
    return [t.grad.copy() for t in inputs]


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(|a|, |b|, tiny): 0 when equal, about 1 when unrelated."""
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-12)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def gradcheck(
    fn: Callable[..., Tensor],
    arrays: Sequence[np.ndarray],
    seed: int = 0,
    eps: float = 1e-6,
) -> float:
    """Compare backward() with central differences for every element of every input.

    Returns the largest relative error over the inputs.
    """
    rng = np.random.default_rng(seed)
    inputs = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out_shape = fn(*inputs).shape
    dy = rng.standard_normal(out_shape)
    analytic = _loss_and_grads(fn, inputs, dy)

    worst = 0.0
    for i, t in enumerate(inputs):
        numeric = np.zeros_like(t.data)
        flat = t.data.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            plus = float(np.sum(fn(*inputs).data * dy))
            flat[j] = old - eps
            minus = float(np.sum(fn(*inputs).data * dy))
            flat[j] = old
            numeric.reshape(-1)[j] = (plus - minus) / (2 * eps)
        worst = max(worst, relative_error(analytic[i], numeric))
    return worst


def vjp_check(
    fn: Callable[..., Tensor],
    arrays: Sequence[np.ndarray],
    seed: int = 0,
    eps: float = 1e-6,
    directions: int = 3,
) -> float:
    """Directional check for larger inputs: <dy, J v> from differences vs <J^T dy, v>.

    Returns the largest relative error over the inputs and directions.
    """
    rng = np.random.default_rng(seed)
    inputs = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    dy = rng.standard_normal(fn(*inputs).shape)
    analytic = _loss_and_grads(fn, inputs, dy)

    worst = 0.0
    for i, t in enumerate(inputs):
        base = t.data.copy()
        for _ in range(directions):
            v = rng.standard_normal(base.shape)
            t.data = base + eps * v
            plus = float(np.sum(fn(*inputs).data * dy))
            t.data = base - eps * v
            minus = float(np.sum(fn(*inputs).data * dy))
            t.data = base
            numeric = (plus - minus) / (2 * eps)
            exact = float(np.sum(analytic[i] * v))
            err = abs(numeric - exact) / max(abs(numeric), abs(exact), 1e-12)
            worst = max(worst, err)
    return worst


class ErrorLog:
    """The largest relative gradient error of each named check in a test module.

    A module sets `GRAD_ERRORS = ErrorLog()`, calls `GRAD_ERRORS.record(name, err)` in its
    checks and `teardown_module = GRAD_ERRORS.print_table`, so that `pytest -s` prints the
    table for the README and the closing notes.
    """

    def __init__(self) -> None:
        self.errors: dict[str, float] = {}

    def record(self, name: str, err: float) -> float:
        self.errors[name] = max(self.errors.get(name, 0.0), err)
        return err

    def print_table(self, module: object = None) -> None:
        if self.errors:
            print("\nlargest relative gradient error per op:")
            for name, err in self.errors.items():
                print(f"  {name:28s} {err:.1e}")
