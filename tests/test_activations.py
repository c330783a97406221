"""Activations: gradient checks (float64, random upstream gradient), expected forwards written in
plain NumPy, torch's values at the kinks, stability for large |x|, 0-d tensors, dtypes, the
Modules and the errors.

The largest relative gradient error of each check is printed with `pytest -s`.
"""

import math
import warnings

import numpy as np
import pytest

import scratchnet as sn
import scratchnet.nn.functional as F
from scratchnet import Tensor, nn
from scratchnet.kernels import activation as kernels
from tests.gradcheck import ErrorLog, away_from, gradcheck, vjp_check

rng = np.random.default_rng(13)


def wide(shape, scale=3.0, kinks=()):
    """Values on both sides of every kink, none of them within a step of one."""
    return away_from(scale * rng.standard_normal(shape), *kinks)


erf = np.vectorize(math.erf)


# name: (scratchnet function, its expected forward in NumPy, input)
ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0), wide((4, 5), kinks=[0])),
    "relu_method": (lambda t: t.relu(), lambda x: np.maximum(x, 0), wide((6,), kinks=[0])),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x)), wide((4, 5))),
    "sigmoid_method": (lambda t: t.sigmoid(), lambda x: 1 / (1 + np.exp(-x)), wide((3,))),
    "tanh": (lambda t: t.tanh(), np.tanh, wide((4, 5))),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x)), wide((4, 5))),
    "softplus_beta_threshold": (
        lambda t: F.softplus(t, beta=2.0, threshold=3.0),
        lambda x: np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2),
        wide((4, 5), kinks=[1.5]),
    ),
    "leaky_relu": (F.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x), wide((4, 5), kinks=[0])),
    "leaky_relu_slope": (
        lambda t: F.leaky_relu(t, negative_slope=0.2),
        lambda x: np.where(x > 0, x, 0.2 * x),
        wide((4, 5), kinks=[0]),
    ),
    "elu": (F.elu, lambda x: np.where(x > 0, x, np.exp(x) - 1), wide((4, 5), kinks=[0])),
    "elu_alpha": (
        lambda t: F.elu(t, alpha=1.7),
        lambda x: np.where(x > 0, x, 1.7 * (np.exp(x) - 1)),
        wide((4, 5), kinks=[0]),
    ),
    "gelu": (F.gelu, lambda x: x * (1 + erf(x / math.sqrt(2))) / 2, wide((4, 5))),
    "gelu_tanh": (
        lambda t: F.gelu(t, approximate="tanh"),
        lambda x: x / 2 * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        wide((4, 5)),
    ),
    "relu6": (F.relu6, lambda x: np.clip(x, 0, 6), wide((4, 5), scale=5, kinks=[0, 6])),
    "hardswish": (
        F.hardswish,
        lambda x: x * np.clip(x + 3, 0, 6) / 6,
        wide((4, 5), scale=4, kinks=[-3, 3]),
    ),
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x)), wide((4, 5))),
    "mish": (F.mish, lambda x: x * np.tanh(np.log1p(np.exp(x))), wide((4, 5))),
    "softmax": (
        lambda t: F.softmax(t, dim=1),
        lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True),
        wide((3, 5)),
    ),
    "softmax_dim0_method": (
        lambda t: t.softmax(0),
        lambda x: np.exp(x) / np.exp(x).sum(0, keepdims=True),
        wide((4, 3)),
    ),
    "softmax_negative_dim": (
        lambda t: t.softmax(-2),
        lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True),
        wide((2, 3, 4)),
    ),
    "log_softmax_negative_dim": (
        lambda t: F.log_softmax(t, dim=-3),
        lambda x: x - np.log(np.exp(x).sum(0, keepdims=True)),
        wide((2, 3, 4)),
    ),
}

