"""Reductions, joins, indexing and padding against PyTorch: forward and the gradient of every
input, in float64 (relative error <= 1e-10) and float32 (<= 1e-5).

Some cases hold ties on purpose (integer-valued inputs), so that the way max, min, amax and amin
share or route the gradient is compared with torch's, and prod gets zeros.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

import scratchnet.nn.functional as F  # noqa: E402
from scratchnet import Tensor, nn  # noqa: E402
from scratchnet.ops import cat, stack  # noqa: E402
from tests.parity.compare import DTYPES, case_id, check_case, dtype_name  # noqa: E402

Arrays = Callable[[np.random.Generator], list[np.ndarray]]


def normal(*shapes: tuple[int, ...]) -> Arrays:
    return lambda rng: [rng.standard_normal(shape) for shape in shapes]


def with_ties(shape: tuple[int, ...]) -> Arrays:
    """Small integers: many equal maxima and minima in every slice."""
    return lambda rng: [rng.integers(-2, 3, shape).astype(np.float64)]


def with_zeros(shape: tuple[int, ...]) -> Arrays:
    """Normal values with about a third of them set to 0 (slices with one zero and with more)."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
        return [np.where(rng.random(shape) < 0.3, 0.0, x)]

    return make


def same(op: str, variant: str, fn: Callable, make: Arrays) -> tuple:
    """A case whose scratchnet and torch code is the same expression."""
    return (op, variant, fn, fn, make)


INDEX = np.array([[0, 3, 3], [2, 2, 1], [1, 0, 3]])
MASK = np.array([[True, False, False, True, False]])


def t_index() -> torch.Tensor:
    return torch.from_numpy(INDEX)


