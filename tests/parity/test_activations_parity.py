"""Elementwise ops and activations against torch: forward and the gradient of every input.

Each case runs in float64 (relative error <= 1e-10) and in float32 (<= 1e-5). Most inputs are
random and away from the kinks; the "ties" and "kinks" cases put values exactly on them
(maximum of equal inputs, clamp at its bounds, relu6 at 0 and 6, ...), so that the subgradient
torch picks there is compared too. `pytest tests/parity -s` prints the largest error per op.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

import scratchnet.nn.functional as F  # noqa: E402
from scratchnet import Tensor, ops  # noqa: E402
from tests.parity.compare import DTYPES, case_id, check_case, dtype_name  # noqa: E402

Arrays = Callable[[np.random.Generator], list[np.ndarray]]
CONDITION = np.array([[True, False, True, True, False]])


def normal(*shapes: tuple[int, ...], scale: float = 1.0) -> Arrays:
    return lambda rng: [scale * rng.standard_normal(shape) for shape in shapes]


def positive(*shapes: tuple[int, ...]) -> Arrays:
    return lambda rng: [rng.uniform(0.5, 3.0, shape) for shape in shapes]


def away_from(*kinks: float, scale: float = 3.0, shape: tuple[int, ...] = (6, 7)) -> Arrays:
    """Values on both sides of each kink, none closer than 0.05 to one."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        x = scale * rng.standard_normal(shape)
        for kink in kinks:
            near = np.abs(x - kink) < 0.05
            x[near] = kink + 0.1 * np.where(x[near] >= kink, 1, -1)
        return [x]

    return make


