"""Losses: float64 gradient checks (random upstream gradient), expected forwards in NumPy, every
reduction, and the bad inputs that must get a clear error.

`pytest -s` prints the largest relative gradient error of each loss (GRAD_ERRORS).
"""

import numpy as np
import pytest

import scratchnet as sn
import scratchnet.nn.functional as F
from scratchnet import Tensor, nn
from scratchnet.autograd import gradient_error
from tests.gradcheck import ErrorLog

rng = np.random.default_rng(7)
GRAD_ERRORS = ErrorLog()
REDUCTIONS = ["mean", "sum", "none"]

X = rng.standard_normal((4, 5))
TARGET = rng.standard_normal((4, 5))
PROB = rng.uniform(0.05, 0.95, (4, 5))
SOFT = rng.uniform(0.0, 1.0, (4, 5))
WEIGHT = rng.uniform(0.5, 2.0, (5,))
LABELS = np.array([1, -100, 4, 0])  # one ignored
LABELS_3D = rng.integers(0, 5, (2, 3))

# name -> (fn of the differentiable inputs and a reduction, inputs)
CASES = {
    "mse_loss": (lambda r: lambda a, b: F.mse_loss(a, b, reduction=r), [X, TARGET]),
    "l1_loss": (lambda r: lambda a, b: F.l1_loss(a, b, reduction=r), [X, TARGET]),
    "binary_cross_entropy": (
        lambda r: lambda p, t: F.binary_cross_entropy(p, t, weight=WEIGHT, reduction=r),
        [PROB, SOFT],
    ),
    "binary_cross_entropy_with_logits": (
        lambda r: (
            lambda x, t: F.binary_cross_entropy_with_logits(
                x, t, weight=WEIGHT, reduction=r, pos_weight=WEIGHT[::-1].copy()
            )
        ),
        [3 * X, SOFT],
    ),
    "nll_loss": (
        lambda r: lambda x: F.nll_loss(x, LABELS, weight=WEIGHT, reduction=r),
        [X],
    ),
    "cross_entropy (label_smoothing, weight)": (
        lambda r: (
            lambda x: F.cross_entropy(x, LABELS, weight=WEIGHT, reduction=r, label_smoothing=0.2)
        ),
        [X],
    ),
    "cross_entropy (N, C, d)": (
        lambda r: lambda x: F.cross_entropy(x, LABELS_3D, reduction=r, label_smoothing=0.1),
        [rng.standard_normal((2, 5, 3))],
    ),
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CASES)
def test_gradcheck(name, reduction):
    make, arrays = CASES[name]
    err = GRAD_ERRORS.record(name, gradient_error(make(reduction), arrays))
    assert err < 1e-6, f"{name} ({reduction}): relative error {err:.2e}"


def reduce(losses, reduction):
    return {"mean": losses.mean(), "sum": losses.sum(), "none": losses}[reduction]


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_forwards_match_numpy(reduction):
    x, t, p, s = Tensor(X), Tensor(TARGET), Tensor(PROB), Tensor(SOFT)
    expected = {
        "mse": reduce((X - TARGET) ** 2, reduction),
        "l1": reduce(np.abs(X - TARGET), reduction),
        "bce": reduce(-(SOFT * np.log(PROB) + (1 - SOFT) * np.log(1 - PROB)), reduction),
        "bce_logits": reduce(
            -(SOFT * np.log(1 / (1 + np.exp(-X))) + (1 - SOFT) * np.log(1 - 1 / (1 + np.exp(-X)))),
            reduction,
        ),
    }
    got = {
        "mse": F.mse_loss(x, t, reduction),
        "l1": F.l1_loss(x, t, reduction),
        "bce": F.binary_cross_entropy(p, s, reduction=reduction),
        "bce_logits": F.binary_cross_entropy_with_logits(x, s, reduction=reduction),
    }
    for key in expected:
        np.testing.assert_allclose(got[key].data, expected[key], rtol=1e-12, err_msg=key)
        assert got[key].shape == np.shape(expected[key]), key


def test_nll_loss_weight_and_ignore_index_follow_torchs_mean():
    logp = np.log(np.full((4, 5), 0.2)) + X
    losses = -logp[[0, 2, 3], LABELS[[0, 2, 3]]] * WEIGHT[LABELS[[0, 2, 3]]]
    got = F.nll_loss(Tensor(logp), LABELS, weight=WEIGHT)
    # torch divides by the summed weight of the targets that count, not by N
    np.testing.assert_allclose(got.item(), losses.sum() / WEIGHT[LABELS[[0, 2, 3]]].sum())
    none = F.nll_loss(Tensor(logp), LABELS, weight=WEIGHT, reduction="none")
    assert none.data[1] == 0.0 and none.shape == (4,)


def test_cross_entropy_label_smoothing_formula():
    eps, labels = 0.3, np.array([2, 0, 4, 1])
    logp = X - np.log(np.exp(X).sum(1, keepdims=True))
    nll = -logp[np.arange(4), labels]
    expected = ((1 - eps) * nll + eps * (-logp).mean(1)).mean()
    got = F.cross_entropy(Tensor(X), labels, label_smoothing=eps)
    np.testing.assert_allclose(got.item(), expected, rtol=1e-12)


