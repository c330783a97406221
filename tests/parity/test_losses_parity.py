"""Every loss against torch's, in each reduction: the loss and the gradient of every input.

float64 to 1e-10 and float32 to 1e-5 (relative), on inputs away from the kinks (l1 at
input == target) and inside BCE's domain. `pytest tests/parity -s` prints the largest error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

import scratchnet.nn.functional as F  # noqa: E402
from tests.parity.compare import DTYPES, check_case, dtype_name  # noqa: E402

REDUCTIONS = ["mean", "sum", "none"]
LABELS = np.array([1, -100, 4, 0, 2, 2])  # one ignored
LABELS_3D = np.array([[0, 4, 2], [1, 1, 3]])
WEIGHT = np.array([0.5, 1.0, 1.5, 2.0, 0.8])


def const(array: np.ndarray, like: object) -> object:
    """array in the dtype of `like`, as torch's own constant when like is a torch tensor."""
    if torch.is_tensor(like):
        return torch.from_numpy(array.astype(np.dtype(str(like.dtype).split(".")[-1])))
    return array.astype(like.dtype)


def labels(array: np.ndarray, like: object) -> object:
    return torch.from_numpy(array) if torch.is_tensor(like) else array


def regression(rng: np.random.Generator) -> list[np.ndarray]:
    x = rng.standard_normal((6, 5))
    return [x, x + rng.uniform(0.1, 1.0, x.shape) * rng.choice([-1.0, 1.0], x.shape)]


def probabilities(rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(0.05, 0.95, (6, 5)), rng.uniform(0.0, 1.0, (6, 5))]


def logits_and_soft_targets(rng: np.random.Generator) -> list[np.ndarray]:
    return [3 * rng.standard_normal((6, 5)), rng.uniform(0.0, 1.0, (6, 5))]


def logits(*shape: int) -> Callable[[np.random.Generator], list[np.ndarray]]:
    return lambda rng: [rng.standard_normal(shape)]


def cases(reduction: str) -> list[tuple]:
    """(op, variant, scratchnet fn, torch fn, inputs), the two fns written once for both."""
    r = reduction

    def both(fn: Callable) -> tuple[Callable, Callable]:
        return (lambda *a: fn(F, *a), lambda *a: fn(TF, *a))

    return [
        ("mse_loss", r, *both(lambda f, x, t: f.mse_loss(x, t, reduction=r)), regression),
        ("l1_loss", r, *both(lambda f, x, t: f.l1_loss(x, t, reduction=r)), regression),
        (
            "binary_cross_entropy",
            r,
            *both(
                lambda f, p, t: f.binary_cross_entropy(p, t, weight=const(WEIGHT, p), reduction=r)
            ),
            probabilities,
        ),
        (
            "binary_cross_entropy_with_logits",
            r,
            *both(
                lambda f, x, t: f.binary_cross_entropy_with_logits(
                    x, t, reduction=r, pos_weight=const(WEIGHT, x)
                )
            ),
            logits_and_soft_targets,
        ),
        (
            "nll_loss",
            f"{r}, weight, ignore_index",
            *both(
                lambda f, x: f.nll_loss(
                    f.log_softmax(x, dim=1), labels(LABELS, x), weight=const(WEIGHT, x), reduction=r
                )
            ),
            logits(6, 5),
        ),
        (
            "cross_entropy",
            f"{r}, label_smoothing",
            *both(
                lambda f, x: f.cross_entropy(
                    x, labels(LABELS, x), reduction=r, label_smoothing=0.15
                )
            ),
            logits(6, 5),
        ),
        (
            "cross_entropy",
            f"{r}, weight, label_smoothing",
            *both(
                lambda f, x: f.cross_entropy(
                    x, labels(LABELS, x), const(WEIGHT, x), reduction=r, label_smoothing=0.3
                )
            ),
            logits(6, 5),
        ),
        (
            "cross_entropy",
            f"{r}, (N, C, d)",
            *both(lambda f, x: f.cross_entropy(x, labels(LABELS_3D, x), reduction=r)),
            logits(2, 5, 3),
        ),
    ]


CASES = [case for r in REDUCTIONS for case in cases(r)]


def case_id(case: tuple) -> str:
    return f"{case[0]}-{case[1]}".replace(" ", "_").replace(",", "")


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_loss_matches_torch(case, dtype, parity_errors):
    check_case(parity_errors, case, dtype, case_id(case))
