"""The tests' gradient checks: thin calls of scratchnet.autograd, plus ErrorLog and away_from.

The checks themselves are public (scratchnet/autograd.py): `sn.autograd.gradcheck` passes or
fails with torch's tolerances, `gradient_error` measures. These two names keep the older
tests' calls, which assert and log the largest relative error:

- `gradcheck`: full central differences, one input element at a time, for small shapes;
- `vjp_check`: the directional check for larger shapes, <dy, J v> against <J^T dy, v>.

Both run in float64 against a random upstream gradient, and every float array is an input.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from scratchnet import Tensor
from scratchnet.autograd import gradient_error, relative_error

__all__ = ["ErrorLog", "away_from", "gradcheck", "relative_error", "vjp_check"]


def gradcheck(
    fn: Callable[..., Tensor], arrays: Sequence[np.ndarray], seed: int = 0, eps: float = 1e-6
) -> float:
    """The largest relative error of the full check, over the inputs."""
    return gradient_error(fn, arrays, eps, fast_mode=False, seed=seed)


def vjp_check(
    fn: Callable[..., Tensor],
    arrays: Sequence[np.ndarray],
    seed: int = 0,
    eps: float = 1e-6,
    directions: int = 3,
) -> float:
    """The largest relative error of the directional check, over the inputs and directions."""
    return gradient_error(fn, arrays, eps, fast_mode=True, directions=directions, seed=seed)


def away_from(x: np.ndarray, *kinks: float, gap: float = 0.05) -> np.ndarray:
    """x with every value within gap of a kink pushed 2 * gap away from it (no step crosses it)."""
    x = np.array(x, dtype=np.float64)
    for kink in kinks:
        near = np.abs(x - kink) < gap
        x[near] = kink + 2 * gap * np.where(x[near] >= kink, 1, -1)
    return x


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
