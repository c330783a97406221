"""Every basic operation against its PyTorch twin: forward and the gradient of every input.

Each case runs in float64 (relative error <= 1e-10) and in float32 (<= 1e-5), on random inputs
moved away from kinks (ReLU at 0) and away from ties.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

import scratchnet.nn.functional as F  # noqa: E402
from tests.parity.compare import DTYPES, case_id, check_case, dtype_name  # noqa: E402

Arrays = Callable[[np.random.Generator], list[np.ndarray]]


def normal(*shapes: tuple[int, ...]) -> Arrays:
    return lambda rng: [rng.standard_normal(shape) for shape in shapes]


def positive(shape: tuple[int, ...]) -> Arrays:
    return lambda rng: [rng.uniform(0.5, 3.0, shape)]


def away_from_zero(shape: tuple[int, ...]) -> Arrays:
    """|x| >= 0.1, so that no value sits at ReLU's kink."""
    return lambda rng: [rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)]


def numerator_and_denominator(a: tuple[int, ...], b: tuple[int, ...]) -> Arrays:
    return lambda rng: [
        rng.standard_normal(a),
        rng.uniform(0.5, 2.0, b) * rng.choice([-1.0, 1.0], b),
    ]


TARGET = np.array([3, 0, 9, 9, 1, 4, 7, 2, 5, 6, 8, 0, 1, 3, 3, 2])


def same(op: str, variant: str, fn: Callable, make: Arrays) -> tuple:
    """A case whose scratchnet and torch code is the same expression."""
    return (op, variant, fn, fn, make)


def reduction(
    op: str,
    variant: str,
    make: Arrays,
    axis: int | tuple[int, ...] | None = None,
    keepdims: bool = False,
) -> tuple:
    """a.sum / a.mean in NumPy's words (axis, keepdims) against torch's (dim, keepdim)."""

    def ours(a):
        return getattr(a, op)(axis=axis, keepdims=keepdims)

    def theirs(a):
        if axis is None:
            return getattr(a, op)()
        return getattr(a, op)(dim=axis, keepdim=keepdims)

    return (op, variant, ours, theirs, make)


# (operation, variant, scratchnet function, torch function, inputs)
CASES: list[tuple[str, str, Callable, Callable, Arrays]] = [
    same("add", "same shape", lambda a, b: a + b, normal((3, 4), (3, 4))),
    same("add", "broadcast", lambda a, b: a + b, normal((2, 3, 1), (3, 5))),
    same("add", "scalar", lambda a: a + 2.5, normal((4, 3))),
    same("sub", "broadcast", lambda a, b: a - b, normal((4, 1), (3,))),
    same("sub", "reflected", lambda a: 1.5 - a, normal((2, 3))),
    same("mul", "broadcast", lambda a, b: a * b, normal((3, 4), (3, 1))),
    same("mul", "same input twice", lambda a: a * a, normal((5, 2))),
    same("div", "broadcast", lambda a, b: a / b, numerator_and_denominator((3, 4), (1, 4))),
    same("div", "reflected", lambda a: 2.0 / a, positive((3, 3))),
    same("neg", "", lambda a: -a, normal((3, 5))),
    same("exp", "", lambda a: a.exp(), normal((4, 5))),
    same("log", "", lambda a: a.log(), positive((4, 5))),
    same("matmul", "2-D", lambda a, b: a @ b, normal((6, 20), (20, 7))),
    same("matmul", "batched, broadcast", lambda a, b: a @ b, normal((2, 3, 8), (8, 5))),
    same("matmul", "batched both", lambda a, b: a @ b, normal((2, 3, 4), (2, 4, 5))),
    same("matmul", "vector @ matrix", lambda a, b: a @ b, normal((6,), (6, 3))),
    same("matmul", "matrix @ vector", lambda a, b: a @ b, normal((3, 6), (6,))),
    reduction("sum", "all", normal((5, 6))),
    reduction("sum", "axis", normal((3, 4, 5)), axis=1),
    reduction("sum", "axes, keepdims", normal((3, 4, 5)), axis=(0, 2), keepdims=True),
    reduction("sum", "negative axis", normal((3, 4)), axis=-1),
    reduction("mean", "all", normal((5, 6))),
    reduction("mean", "axis", normal((4, 3, 2)), axis=0),
    reduction("mean", "axes, keepdims", normal((3, 4, 5)), axis=(1, 2), keepdims=True),
    reduction("mean", "negative axis, keepdims", normal((2, 7)), axis=-1, keepdims=True),
    same("reshape", "", lambda a: a.reshape(6, 4) * 1.5, normal((2, 3, 4))),
    same("reshape", "-1", lambda a: a.reshape(-1, 2) * 1.5, normal((3, 4))),
    same("flatten", "start_dim=1", lambda a: a.flatten(1), normal((2, 3, 4, 5))),
    same("flatten", "1..2", lambda a: a.flatten(1, 2), normal((2, 3, 4, 5))),
    same("flatten", "all", lambda a: a.flatten(), normal((2, 3, 4))),
    ("relu", "", F.relu, TF.relu, away_from_zero((6, 7))),
    (
        "log_softmax",
        "last dim",
        lambda a: F.log_softmax(a, dim=-1),
        lambda a: TF.log_softmax(a, dim=-1),
        normal((8, 10)),
    ),
    (
        "log_softmax",
        "dim 1 of 3",
        lambda a: F.log_softmax(a, dim=1),
        lambda a: TF.log_softmax(a, dim=1),
        normal((2, 5, 3)),
    ),
    (
        "log_softmax",
        "large logits",
        lambda a: F.log_softmax(a * 50.0, dim=1),
        lambda a: TF.log_softmax(a * 50.0, dim=1),
        normal((4, 10)),
    ),
    (
        "cross_entropy",
        "",
        lambda a: F.cross_entropy(a, TARGET),
        lambda a: TF.cross_entropy(a, torch.from_numpy(TARGET)),
        normal((16, 10)),
    ),
    (
        "cross_entropy",
        "large logits",
        lambda a: F.cross_entropy(a * 40.0, TARGET),
        lambda a: TF.cross_entropy(a * 40.0, torch.from_numpy(TARGET)),
        normal((16, 10)),
    ),
    ("linear", "bias", F.linear, TF.linear, normal((8, 20), (5, 20), (5,))),
    ("linear", "no bias", F.linear, TF.linear, normal((8, 20), (5, 20))),
    ("linear", "1-D input", F.linear, TF.linear, normal((20,), (5, 20), (5,))),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_op_matches_torch(case, dtype, parity_errors):
    check_case(parity_errors, case, dtype, case_id(case))