GRAD_ERRORS = ErrorLog()


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_gradcheck(name):
    fn, _, x = ACTIVATIONS[name]
    err = GRAD_ERRORS.record(name, gradcheck(fn, [x]))
    assert err < 1e-6, f"{name}: relative error {err:.2e}"


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_forward_matches_numpy(name):
    fn, expected, x = ACTIVATIONS[name]
    np.testing.assert_allclose(fn(Tensor(x)).data, expected(x), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("name", ["gelu", "mish", "softmax"])
def test_vjp_check_on_a_larger_input(name):
    fn, _, _ = ACTIVATIONS[name]
    err = GRAD_ERRORS.record(name, vjp_check(fn, [wide((32, 40))]))
    assert err < 1e-6


def gradient(fn, x):
    t = Tensor(np.array(x, dtype=np.float64), requires_grad=True)
    fn(t).backward(np.ones(t.shape))
    return t.grad


# torch 2.13's gradients at each kink (measured: F.relu6(x).backward(ones) and so on).
KINKS = {
    "relu": (F.relu, [0.0], [0.0]),
    "relu6": (F.relu6, [0.0, 6.0], [0.0, 0.0]),
    "hardswish": (F.hardswish, [-3.0, 0.0, 3.0], [0.0, 0.5, 1.0]),
    "leaky_relu": (lambda t: F.leaky_relu(t, 0.2), [0.0], [0.2]),
    "elu": (lambda t: F.elu(t, alpha=2.0), [0.0], [2.0]),
    "softplus at its threshold": (lambda t: F.softplus(t, 2.0, 6.0), [3.0], [1 / (1 + math.e**-6)]),
}


@pytest.mark.parametrize("name", list(KINKS))
def test_subgradient_at_the_kinks_is_torchs(name):
    fn, x, expected = KINKS[name]
    np.testing.assert_allclose(gradient(fn, x), expected, rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_inputs_give_finite_values_and_gradients_without_warnings(dtype):
    x = np.array([-1000.0, -100.0, -30.0, 30.0, 100.0, 1000.0], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fn in (F.sigmoid, F.tanh, F.softplus, F.elu, F.gelu, F.silu, F.mish, F.hardswish):
            t = Tensor(x, requires_grad=True)
            y = fn(t)
            y.backward(np.ones_like(x))
            assert np.isfinite(y.data).all() and np.isfinite(t.grad).all(), fn.__name__
            assert y.dtype == dtype
    np.testing.assert_array_equal(F.sigmoid(Tensor(x)).data[[0, -1]], [0.0, 1.0])
    np.testing.assert_array_equal(F.softplus(Tensor(x)).data[-3:], x[-3:])
    # exp(-1000) underflows to 0 in float64 too: the stable form still gets the tiny value right
    assert F.sigmoid(Tensor(np.array(-30.0))).item() == pytest.approx(math.exp(-30), rel=1e-12)


def test_softmax_rows_sum_to_one_for_huge_logits():
    x = Tensor(np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]]))
    y = x.softmax(1).data
    np.testing.assert_allclose(y.sum(1), [1.0, 1.0], rtol=1e-15)
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-15)
    assert np.isfinite(x.log_softmax(1).data).all()


ALL = [
    F.relu,
    F.sigmoid,
    F.tanh,
    F.softplus,
    F.leaky_relu,
    F.elu,
    F.gelu,
    lambda t: F.gelu(t, "tanh"),
    F.relu6,
    F.hardswish,
    F.silu,
    F.mish,
    lambda t: t.softmax(0),
    lambda t: t.log_softmax(-1),
]


@pytest.mark.parametrize("fn", ALL)
def test_a_0d_tensor_stays_0d_forward_and_backward(fn):
    x = sn.tensor(0.7, requires_grad=True)
    y = fn(x)
    assert y.shape == ()
    y.backward()
    assert x.grad.shape == ()


def test_relu_of_a_0d_tensor_is_0d_and_its_backward_works():
    x = sn.tensor(3.0, requires_grad=True)
    y = x.relu()
    assert y.shape == () and y.item() == 3.0
    y.backward()
    assert x.grad.shape == () and x.grad == 1.0
    assert kernels.relu_forward(np.array(-2.0)).shape == ()
    assert kernels.relu_backward(np.array(5.0), np.array(2.0)).shape == ()


def test_softmax_of_a_0d_tensor_is_one_and_of_an_empty_dim_is_empty():
    assert sn.tensor(4.0).softmax(0).item() == 1.0
    assert sn.tensor(4.0).log_softmax(-1).item() == 0.0
    assert F.softmax(Tensor(np.zeros((0, 3))), dim=1).shape == (0, 3)
    assert F.softmax(Tensor(np.zeros((2, 0))), dim=1).shape == (2, 0)


