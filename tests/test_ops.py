"""Gradient checks (float64, random upstream gradient) and expected forwards for the basic ops.

The largest relative error of each check is recorded in GRAD_ERRORS and printed at the end of
the session with `pytest -s`, for the README and the closing notes.
"""

import numpy as np
import pytest

import scratchnet.nn.functional as F
from scratchnet import Tensor
from tests.gradcheck import ErrorLog, gradcheck, vjp_check

rng = np.random.default_rng(42)


def away_from_zero(shape, low=0.1):
    """Values with |x| >= low, so that ReLU's kink at 0 is never inside a difference step."""
    x = rng.uniform(low, 1.0, shape)
    return x * rng.choice([-1.0, 1.0], shape)


CASES = {
    "add": (lambda a, b: a + b, [rng.standard_normal((3, 4)), rng.standard_normal((4,))]),
    "sub": (lambda a, b: a - b, [rng.standard_normal((2, 3, 1)), rng.standard_normal((3, 5))]),
    "mul": (lambda a, b: a * b, [rng.standard_normal((3, 4)), rng.standard_normal((3, 1))]),
    "div": (lambda a, b: a / b, [rng.standard_normal((3, 4)), rng.uniform(0.5, 2, (1, 4))]),
    "neg": (lambda a: -a, [rng.standard_normal((5,))]),
    "exp": (lambda a: a.exp(), [rng.standard_normal((3, 3))]),
    "log": (lambda a: a.log(), [rng.uniform(0.5, 3, (3, 3))]),
    "matmul": (lambda a, b: a @ b, [rng.standard_normal((3, 5)), rng.standard_normal((5, 2))]),
    "matmul_batched": (
        lambda a, b: a @ b,
        [rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2))],
    ),
    "matmul_vector": (lambda a, b: a @ b, [rng.standard_normal(4), rng.standard_normal((4, 3))]),
    "sum": (lambda a: a.sum(), [rng.standard_normal((3, 4))]),
    "sum_axis": (lambda a: a.sum(axis=1), [rng.standard_normal((3, 4, 2))]),
    "sum_keepdims": (lambda a: a.sum(axis=(0, 2), keepdims=True), [rng.standard_normal((3, 4, 2))]),
    "mean": (lambda a: a.mean(), [rng.standard_normal((3, 4))]),
    "mean_axis": (lambda a: a.mean(axis=-1, keepdims=True), [rng.standard_normal((2, 5))]),
    "reshape": (lambda a: a.reshape(6, 2) * 1.5, [rng.standard_normal((3, 4))]),
    "flatten": (lambda a: a.flatten(1), [rng.standard_normal((2, 3, 2, 2))]),
    "transpose": (lambda a: a.T, [rng.standard_normal((3, 4))]),
    "index": (lambda a: a[np.array([0, 2, 0])], [rng.standard_normal((3, 4))]),
    "relu": (F.relu, [away_from_zero((4, 5))]),
    "log_softmax": (lambda a: F.log_softmax(a, dim=1), [rng.standard_normal((4, 6))]),
    "log_softmax_dim0": (lambda a: F.log_softmax(a, dim=0), [rng.standard_normal((4, 3))]),
    "cross_entropy": (
        lambda a: F.cross_entropy(a, np.array([1, 0, 4, 4, 2])),
        [rng.standard_normal((5, 5))],
    ),
    "linear": (
        F.linear,
        [rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)],
    ),
    "linear_no_bias": (F.linear, [rng.standard_normal((1, 3)), rng.standard_normal((5, 3))]),
    "dropout_with_mask": (
        lambda a: F.dropout(a, p=0.4, training=True, mask=np.arange(12).reshape(3, 4) % 3 > 0),
        [rng.standard_normal((3, 4))],
    ),
}

GRAD_ERRORS = ErrorLog()


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck(name):
    fn, arrays = CASES[name]
    err = gradcheck(fn, arrays)
    GRAD_ERRORS.record(name, err)
    assert err < 1e-6, f"{name}: relative error {err:.2e}"


def test_vjp_check_larger_linear():
    arrays = [
        rng.standard_normal((64, 128)),
        rng.standard_normal((10, 128)),
        rng.standard_normal(10),
    ]
    assert vjp_check(F.linear, arrays) < 1e-6


def test_cross_entropy_forward_matches_numpy():
    logits = rng.standard_normal((6, 10))
    target = rng.integers(0, 10, 6)
    expected = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(6), target])
    got = F.cross_entropy(Tensor(logits), target).item()
    assert abs(got - expected) < 1e-12


def test_cross_entropy_accepts_tensor_labels_and_is_stable():
    logits = Tensor(np.array([[1000.0, 0.0], [0.0, 1000.0]]))
    loss = F.cross_entropy(logits, Tensor(np.array([0, 1])))
    assert np.isfinite(loss.item()) and loss.item() < 1e-6


@pytest.mark.parametrize(
    "target, error, match",
    [
        (np.array([0, 10]), ValueError, "out of range"),
        (np.array([-1, 0]), ValueError, "out of range"),
        (np.array([0.0, 1.0]), TypeError, "integer"),
        (np.array([0, 1, 2]), ValueError, "shape"),
    ],
)
def test_cross_entropy_bad_labels(target, error, match):
    with pytest.raises(error, match=match):
        F.cross_entropy(Tensor(np.zeros((2, 10))), target)


def test_log_softmax_forward():
    x = rng.standard_normal((3, 5))
    expected = x - np.log(np.exp(x).sum(1, keepdims=True))
    np.testing.assert_allclose(F.log_softmax(Tensor(x), dim=1).data, expected, atol=1e-12)


def test_linear_forward_and_errors():
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((2, 3)), rng.standard_normal(2)
    np.testing.assert_allclose(F.linear(Tensor(x), Tensor(w), Tensor(b)).data, x @ w.T + b)
    with pytest.raises(ValueError, match="features"):
        F.linear(Tensor(np.ones((4, 5))), Tensor(w))


def test_dropout_training_and_eval():
    x = Tensor(np.ones((200, 500), dtype=np.float32))
    y = F.dropout(x, p=0.3, training=True, rng=np.random.default_rng(0)).data
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    assert F.dropout(x, p=0.3, training=False) is x
    with pytest.raises(ValueError):
        F.dropout(x, p=1.5)


def test_float32_ops_stay_close_to_float64():
    x64 = rng.standard_normal((8, 10))
    x32 = Tensor(x64.astype(np.float32), requires_grad=True)
    t = np.arange(8) % 10
    loss = F.cross_entropy(x32, t)
    loss.backward()
    ref = Tensor(x64, requires_grad=True)
    F.cross_entropy(ref, t).backward()
    np.testing.assert_allclose(x32.grad, ref.grad, rtol=1e-5, atol=1e-7)


teardown_module = GRAD_ERRORS.print_table
