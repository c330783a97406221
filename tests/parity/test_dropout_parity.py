"""Dropout against PyTorch. Random masks cannot match across frameworks, so the comparisons use
p=0, eval mode, or a mask injected into scratchnet and applied by hand to torch; the random
masks themselves are checked statistically (keep rate and scaling) in both frameworks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

import scratchnet.nn.functional as F  # noqa: E402
from scratchnet import Tensor, nn  # noqa: E402
from tests.parity.compare import DTYPES, TOLERANCE, check_close, dtype_name, forward_backward  # noqa: E402


def dropout_pair(variant: str, keep: np.ndarray, dtype: type) -> tuple[Callable, Callable]:
    """(scratchnet function, torch function) computing the same dropout."""
    if variant == "p=0 in training":
        return (
            lambda a: F.dropout(a, p=0.0, training=True),
            lambda a: TF.dropout(a, p=0.0, training=True),
        )
    if variant == "eval mode":
        return (
            lambda a: F.dropout(a, p=0.5, training=False),
            lambda a: TF.dropout(a, p=0.5, training=False),
        )
    p = float(variant.split("=")[1])
    return (
        lambda a: F.dropout(a, p=p, training=True, mask=keep >= p),
        lambda a: a * torch.from_numpy((keep >= p).astype(dtype)) / (1 - p),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize(
    "variant", ["p=0 in training", "eval mode", "injected mask p=0.3", "injected mask p=0.75"]
)
def test_dropout_matches_torch(variant, dtype, parity_errors):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 32)).astype(dtype)
    ours, theirs = dropout_pair(variant, rng.random(x.shape), dtype)
    errors = forward_backward(ours, theirs, [x])
    name = dtype_name(dtype)
    check_close(parity_errors, "dropout", name, errors, TOLERANCE[name])


def test_dropout_module_in_eval_is_the_identity_in_both():
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    ours, theirs = nn.Dropout(0.5), torch.nn.Dropout(0.5)
    ours.eval()
    theirs.eval()
    np.testing.assert_array_equal(ours(Tensor(x)).data, x)
    np.testing.assert_array_equal(theirs(torch.from_numpy(x)).numpy(), x)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_keep_rate_and_scaling_match_torch(p, parity_errors):
    """Both keep a fraction 1 - p (within 5 standard deviations) and scale kept units by
    1 / (1 - p), so that E[y] = x; the gradient uses the same mask and scale."""
    n = 1_000_000
    x = np.full((1000, 1000), 2.0, dtype=np.float32)
    sigma = np.sqrt(p * (1 - p) / n)

    ours_x = Tensor(x, requires_grad=True)
    ours_y = F.dropout(ours_x, p=p, training=True, rng=np.random.default_rng(0))
    ours_y.backward(np.ones_like(x))
    torch.manual_seed(0)
    theirs_x = torch.tensor(x, requires_grad=True)
    theirs_y = TF.dropout(theirs_x, p=p, training=True)
    theirs_y.backward(torch.ones_like(theirs_x))

    outputs = {
        "scratchnet": (ours_y.data, ours_x.grad),
        "torch": (theirs_y.detach().numpy(), theirs_x.grad.numpy()),
    }
    rates = {}
    for framework, (y, dx) in outputs.items():
        kept = y != 0
        rates[framework] = kept.mean()
        assert abs(kept.mean() - (1 - p)) < 5 * sigma, f"{framework}: keep rate {kept.mean()}"
        np.testing.assert_allclose(y[kept], 2.0 / (1 - p), rtol=1e-6, err_msg=framework)
        assert abs(y.mean() - 2.0) < 5 * 2.0 / (1 - p) * sigma, f"{framework}: E[y] != x"
        np.testing.assert_array_equal(dx, y / 2.0, err_msg=f"{framework}: gradient mask")
    parity_errors.note(
        f"dropout p={p}: keep rate scratchnet {rates['scratchnet']:.5f}, "
        f"torch {rates['torch']:.5f} (expected {1 - p:.5f} +- {sigma:.5f})"
    )