@pytest.mark.parametrize("fn", ALL)
def test_float32_stays_float32_and_integers_follow_torch(fn):
    assert fn(Tensor(np.array([0.5, -1.5], dtype=np.float32))).dtype == np.float32
    # relu and relu6 keep an integer dtype, as in torch; the others compute in float32 (torch
    # promotes sigmoid and tanh so, and has no integer kernel for the rest)
    expected = np.int64 if fn in (F.relu, F.relu6) else np.float32
    assert fn(Tensor(np.array([1, -2]))).dtype == expected


def test_erf_kernel_matches_its_reference():
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal(1000).astype(dtype) * 3
        y, y_ref = np.empty_like(x), np.empty_like(x)
        kernels.erf_into(x, y)
        kernels.erf_into_reference(x, y_ref)
        np.testing.assert_allclose(y, y_ref, rtol=1e-6 if dtype == np.float32 else 1e-15)
    assert kernels.erf(np.array(0.5)).shape == ()


MODULES = [
    (nn.ReLU(), F.relu, "ReLU()"),
    (nn.Sigmoid(), F.sigmoid, "Sigmoid()"),
    (nn.Tanh(), F.tanh, "Tanh()"),
    (nn.Softplus(), F.softplus, "Softplus(beta=1.0, threshold=20.0)"),
    (nn.Softplus(2, 5), lambda t: F.softplus(t, 2, 5), "Softplus(beta=2, threshold=5)"),
    (nn.LeakyReLU(), F.leaky_relu, "LeakyReLU(negative_slope=0.01)"),
    (nn.LeakyReLU(0.3), lambda t: F.leaky_relu(t, 0.3), "LeakyReLU(negative_slope=0.3)"),
    (nn.ELU(), F.elu, "ELU(alpha=1.0)"),
    (nn.ELU(0.5), lambda t: F.elu(t, 0.5), "ELU(alpha=0.5)"),
    (nn.GELU(), F.gelu, "GELU(approximate='none')"),
    (nn.GELU("tanh"), lambda t: F.gelu(t, "tanh"), "GELU(approximate='tanh')"),
    (nn.ReLU6(), F.relu6, "ReLU6()"),
    (nn.Hardswish(), F.hardswish, "Hardswish()"),
    (nn.SiLU(), F.silu, "SiLU()"),
    (nn.Mish(), F.mish, "Mish()"),
    (nn.Softmax(dim=0), lambda t: F.softmax(t, 0), "Softmax(dim=0)"),
    (nn.LogSoftmax(1), lambda t: F.log_softmax(t, 1), "LogSoftmax(dim=1)"),
]


@pytest.mark.parametrize("module, fn, text", MODULES, ids=[m[2] for m in MODULES])
def test_modules_compute_their_functional_form(module, fn, text):
    x = Tensor(wide((3, 4), kinks=[0]))
    np.testing.assert_array_equal(module(x).data, fn(x).data)
    assert repr(module) == text
    assert list(module.parameters()) == []


def test_activation_modules_train_in_a_sequential():
    model = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2), nn.LogSoftmax(dim=1))
    loss = F.nll_loss(model(Tensor(rng.standard_normal((5, 3)))), np.array([0, 1, 1, 0, 1]))
    loss.backward()
    assert all(p.grad is not None and np.abs(p.grad).sum() > 0 for p in model.parameters())


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: F.softmax(Tensor(np.ones((2, 3)))), TypeError, "softmax: pass dim"),
        (lambda: Tensor(np.ones((2, 3))).log_softmax(), TypeError, "log_softmax: pass dim"),
        (
            lambda: Tensor(np.ones((2, 3))).softmax(2),
            IndexError,
            r"softmax: dim 2 is out of range for a tensor of shape \(2, 3\)",
        ),
        (lambda: sn.tensor(1.0).softmax(1), IndexError, "out of range"),
        (lambda: F.gelu(Tensor(np.ones(2)), "erf"), ValueError, "gelu: approximate must be"),
        (lambda: nn.GELU("fast")(Tensor(np.ones(2))), ValueError, "approximate must be"),
        (lambda: F.softplus(Tensor(np.ones(2)), beta=0), ValueError, "softplus: beta"),
    ],
)
def test_bad_arguments_get_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


teardown_module = GRAD_ERRORS.print_table
