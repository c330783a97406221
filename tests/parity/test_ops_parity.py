"""Every basic operation against its PyTorch twin: forward and the gradient of every input.

Each case runs in float64 (relative error <= 1e-10) and in float32 (<= 1e-5), on random inputs
moved away from kinks (ReLU at 0) and away from ties.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

import scratchnet.nn.functional as F  # noqa: E402
from tests.parity.compare import DTYPES, TOLERANCE, check_close, dtype_name, forward_backward  # noqa: E402

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

# (operation, variant, scratchnet function, torch function, inputs)
CASES: list[tuple[str, str, Callable, Callable, Arrays]] = [
    ("add", "same shape", lambda a, b: a + b, lambda a, b: a + b, normal((3, 4), (3, 4))),
    ("add", "broadcast", lambda a, b: a + b, lambda a, b: a + b, normal((2, 3, 1), (3, 5))),
    ("add", "scalar", lambda a: a + 2.5, lambda a: a + 2.5, normal((4, 3))),
    ("sub", "broadcast", lambda a, b: a - b, lambda a, b: a - b, normal((4, 1), (3,))),
    ("sub", "reflected", lambda a: 1.5 - a, lambda a: 1.5 - a, normal((2, 3))),
    ("mul", "broadcast", lambda a, b: a * b, lambda a, b: a * b, normal((3, 4), (3, 1))),
    ("mul", "same input twice", lambda a: a * a, lambda a: a * a, normal((5, 2))),
    (
        "div",
        "broadcast",
        lambda a, b: a / b,
        lambda a, b: a / b,
        numerator_and_denominator((3, 4), (1, 4)),
    ),
    ("div", "reflected", lambda a: 2.0 / a, lambda a: 2.0 / a, positive((3, 3))),
    ("neg", "", lambda a: -a, lambda a: -a, normal((3, 5))),
    ("exp", "", lambda a: a.exp(), lambda a: a.exp(), normal((4, 5))),
    ("log", "", lambda a: a.log(), lambda a: a.log(), positive((4, 5))),
    ("matmul", "2-D", lambda a, b: a @ b, lambda a, b: a @ b, normal((6, 20), (20, 7))),
    (
        "matmul",
        "batched, broadcast",
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        normal((2, 3, 8), (8, 5)),
    ),
    (
        "matmul",
        "batched both",
        lambda a, b: a @ b,
        lambda a, b: a @ b,
        normal((2, 3, 4), (2, 4, 5)),
    ),
    ("matmul", "vector @ matrix", lambda a, b: a @ b, lambda a, b: a @ b, normal((6,), (6, 3))),
    ("matmul", "matrix @ vector", lambda a, b: a @ b, lambda a, b: a @ b, normal((3, 6), (6,))),
    ("sum", "all", lambda a: a.sum(), lambda a: a.sum(), normal((5, 6))),
    ("sum", "axis", lambda a: a.sum(axis=1), lambda a: a.sum(dim=1), normal((3, 4, 5))),
    (
        "sum",
        "axes, keepdims",
        lambda a: a.sum(axis=(0, 2), keepdims=True),
        lambda a: a.sum(dim=(0, 2), keepdim=True),
        normal((3, 4, 5)),
    ),
    ("sum", "negative axis", lambda a: a.sum(axis=-1), lambda a: a.sum(dim=-1), normal((3, 4))),
    ("mean", "all", lambda a: a.mean(), lambda a: a.mean(), normal((5, 6))),
    ("mean", "axis", lambda a: a.mean(axis=0), lambda a: a.mean(dim=0), normal((4, 3, 2))),
    (
        "mean",
        "axes, keepdims",
        lambda a: a.mean(axis=(1, 2), keepdims=True),
        lambda a: a.mean(dim=(1, 2), keepdim=True),
        normal((3, 4, 5)),
    ),
    (
        "mean",
        "negative axis, keepdims",
        lambda a: a.mean(axis=-1, keepdims=True),
        lambda a: a.mean(dim=-1, keepdim=True),
        normal((2, 7)),
    ),
    (
        "reshape",
        "",
        lambda a: a.reshape(6, 4) * 1.5,
        lambda a: a.reshape(6, 4) * 1.5,
        normal((2, 3, 4)),
    ),
    (
        "reshape",
        "-1",
        lambda a: a.reshape(-1, 2) * 1.5,
        lambda a: a.reshape(-1, 2) * 1.5,
        normal((3, 4)),
    ),
    (
        "flatten",
        "start_dim=1",
        lambda a: a.flatten(1),
        lambda a: a.flatten(1),
        normal((2, 3, 4, 5)),
    ),
    ("flatten", "1..2", lambda a: a.flatten(1, 2), lambda a: a.flatten(1, 2), normal((2, 3, 4, 5))),
    ("flatten", "all", lambda a: a.flatten(), lambda a: a.flatten(), normal((2, 3, 4))),
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


def case_id(case: tuple) -> str:
    op, variant = case[0], case[1]
    return f"{op}-{variant}".rstrip("-").replace(" ", "_")


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_op_matches_torch(case, dtype, parity_errors):
    op, _, ours, theirs, make = case
    rng = np.random.default_rng(zlib.crc32(case_id(case).encode()))
    arrays = [a.astype(dtype) for a in make(rng)]
    errors = forward_backward(ours, theirs, arrays)
    name = dtype_name(dtype)
    check_close(parity_errors, op, name, errors, TOLERANCE[name])