def on(*values: float, shape: tuple[int, ...] = (5, 6)) -> Arrays:
    """Random values with about half of them exactly on the given kinks."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        x = 4 * rng.standard_normal(shape)
        exact = rng.random(shape) < 0.5
        x[exact] = rng.choice(values, shape)[exact]
        return [x]

    return make


def ties(shape: tuple[int, ...]) -> Arrays:
    """Two inputs equal in about half of their elements."""

    def make(rng: np.random.Generator) -> list[np.ndarray]:
        a, b = rng.standard_normal(shape), rng.standard_normal(shape)
        equal = rng.random(shape) < 0.5
        b[equal] = a[equal]
        return [a, b]

    return make


def same(op: str, variant: str, fn: Callable, make: Arrays) -> tuple:
    """A case whose scratchnet and torch code is the same expression."""
    return (op, variant, fn, fn, make)


def functional(op: str, variant: str, make: Arrays, name: str = "", **kwargs) -> tuple:
    """F.<name>(x, **kwargs) in scratchnet against torch.nn.functional.<name>(x, **kwargs)."""
    ours, theirs = getattr(F, name or op), getattr(TF, name or op)
    return (op, variant, lambda a: ours(a, **kwargs), lambda a: theirs(a, **kwargs), make)


def where_condition(like: object) -> object:
    return torch.from_numpy(CONDITION) if torch.is_tensor(like) else CONDITION


def maximum(a, b):
    return torch.maximum(a, b) if torch.is_tensor(a) else ops.maximum(a, b)


def minimum(a, b):
    return torch.minimum(a, b) if torch.is_tensor(a) else ops.minimum(a, b)


def where(a, b):
    return (torch.where if torch.is_tensor(a) else ops.where)(where_condition(a), a, b)


# (operation, variant, scratchnet function, torch function, inputs)
CASES: list[tuple[str, str, Callable, Callable, Arrays]] = [
    same("pow", "x ** 2", lambda a: a**2, normal((4, 5))),
    same("pow", "x ** 3", lambda a: a**3, normal((4, 5))),
    same("pow", "x ** -1.5", lambda a: a**-1.5, positive((4, 5))),
    same("pow", "x ** 0", lambda a: a**0, normal((4, 5))),
    same("pow", "method", lambda a: a.pow(0.5), positive((3, 4))),
    same("pow", "2.5 ** x", lambda a: 2.5**a, normal((4, 5))),
    same("pow", "0.5 ** x", lambda a: 0.5**a, normal((4, 5))),
    same(
        "pow",
        "tensor ** tensor, broadcast",
        lambda a, b: a**b,
        lambda rng: [
            rng.uniform(0.5, 2.0, (3, 4)),
            rng.standard_normal((4,)),
        ],
    ),
    same("sqrt", "", lambda a: a.sqrt(), positive((4, 5))),
    same("abs", "", lambda a: a.abs(), away_from(0.0)),
    same("abs", "kinks", lambda a: abs(a), on(0.0)),
    same("sign", "", lambda a: a.sign() * a, on(0.0)),
    same("clamp", "both", lambda a: a.clamp(-0.5, 0.7), away_from(-0.5, 0.7, scale=1.0)),
    same("clamp", "min only", lambda a: a.clamp(min=0.2), away_from(0.2, scale=1.0)),
    same("clamp", "max only, clip", lambda a: a.clip(max=-0.1), away_from(-0.1, scale=1.0)),
    same("clamp", "kinks", lambda a: a.clamp(-1.0, 2.0), on(-1.0, 2.0)),
    same("clamp", "min > max", lambda a: a.clamp(1.0, -1.0), normal((4, 5))),
    same(
        "clamp",
        "tensor bounds",
        lambda x, lo, hi: x.clamp(lo, hi),
        lambda rng: [
            rng.uniform(-3, 3, (4, 5)),
            rng.uniform(-2, 0.5, (5,)),
            rng.uniform(-0.5, 2, (4, 1)),
        ],
    ),
    same(
        "clamp",
        "tensor bounds, kinks",
        lambda x, lo, hi: x.clamp(lo, hi),
        lambda rng: [
            rng.choice([-1.0, 0.0, 1.0, 2.0], (4, 5)),
            rng.choice([-1.0, 0.0, 1.0], (4, 5)),
            rng.choice([0.0, 1.0, 2.0], (4, 5)),
        ],
    ),
    same("maximum", "broadcast", maximum, normal((3, 5), (5,))),
    same("maximum", "ties", maximum, ties((4, 5))),
    same("minimum", "broadcast", minimum, normal((3, 1), (4,))),
    same("minimum", "ties", minimum, ties((4, 5))),
    same("where", "broadcast", where, normal((3, 5), (3, 1))),
    same("where", "scalar other", lambda a: where(a, 0.5), normal((2, 5))),
    same("sigmoid", "", lambda a: a.sigmoid(), normal((6, 7), scale=4.0)),
    same("sigmoid", "large |x|", lambda a: a.sigmoid(), normal((6, 7), scale=40.0)),
    same("tanh", "", lambda a: a.tanh(), normal((6, 7), scale=2.0)),
    same("tanh", "large |x|", lambda a: a.tanh(), normal((6, 7), scale=40.0)),
    functional("softplus", "", normal((6, 7), scale=4.0)),
    functional("softplus", "beta, threshold", away_from(1.5), beta=2.0, threshold=3.0),
    functional("softplus", "large |x|", normal((6, 7), scale=40.0)),
    functional("leaky_relu", "", away_from(0.0)),
    functional("leaky_relu", "slope 0.2, kinks", on(0.0), negative_slope=0.2),
    functional("elu", "", away_from(0.0)),
    functional("elu", "alpha 1.7, kinks", on(0.0), alpha=1.7),
    functional("gelu", "", normal((6, 7), scale=3.0)),
    functional("gelu", "large |x|", normal((6, 7), scale=40.0)),
    functional("gelu, tanh", "", normal((6, 7), scale=3.0), name="gelu", approximate="tanh"),
    functional("relu6", "", away_from(0.0, 6.0, scale=5.0)),
    functional("relu6", "kinks", on(0.0, 6.0)),
    functional("hardswish", "", away_from(-3.0, 3.0)),
    functional("hardswish", "kinks", on(-3.0, 0.0, 3.0)),
    functional("silu", "", normal((6, 7), scale=4.0)),
    functional("mish", "", normal((6, 7), scale=4.0)),
    functional("mish", "large |x|", normal((6, 7), scale=40.0)),
    functional("relu", "kinks", on(0.0)),
    functional("softmax", "dim 1", normal((5, 8)), dim=1),
    functional("softmax", "dim 0 of 3", normal((3, 4, 2)), dim=0),
    functional("softmax", "large logits", normal((4, 10), scale=50.0), dim=-1),
    same("softmax", "method, negative dim", lambda a: a.softmax(-2), normal((2, 5, 3))),
    same("log_softmax", "method, dim 0", lambda a: a.log_softmax(0), normal((4, 3))),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_op_matches_torch(case, dtype, parity_errors):
    check_case(parity_errors, case, dtype, case_id(case))


def both(fn: Callable, *arrays: list[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """fn's output and input gradients (upstream ones) in scratchnet and in torch, float64."""
    ours = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    pairs = []
    for inputs, to_numpy in ((ours, lambda t: t.data), (theirs, lambda t: t.detach().numpy())):
        y = fn(*inputs)
        y.backward(torch.ones_like(y) if torch.is_tensor(y) else np.ones(y.shape))
        pairs.append([to_numpy(y), *(to_numpy(t.grad) for t in inputs)])
    return list(zip(*pairs))


X = [-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]
SPECIAL = {
    "sqrt at 0 and below": (lambda a: a.sqrt(), X),
    "x ** 0.5 at 0 and below": (lambda a: a**0.5, X),
    "x ** 0 at 0": (lambda a: a**0, X),
    "x ** -1 at 0": (lambda a: a**-1, X),
    "0 ** x": (lambda a: 0**a, X),
    "(-2) ** x": (lambda a: (-2.0) ** a, X),
    "tensor ** tensor at 0 and below": (lambda a, b: a**b, X, [0.0, 2.0, 0.0, -1.0, 0.5, 2.0]),
    "log at 0 and below": (lambda a: a.log(), X),
}


@pytest.mark.parametrize("name", list(SPECIAL))
def test_special_values_match_torch(name):
    """inf and nan where torch gives them, bit for bit (nan == nan here), float64."""
    fn, *arrays = SPECIAL[name]
    for ours, theirs in both(fn, *arrays):
        np.testing.assert_allclose(ours, theirs, rtol=1e-15, atol=0, equal_nan=True)


MODULES = [
    "Sigmoid",
    "Tanh",
    "Softplus",
    "LeakyReLU",
    "ELU",
    "GELU",
    "ReLU6",
    "Hardswish",
    "SiLU",
    "Mish",
    "ReLU",
]


@pytest.mark.parametrize("name", MODULES)
def test_module_defaults_are_torchs(name):
    from scratchnet import nn

    assert repr(getattr(nn, name)()) == repr(getattr(torch.nn, name)())