# (operation, variant, scratchnet function, torch function, inputs)
CASES: list[tuple[str, str, Callable, Callable, Arrays]] = [
    same("sum", "dim, keepdim", lambda a: a.sum(dim=(0, 2), keepdim=True), normal((3, 4, 5))),
    same("sum", "negative dim", lambda a: a.sum(-2), normal((3, 4, 5))),
    same("mean", "dim, keepdim", lambda a: a.mean(dim=-1, keepdim=True), normal((3, 4, 5))),
    same("max", "all", lambda a: a.max(), normal((4, 5))),
    same("max", "all, ties", lambda a: a.max(), with_ties((4, 5))),
    same("max", "dim", lambda a: a.max(dim=1).values, normal((3, 4, 5))),
    same("max", "dim, ties", lambda a: a.max(-1, keepdim=True).values, with_ties((6, 5))),
    same("min", "all, ties", lambda a: a.min(), with_ties((4, 5))),
    same("min", "dim, ties", lambda a: a.min(0).values, with_ties((6, 5))),
    same("amax", "dims", lambda a: a.amax(dim=(0, 2)), normal((3, 4, 5))),
    same("amax", "dim, ties", lambda a: a.amax(1, keepdim=True), with_ties((6, 5))),
    same("amin", "all, ties", lambda a: a.amin(), with_ties((4, 5))),
    same("amin", "dims, ties", lambda a: a.amin(dim=(-1, 0)), with_ties((5, 3, 4))),
    same("var", "all", lambda a: a.var(), normal((4, 5))),
    same("var", "dim, correction=0", lambda a: a.var(dim=1, correction=0), normal((3, 6))),
    same("var", "dims, keepdim", lambda a: a.var(dim=(0, 2), keepdim=True), normal((3, 4, 5))),
    same("std", "all", lambda a: a.std(), normal((4, 5))),
    same("std", "dim, correction=2", lambda a: a.std(dim=-1, correction=2), normal((3, 6))),
    same("prod", "all", lambda a: a.prod(), lambda rng: [rng.uniform(0.5, 1.5, (3, 4))]),
    same("prod", "dim", lambda a: a.prod(1), normal((3, 5, 2))),
    same("prod", "dim, zeros", lambda a: a.prod(-1, keepdim=True), with_zeros((8, 4))),
    same("logsumexp", "dim", lambda a: a.logsumexp(1), normal((4, 6))),
    same("logsumexp", "dims, large", lambda a: (a * 60.0).logsumexp((0, 2)), normal((3, 4, 5))),
    (
        "cat",
        "dim 1",
        lambda a, b, c: cat([a, b, c], dim=1),
        lambda a, b, c: torch.cat([a, b, c], dim=1),
        normal((2, 3, 4), (2, 1, 4), (2, 5, 4)),
    ),
    (
        "cat",
        "same input twice, negative dim",
        lambda a, b: cat([a, b, a], dim=-1),
        lambda a, b: torch.cat([a, b, a], dim=-1),
        normal((3, 2), (3, 4)),
    ),
    (
        "stack",
        "dim 0",
        lambda a, b: stack([a, b]),
        lambda a, b: torch.stack([a, b]),
        normal((3, 4), (3, 4)),
    ),
    (
        "stack",
        "negative dim",
        lambda a, b: stack([a, b, a], dim=-1),
        lambda a, b: torch.stack([a, b, a], dim=-1),
        normal((3, 4), (3, 4)),
    ),
    same(
        "split",
        "size 2, weighted pieces",
        lambda a: sum(p.sum() * (i + 1.0) for i, p in enumerate(a.split(2, dim=1))),
        normal((3, 5)),
    ),
    same("split", "sections", lambda a: a.split([1, 3], dim=-1)[1] * 2.0, normal((3, 4))),
    same(
        "chunk",
        "3 of 7",
        lambda a: sum(p.sum() * (i + 1.0) for i, p in enumerate(a.chunk(3, 0))),
        normal((7, 2)),
    ),
    (
        "gather",
        "dim 1, repeated indices",
        lambda a: a.gather(1, INDEX),
        lambda a: a.gather(1, t_index()),
        normal((3, 4)),
    ),
    (
        "gather",
        "dim 0, index smaller",
        lambda a: a.gather(0, INDEX[:2, :2]),
        lambda a: a.gather(0, t_index()[:2, :2]),
        normal((4, 3)),
    ),
    (
        "masked_fill",
        "number",
        lambda a: a.masked_fill(MASK, -1.5),
        lambda a: a.masked_fill(torch.from_numpy(MASK), -1.5),
        normal((3, 5)),
    ),
    (
        "masked_fill",
        "0-d tensor value",
        lambda a, v: a.masked_fill(MASK, v),
        lambda a, v: a.masked_fill(torch.from_numpy(MASK), v),
        lambda rng: [rng.standard_normal((3, 5)), np.array(0.7)],
    ),
    (
        "pad",
        "constant",
        lambda a: F.pad(a, (1, 2, 0, 3), value=0.5),
        lambda a: TF.pad(a, (1, 2, 0, 3), value=0.5),
        normal((2, 3, 4)),
    ),
    (
        "pad",
        "negative crops",
        lambda a: F.pad(a, (-1, 2, 1, -2)),
        lambda a: TF.pad(a, (-1, 2, 1, -2)),
        normal((2, 4, 5)),
    ),
    (
        "pad",
        "ZeroPad2d",
        lambda a: nn.ZeroPad2d((1, 0, 2, 1))(a),
        lambda a: torch.nn.ZeroPad2d((1, 0, 2, 1))(a),
        normal((1, 2, 3, 3)),
    ),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_op_matches_torch(case, dtype, parity_errors):
    check_case(parity_errors, case, dtype, case_id(case))


# (row, the same call on both sides): indices of the FIRST extreme, on inputs full of ties.
INDEX_CASES = [
    ("argmax", "all", lambda t: t.argmax()),
    ("argmax", "dim 0", lambda t: t.argmax(dim=0)),
    ("argmin", "dim -1, keepdim", lambda t: t.argmin(-1, keepdim=True)),
    ("max indices", "dim 0", lambda t: t.max(0).indices),
    ("min indices", "dim -1", lambda t: t.min(-1).indices),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", INDEX_CASES, ids=case_id)
def test_indices_match_torch_with_ties(case, dtype, parity_errors):
    """The table records the number of indices that differ from torch's (it must be 0)."""
    row, _, fn = case
    x = np.random.default_rng(zlib.crc32(case_id(case).encode())).integers(-2, 3, (6, 5))
    x = x.astype(dtype)
    ours, theirs = fn(Tensor(x)).data, fn(torch.from_numpy(x)).numpy()
    assert ours.dtype == theirs.dtype == np.int64 and ours.shape == theirs.shape
    differ = parity_errors.record(row, dtype_name(dtype), np.sum(ours != theirs))
    assert differ == 0, f"{row}: indices differ from torch's: {ours} vs {theirs}"
