"""Gradient checks (float64, random upstream gradient) and expected forwards for the basic ops.

The largest relative error of each check is recorded in GRAD_ERRORS and printed at the end of
the session with `pytest -s`, for the README and the closing notes.
"""

import warnings

import numpy as np
import pytest

import scratchnet.nn.functional as F
from scratchnet import Tensor
from scratchnet import ops as sn_ops
from tests.gradcheck import ErrorLog, away_from, gradcheck, vjp_check

rng = np.random.default_rng(42)


def away_from_zero(shape, low=0.1):
    """Values with |x| >= low, so that ReLU's kink at 0 is never inside a difference step."""
    x = rng.uniform(low, 1.0, shape)
    return x * rng.choice([-1.0, 1.0], shape)


CONDITION = np.array([True, False, False, True])  # broadcasts against (3, 4) and (4,)

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
    "pow_scalar": (lambda a: a**3, [rng.standard_normal((3, 4))]),
    "pow_fractional": (lambda a: a**-1.5, [rng.uniform(0.5, 2, (3, 4))]),
    "pow_method": (lambda a: a.pow(2), [rng.standard_normal((5,))]),
    "rpow": (lambda a: 2.5**a, [rng.standard_normal((3, 4))]),
    "rpow_below_one": (lambda a: 0.5**a, [rng.standard_normal((4,))]),
    "pow_tensors": (
        lambda a, b: a**b,
        [rng.uniform(0.5, 2, (3, 4)), rng.standard_normal((4,))],
    ),
    "sqrt": (lambda a: a.sqrt(), [rng.uniform(0.5, 3, (3, 4))]),
    "abs": (lambda a: abs(a), [away_from_zero((3, 4))]),
    "sign": (lambda a: a.sign() * a, [away_from_zero((3, 4))]),
    "clamp": (
        lambda a: a.clamp(-0.55, 0.45),
        [away_from(rng.standard_normal((4, 5)), -0.55, 0.45)],
    ),
    "clamp_min": (lambda a: a.clamp(min=0.05), [away_from(rng.standard_normal((4, 5)), 0.05)]),
    "clip_max": (lambda a: a.clip(max=-0.25), [away_from(rng.standard_normal((4, 5)), -0.25)]),
    "clamp_tensors": (
        lambda x, low, high: x.clamp(low, high),
        [rng.uniform(-3, 3, (4, 5)), rng.uniform(-2, -0.5, (5,)), rng.uniform(0.5, 2, (4, 1))],
    ),
    "clamp_min_above_max": (
        lambda x, low, high: x.clamp(low, high),
        [rng.uniform(-3, 3, (4, 5)), rng.uniform(0.5, 1, (4, 5)), rng.uniform(-1, 0, (4, 5))],
    ),
    "maximum": (
        lambda a, b: sn_ops.maximum(a, b),
        [rng.standard_normal((3, 4)), rng.standard_normal((4,))],
    ),
    "minimum": (
        lambda a, b: a.minimum(b),
        [rng.standard_normal((3, 1)), rng.standard_normal((4,))],
    ),
    "where": (
        lambda a, b: sn_ops.where(CONDITION, a, b),
        [rng.standard_normal((3, 4)), rng.standard_normal((3, 1))],
    ),
    "where_scalar": (lambda a: a.where(CONDITION, 0.5), [rng.standard_normal((4,))]),
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


# ---------------------------------------------------------------------------------------------
# Elementwise ops: torch's values at kinks and ties, 0-d tensors, dtypes and errors
# ---------------------------------------------------------------------------------------------


def grads_of(fn, *arrays, dy=None):
    """fn's output and the gradient of each input, for an upstream gradient dy (default ones)."""
    inputs = [Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]
    out = fn(*inputs)
    out.backward(np.ones(out.shape) if dy is None else dy)
    return out.data, [t.grad for t in inputs]