def test_cross_entropy_default_path_is_the_fused_function():
    logits = Tensor(X, requires_grad=True)
    assert F.cross_entropy(logits, np.array([0, 1, 2, 3])).grad_fn.fn.__name__ == "CrossEntropy"
    ignored = F.cross_entropy(logits, LABELS)
    assert ignored.grad_fn.fn.__name__ == "NegativeLogLikelihood"


def test_binary_cross_entropy_clamps_log_at_minus_100():
    p = Tensor(np.array([0.0, 1.0, 0.0]), requires_grad=True)
    loss = F.binary_cross_entropy(p, np.array([1.0, 0.0, 0.0]), reduction="none")
    np.testing.assert_array_equal(loss.data, [100.0, 100.0, 0.0])
    loss.sum().backward()
    assert np.all(np.isfinite(p.grad))


def test_binary_cross_entropy_with_logits_is_stable_for_large_logits():
    x = Tensor(np.array([-800.0, 800.0, 800.0]), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, np.array([0.0, 1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(loss.data, [0.0, 0.0, 800.0])
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, 0.0, 1.0])


def test_float32_in_float32_out_and_0d_edge_cases():
    x32 = Tensor(X.astype(np.float32), requires_grad=True)
    for loss in (
        F.mse_loss(x32, TARGET),
        F.l1_loss(x32, TARGET),
        F.cross_entropy(x32, np.array([0, 1, 2, 3]), label_smoothing=0.1),
        F.binary_cross_entropy_with_logits(x32, SOFT),
    ):
        assert loss.dtype == np.float32 and loss.shape == ()
    zero_d = F.mse_loss(Tensor(np.array(2.0)), Tensor(np.array(0.5)), reduction="none")
    assert zero_d.shape == () and zero_d.item() == 2.25


def test_everything_ignored_gives_nan_as_torch():
    loss = F.cross_entropy(Tensor(X), np.full(4, -100))
    assert np.isnan(loss.item())
    assert F.cross_entropy(Tensor(X), np.full(4, -100), reduction="sum").item() == 0.0


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: F.mse_loss(Tensor(X), TARGET[:2]), ValueError, r"mse_loss: target has shape"),
        (lambda: F.l1_loss(Tensor(X), TARGET, reduction="avg"), ValueError, "reduction must"),
        (lambda: F.binary_cross_entropy(Tensor(X), SOFT), ValueError, r"in \[0, 1\]"),
        (
            lambda: F.binary_cross_entropy_with_logits(Tensor(X), SOFT, pos_weight=np.ones(3)),
            ValueError,
            "pos_weight of shape",
        ),
        (lambda: F.nll_loss(Tensor(X), np.array([0, 1, 5, 0])), ValueError, "label 5"),
        (lambda: F.nll_loss(Tensor(X), LABELS, weight=np.ones(4)), ValueError, "one per class"),
        (lambda: F.nll_loss(Tensor(X[0]), np.array(1)), ValueError, r"\(N, C\)"),
        (lambda: F.cross_entropy(Tensor(X), LABELS_3D), ValueError, "target has shape"),
        (lambda: F.cross_entropy(Tensor(X), LABELS, label_smoothing=1.5), ValueError, "[0, 1]"),
        (lambda: nn.MSELoss(reduction="avg"), ValueError, "MSELoss: reduction"),
    ],
)
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_modules_call_their_functions_and_keep_weights_as_buffers():
    x, labels = Tensor(X), np.array([0, 1, 2, 3])
    cases = [
        (nn.MSELoss(reduction="sum"), F.mse_loss(x, TARGET, reduction="sum"), TARGET),
        (nn.L1Loss(), F.l1_loss(x, TARGET), TARGET),
        (nn.BCELoss(weight=WEIGHT), F.binary_cross_entropy(Tensor(PROB), SOFT, WEIGHT), SOFT),
        (
            nn.BCEWithLogitsLoss(pos_weight=WEIGHT),
            F.binary_cross_entropy_with_logits(x, SOFT, pos_weight=WEIGHT),
            SOFT,
        ),
        (nn.NLLLoss(weight=WEIGHT), F.nll_loss(x, labels, weight=WEIGHT), labels),
        (
            nn.CrossEntropyLoss(label_smoothing=0.1, reduction="none"),
            F.cross_entropy(x, labels, reduction="none", label_smoothing=0.1),
            labels,
        ),
    ]
    for module, expected, target in cases:
        input = Tensor(PROB) if isinstance(module, nn.BCELoss) else x
        np.testing.assert_array_equal(module(input, target).data, expected.data)
    assert list(nn.CrossEntropyLoss(weight=WEIGHT).state_dict()) == ["weight"]
    assert "reduction='sum'" in repr(nn.MSELoss(reduction="sum"))


def test_losses_train_a_tiny_regression():
    sn.manual_seed(0)
    model = nn.Linear(3, 1)
    x = sn.randn(32, 3)
    y = x @ Tensor(np.array([[1.0], [-2.0], [0.5]], dtype=np.float32))
    first = None
    for _ in range(200):
        loss = F.mse_loss(model(x), y)
        first = loss.item() if first is None else first
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= 0.1 * p.grad
    assert loss.item() < 1e-4 * first


teardown_module = GRAD_ERRORS.print_table
