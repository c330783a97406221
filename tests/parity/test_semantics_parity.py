"""Shape ops, dims, conversions and comparisons against PyTorch: forward and the gradient of
every input, in float64 (relative error <= 1e-10) and float32 (<= 1e-5).

These ops move numbers without arithmetic, so both sides should agree exactly; what the cases
check is the meaning of the arguments (transpose's two dims, negative dims, expand's -1,
repeat's new leading dims, 0-d inputs), where NumPy's and torch's spellings differ.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import scratchnet as sn  # noqa: E402
from scratchnet import Tensor  # noqa: E402
from tests.parity.compare import DTYPES, case_id, check_case, dtype_name  # noqa: E402

Arrays = Callable[[np.random.Generator], list[np.ndarray]]


def normal(*shapes: tuple[int, ...]) -> Arrays:
    return lambda rng: [rng.standard_normal(shape) for shape in shapes]


def same(op: str, variant: str, fn: Callable, make: Arrays) -> tuple:
    """A case whose scratchnet and torch code is the same expression.

    Each multiplies by its input once more, so that the gradient depends on where every
    element went (a pure move would send dy back unchanged whatever the permutation).
    """
    return (op, variant, fn, fn, make)


# (operation, variant, scratchnet function, torch function, inputs)
CASES: list[tuple[str, str, Callable, Callable, Arrays]] = [
    same("view", "-1", lambda a: a.view(-1, 4) * 1.5, normal((2, 3, 4))),
    same("view", "0-d", lambda a: a.view(1, 1) * a, normal(())),
    same("unsqueeze", "0", lambda a: a.unsqueeze(0) * 2.0, normal((3, 4))),
    same("unsqueeze", "-1", lambda a: a.unsqueeze(-1) * 2.0, normal((3, 4))),
    same("unsqueeze", "0-d", lambda a: a.unsqueeze(-1) * 2.0, normal(())),
    same("squeeze", "all", lambda a: a.squeeze() * 2.0, normal((3, 1, 4, 1))),
    same("squeeze", "-1", lambda a: a.squeeze(-1) * 2.0, normal((3, 1, 4, 1))),
    same("squeeze", "not size 1", lambda a: a.squeeze(0) * 2.0, normal((3, 1, 4))),
    same("transpose", "2-D (0, 1)", lambda a: a.transpose(0, 1) @ a, normal((4, 3))),
    same(
        "transpose",
        "3-D (-1, 0)",
        lambda a, b: a.transpose(-1, 0) * b,
        normal((2, 3, 4), (4, 3, 2)),
    ),
    same(
        "transpose",
        "3-D (1, -1)",
        lambda a, b: a.transpose(1, -1) * b,
        normal((2, 3, 4), (2, 4, 3)),
    ),
    same("permute", "3-D", lambda a, b: a.permute(2, 0, 1) * b, normal((2, 3, 4), (4, 2, 3))),
    same(
        "permute",
        "negative dims",
        lambda a, b: a.permute(-1, -3, -2) * b,
        normal((2, 3, 4), (4, 2, 3)),
    ),
    same("t", "2-D", lambda a: a.t() @ a, normal((4, 3))),
    same("t", "1-D", lambda a: a.t() * a, normal((5,))),
    same("T", "2-D", lambda a: a.T @ a, normal((3, 5))),
    same("mT", "batch of matrices", lambda a: a.mT @ a, normal((2, 4, 3))),
    same(
        "expand", "-1 and a new dim", lambda a, b: a.expand(2, -1, 4) * b, normal((3, 1), (2, 3, 4))
    ),
    same("expand", "0-d", lambda a, b: a.expand(3, 2) * b, normal((), (3, 2))),
    same("expand", "expand_as", lambda a, b: a.expand_as(b) * b, normal((1, 4), (3, 4))),
    same("repeat", "same dims", lambda a, b: a.repeat(2, 3) * b, normal((2, 3), (4, 9))),
    same(
        "repeat", "new leading dim", lambda a, b: a.repeat(2, 1, 2) * b, normal((3, 2), (2, 3, 4))
    ),
    same("flatten", "negative dims", lambda a: a.flatten(-3, -2) * 2.0, normal((2, 3, 4, 5))),
    same("flatten", "0-d", lambda a: a.flatten() * a, normal(())),
    same("clone", "", lambda a: a.clone() * a, normal((3, 4))),
    same("clone", "0-d", lambda a: a.clone() * a, normal(())),
    same("index", "negative and slices", lambda a: a[-1, ::2] * 2.0, normal((3, 4))),
    same("index", "repeated rows", lambda a: a[[0, 2, 0]] * 2.0, normal((3, 4))),
    (
        "to",
        "float64",
        lambda a: a.to(sn.float64) * a.double(),
        lambda a: a.to(torch.float64) * a.double(),
        normal((3, 4)),
    ),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_op_matches_torch(case, dtype, parity_errors):
    check_case(parity_errors, case, dtype, case_id(case))


COMPARISONS = ["eq", "ne", "lt", "le", "gt", "ge"]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("name", COMPARISONS)
def test_comparisons_match_torch(name, dtype, parity_errors):
    """Bool results of the same shape and the same elements, with ties and broadcasting. The
    table records the number of elements that differ from torch's (it must be 0)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    a = rng.integers(-2, 3, (4, 5)).astype(dtype)
    b = rng.integers(-2, 3, (5,)).astype(dtype)
    pairs = [
        (
            getattr(Tensor(a), name)(Tensor(b)),
            getattr(torch.from_numpy(a), name)(torch.from_numpy(b)),
        ),
        (getattr(Tensor(a), name)(0.5), getattr(torch.from_numpy(a), name)(0.5)),
        (getattr(sn, name)(Tensor(a[0, 0]), 1.0), getattr(torch, name)(torch.tensor(a[0, 0]), 1.0)),
    ]
    differ = 0
    for ours, theirs in pairs:
        theirs = theirs.numpy()
        assert ours.dtype == theirs.dtype == np.bool_ and ours.shape == theirs.shape
        assert not ours.requires_grad
        differ += int(np.sum(ours.data != theirs))
    parity_errors.record("comparisons", dtype_name(dtype), differ)
    assert differ == 0, f"{name}: {differ} elements differ from torch's"