def test_maximum_and_minimum_split_the_gradient_at_ties_as_torch():
    a, b = [1.0, 2.0, 3.0], [1.0, 1.0, 4.0]
    y, (da, db) = grads_of(sn_ops.maximum, a, b)
    np.testing.assert_array_equal(y, [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(da, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(db, [0.5, 0.0, 1.0])
    y, (da, db) = grads_of(sn_ops.minimum, a, b)
    np.testing.assert_array_equal(y, [1.0, 1.0, 3.0])
    np.testing.assert_array_equal(da, [0.5, 0.0, 1.0])
    np.testing.assert_array_equal(db, [0.5, 1.0, 0.0])


def test_maximum_sums_a_broadcast_gradient_and_its_ties():
    _, (da, db) = grads_of(sn_ops.maximum, [[1.0, 5.0], [3.0, 0.0]], [1.0, 2.0])
    np.testing.assert_array_equal(da, [[0.5, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(db, [0.5, 1.0])  # a tie with 1 and a win over 0


def test_clamp_passes_the_gradient_at_its_bounds_as_torch():
    x = [-1.0, 0.0, 1.0, 2.0, 3.0]
    y, (dx,) = grads_of(lambda t: t.clamp(0, 2), x)
    np.testing.assert_array_equal(y, [0.0, 0.0, 1.0, 2.0, 2.0])
    np.testing.assert_array_equal(dx, [0.0, 1.0, 1.0, 1.0, 0.0])


def test_clamp_with_tensor_bounds_follows_torchs_rules_where_min_exceeds_max():
    # torch 2.13: x = [-1, 0, 1, 2, 3], min = [0, 0, 1, 3, 3], max = [2, 2, 2, 2, 3]
    x, low, high = [-1.0, 0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 1.0, 3.0, 3.0], [2.0, 2.0, 2.0, 2.0, 3.0]
    y, (dx, dlow, dhigh) = grads_of(lambda *t: sn_ops.clamp(*t), x, low, high)
    np.testing.assert_array_equal(y, [0.0, 0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(dx, [0.0, 1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(dlow, [1.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(dhigh, [0.0, 0.0, 0.0, 1.0, 0.0])


def test_clamp_with_min_above_max_gives_max():
    np.testing.assert_array_equal(Tensor([3.0, -1.0]).clamp(min=2, max=1).data, [1.0, 1.0])


def test_abs_sign_sqrt_and_pow_at_zero_and_below_as_torch():
    x = [-1.0, 0.0, 1.0, 2.0, 3.0]
    _, (dx,) = grads_of(abs, x)
    np.testing.assert_array_equal(dx, [-1.0, 0.0, 1.0, 1.0, 1.0])
    y, (dx,) = grads_of(lambda t: t.sign(), x)
    np.testing.assert_array_equal(y, [-1.0, 0.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(dx, np.zeros(5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nan and inf, silently, as in torch
        y, (dx,) = grads_of(lambda t: t.sqrt(), x)
        np.testing.assert_array_equal(dx[:2], [np.nan, np.inf])
        _, (dx,) = grads_of(lambda t: t**0.5, x)
        np.testing.assert_array_equal(dx[:2], [np.nan, np.inf])
        _, (dx,) = grads_of(lambda t: t**0, x)
        np.testing.assert_array_equal(dx, np.zeros(5))  # not 0 * 0**-1 = nan
        y, (dx,) = grads_of(lambda t: 0**t, x)
        np.testing.assert_array_equal(y, [np.inf, 1.0, 0.0, 0.0, 0.0])
        np.testing.assert_array_equal(dx, [-np.inf, 0.0, 0.0, 0.0, 0.0])


def test_pow_of_two_tensors_at_zero_and_negative_bases_as_torch():
    base, exponent = [-1.0, 0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 1.0, 2.0, -1.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y, (dbase, dexponent) = grads_of(lambda a, b: a**b, base, exponent)
    np.testing.assert_array_equal(y, [1.0, 1.0, 1.0, 4.0, 1 / 3])
    np.testing.assert_allclose(dbase, [0.0, 0.0, 1.0, 4.0, -1 / 9], rtol=1e-15)
    np.testing.assert_allclose(dexponent, [np.nan, 0.0, 0.0, 4 * np.log(2), np.log(3) / 3])


def test_where_sends_the_gradient_to_the_chosen_side():
    condition = np.array([[True, False], [False, True]])
    y, (da, db) = grads_of(lambda a, b: sn_ops.where(condition, a, b), [[1.0, 2.0]], [[5.0]])
    np.testing.assert_array_equal(y, [[1.0, 5.0], [5.0, 2.0]])
    np.testing.assert_array_equal(da, [[1.0, 1.0]])
    np.testing.assert_array_equal(db, [[2.0]])
    assert sn_ops.where(Tensor(condition), 1.0, 0.0).dtype == np.float32


def test_where_takes_a_comparison_as_its_condition():
    x = Tensor(np.array([-1.0, 2.0, -3.0]), requires_grad=True)
    y = sn_ops.where(x > 0, x, x * 0.1)
    y.backward(np.ones(3))
    np.testing.assert_allclose(y.data, [-0.1, 2.0, -0.3])
    np.testing.assert_allclose(x.grad, [0.1, 1.0, 0.1])


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t**2,
        lambda t: 2**t,
        lambda t: t**t,
        lambda t: t.sqrt(),
        lambda t: t.abs(),
        lambda t: t.sign(),
        lambda t: t.clamp(0, 1),
        lambda t: t.clamp(Tensor(0.1), 1.0),
        lambda t: t.maximum(Tensor(0.2)),
        lambda t: t.minimum(0.2 * t),
        lambda t: sn_ops.where(np.array(True), t, 0.0),
    ],
)
def test_elementwise_ops_keep_a_0d_tensor_0d(fn):
    x = Tensor(np.array(0.7), requires_grad=True)
    y = fn(x)
    assert y.shape == ()
    y.backward()
    assert x.grad.shape == ()


def test_elementwise_dtypes_follow_torch():
    x32 = Tensor(np.array([1.0, 4.0], dtype=np.float32))
    for y in (x32**2, x32**0.5, x32 ** np.float64(2.0), 2.0**x32, x32.sqrt(), x32.clamp(0.5)):
        assert y.dtype == np.float32
    ints = Tensor(np.array([1, 4]))
    assert (ints**2).dtype == np.int64
    assert ints.clamp(0, 2).dtype == np.int64
    for y in (ints**0.5, ints.sqrt(), ints.clamp(0.5), ints.exp()):
        assert y.dtype == np.float32
    np.testing.assert_array_equal(ints.sqrt().data, [1.0, 2.0])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda: Tensor(np.ones(3)) + Tensor(np.ones(4)),
            ValueError,
            r"add: shapes \(3,\), \(4,\)",
        ),
        (lambda: Tensor(np.ones((2, 3))) ** Tensor(np.ones(2)), ValueError, "pow: shapes"),
        (lambda: sn_ops.maximum(Tensor(np.ones(3)), np.ones(2)), ValueError, "maximum: shapes"),
        (lambda: Tensor(np.ones(3)).clamp(np.zeros(2)), ValueError, "clamp: shapes"),
        (lambda: Tensor(np.ones(3)).clamp(), ValueError, "clamp: at least one"),
        (lambda: sn_ops.where(np.ones(3), 1.0, 0.0), TypeError, "where: condition must be a bool"),
        (
            lambda: sn_ops.where(np.ones(3, bool), np.ones(2), 0.0),
            ValueError,
            r"where: shapes \(3,\), \(2,\), \(\)",
        ),
        (lambda: Tensor(np.array([2, 3])) ** -1, ValueError, "pow: integers to negative"),
    ],
)
def test_elementwise_errors_name_the_op_and_the_shapes(call, error, match):
    with pytest.raises(error, match=match):
        call()


teardown_module = GRAD_ERRORS.print_table
