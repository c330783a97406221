"""batch_norm and BatchNorm2d (and BatchNorm1d): forward against plain NumPy, gradient checks of
x, weight and bias in training and in eval, running statistics, buffers, errors and dtypes.

The upstream gradient is random, never ones: with a sum or mean upstream, batch norm's dx is
exactly zero whatever the code does. The largest relative gradient error of each check is
recorded in GRAD_ERRORS and printed at the end of the module with `pytest -s`.
"""

from __future__ import annotations

import numpy as np
import pytest

import scratchnet.nn.functional as F
from scratchnet import Tensor, nn, no_grad
from tests.gradcheck import ErrorLog, gradcheck, vjp_check

rng = np.random.default_rng(2024)
GRAD_ERRORS = ErrorLog()
record = GRAD_ERRORS.record


def numpy_batch_norm(x, mean, var, weight, bias, eps=1e-5):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    xhat = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return weight.reshape(shape) * xhat + bias.reshape(shape)


def batch_stats(x):
    axes = (0, *range(2, x.ndim))
    return x.mean(axis=axes), x.var(axis=axes)


SHAPES = [(2, 3, 5, 4), (1, 2, 3, 5), (5, 3, 1, 1), (4, 3), (3, 2, 7)]


# ---------------------------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_training_forward_matches_numpy(dtype, shape):
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    weight = rng.standard_normal(C).astype(dtype)
    bias = rng.standard_normal(C).astype(dtype)
    y = F.batch_norm(Tensor(x), None, None, Tensor(weight), Tensor(bias), training=True)
    assert y.dtype == dtype and y.shape == shape
    mean, var = batch_stats(x.astype(np.float64))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    expected = numpy_batch_norm(x.astype(np.float64), mean, var, weight, bias)
    np.testing.assert_allclose(y.data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eval_forward_uses_running_stats(dtype):
    x = rng.standard_normal((3, 4, 5, 5)).astype(dtype)
    running_mean = rng.standard_normal(4).astype(dtype)
    running_var = rng.uniform(0.5, 2.0, 4).astype(dtype)
    before = running_mean.copy(), running_var.copy()
    y = F.batch_norm(Tensor(x), running_mean, running_var, training=False, eps=1e-3)
    expected = numpy_batch_norm(x, running_mean, running_var, np.ones(4), np.zeros(4), eps=1e-3)
    assert y.dtype == dtype
    np.testing.assert_allclose(y.data, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(running_mean, before[0])  # eval leaves the stats alone
    np.testing.assert_array_equal(running_var, before[1])


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_gradcheck_training(shape):
    C = shape[1]
    arrays = [rng.standard_normal(shape) * 2 + 0.5, rng.standard_normal(C), rng.standard_normal(C)]

    def fn(x, w, b):
        return F.batch_norm(x, None, None, w, b, training=True)

    assert record("batch_norm (train)", gradcheck(fn, arrays, seed=11)) < 1e-6


@pytest.mark.parametrize("shape", SHAPES[:3])
def test_gradcheck_eval(shape):
    C = shape[1]
    running_mean = rng.standard_normal(C)
    running_var = rng.uniform(0.5, 2.0, C)
    arrays = [rng.standard_normal(shape), rng.standard_normal(C), rng.standard_normal(C)]

    def fn(x, w, b):
        return F.batch_norm(x, running_mean, running_var, w, b, training=False)

    assert record("batch_norm (eval)", gradcheck(fn, arrays, seed=12)) < 1e-6


def test_gradcheck_with_running_stats_being_updated():
    # Updating the running statistics inside forward must not change the gradient.
    running_mean, running_var = np.zeros(3), np.ones(3)
    arrays = [rng.standard_normal((2, 3, 4, 3)), rng.standard_normal(3), rng.standard_normal(3)]

    def fn(x, w, b):
        return F.batch_norm(x, running_mean, running_var, w, b, training=True, momentum=0.3)

    assert record("batch_norm (train)", gradcheck(fn, arrays, seed=13)) < 1e-6


def test_vjp_check_cnn_sized():
    arrays = [
        rng.standard_normal((8, 32, 14, 14)),
        rng.standard_normal(32),
        rng.standard_normal(32),
    ]
    err = vjp_check(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), arrays, 14)
    assert record("batch_norm (vjp, 8x32x14x14)", err) < 1e-6


def test_dx_is_not_trivially_zero():
    # The check above would pass for dx = 0 if dy were constant; here dx must be sizeable.
    x = Tensor(rng.standard_normal((4, 2, 3, 3)), requires_grad=True)
    F.batch_norm(x, None, None, training=True).backward(rng.standard_normal((4, 2, 3, 3)))
    assert np.abs(x.grad).max() > 0.1


# ---------------------------------------------------------------------------------------------
# running statistics and the module
# ---------------------------------------------------------------------------------------------


def test_running_stats_momentum_unbiased_var_and_count():
    bn = nn.BatchNorm2d(3)
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()
    x1 = rng.standard_normal((4, 3, 5, 6)).astype(np.float32) * 2 + 1
    x2 = rng.standard_normal((4, 3, 5, 6)).astype(np.float32) - 1
    bn(Tensor(x1))
    bn(Tensor(x2))

    expected_mean, expected_var = np.zeros(3), np.ones(3)
    for x in (x1, x2):
        x = x.astype(np.float64)
        mean = x.mean(axis=(0, 2, 3))
        unbiased = x.var(axis=(0, 2, 3), ddof=1)  # n / (n - 1) times the biased variance
        expected_mean = 0.9 * expected_mean + 0.1 * mean
        expected_var = 0.9 * expected_var + 0.1 * unbiased
    np.testing.assert_allclose(bn.running_mean, expected_mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bn.running_var, expected_var, rtol=1e-6)
    assert bn.running_mean.dtype == np.float32
    assert int(bn.num_batches_tracked) == 2
    assert int(bn.state_dict()["num_batches_tracked"]) == 2  # still a registered buffer


def test_momentum_none_is_a_cumulative_average():
    bn = nn.BatchNorm2d(2, momentum=None)
    xs = [rng.standard_normal((3, 2, 4, 4)) + k for k in range(3)]
    for x in xs:
        bn(Tensor(x.astype(np.float32)))
    means = [x.mean(axis=(0, 2, 3)) for x in xs]
    np.testing.assert_allclose(bn.running_mean, np.mean(means, axis=0), rtol=1e-5)


def test_eval_mode_uses_running_stats_and_does_not_update_them():
    bn = nn.BatchNorm2d(2)
    bn.running_mean[...] = [0.5, -1.0]
    bn.running_var[...] = [4.0, 0.25]
    bn.weight.data[...] = [2.0, 3.0]
    bn.bias.data[...] = [0.1, 0.2]
    bn.eval()
    x = rng.standard_normal((2, 2, 3, 3)).astype(np.float32)
    y = bn(Tensor(x))
    expected = numpy_batch_norm(x, bn.running_mean, bn.running_var, bn.weight.data, bn.bias.data)
    np.testing.assert_allclose(y.data, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(bn.running_mean, [0.5, -1.0])
    assert int(bn.num_batches_tracked) == 0

    # Backward in eval: the statistics are constants, so dx = dy * weight * inv_std.
    xt = Tensor(x, requires_grad=True)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    bn(xt).backward(dy)
    inv_std = 1 / np.sqrt(bn.running_var + 1e-5)
    np.testing.assert_allclose(xt.grad, dy * (bn.weight.data * inv_std)[None, :, None, None], 1e-6)


def test_training_under_no_grad_still_updates_running_stats():
    bn = nn.BatchNorm2d(2)
    with no_grad():
        bn(Tensor(rng.standard_normal((2, 2, 3, 3)).astype(np.float32) + 5))
    assert bn.running_mean.min() > 0.3 and int(bn.num_batches_tracked) == 1


def test_module_defaults_state_dict_and_repr():
    bn = nn.BatchNorm2d(32)
    np.testing.assert_array_equal(bn.weight.data, np.ones(32))
    np.testing.assert_array_equal(bn.bias.data, np.zeros(32))
    np.testing.assert_array_equal(bn.running_mean, np.zeros(32))
    np.testing.assert_array_equal(bn.running_var, np.ones(32))
    assert list(bn.state_dict()) == [
        "weight",
        "bias",
        "running_mean",
        "running_var",
        "num_batches_tracked",
    ]
    assert repr(bn) == (
        "BatchNorm2d(32, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    )


def test_without_affine_and_without_running_stats():
    bn = nn.BatchNorm2d(3, affine=False, track_running_stats=False)
    assert bn.weight is None and list(bn.parameters()) == [] and list(bn.state_dict()) == []
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    bn.eval()  # no running statistics: even eval normalises with the batch's
    mean, var = batch_stats(x.astype(np.float64))
    expected = numpy_batch_norm(x, mean, var, np.ones(3), np.zeros(3))
    np.testing.assert_allclose(bn(Tensor(x)).data, expected, rtol=1e-5, atol=1e-5)


def test_batchnorm1d():
    bn = nn.BatchNorm1d(5).double()
    x = Tensor(rng.standard_normal((8, 5)) * 2, requires_grad=True)
    y = bn(x)
    mean, var = batch_stats(x.data)
    np.testing.assert_allclose(y.data, numpy_batch_norm(x.data, mean, var, np.ones(5), np.zeros(5)))
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * x.data.var(axis=0, ddof=1))
    assert bn(Tensor(rng.standard_normal((4, 5, 3)))).shape == (4, 5, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    bn = nn.BatchNorm2d(3).to(dtype)
    x = Tensor(rng.standard_normal((2, 3, 4, 4)).astype(dtype), requires_grad=True)
    y = bn(x)
    assert y.dtype == dtype
    y.backward(rng.standard_normal(y.shape).astype(dtype))
    for t in (x, bn.weight, bn.bias):
        assert t.grad.dtype == dtype
    assert bn.running_mean.dtype == dtype and bn.num_batches_tracked.dtype == np.int64


def test_errors_for_bad_input():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"BatchNorm2d expects a 4-D input \(N, C, H, W\)"):
        bn(Tensor(np.zeros((2, 3), dtype=np.float32)))
    with pytest.raises(
        ValueError, match=r"BatchNorm2d expected 3 channels, got 1 \(input shape \(2, 1, 4, 4\)\)"
    ):
        bn(Tensor(np.zeros((2, 1, 4, 4), dtype=np.float32)))
    assert int(bn.num_batches_tracked) == 0  # a rejected batch is not counted
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(Tensor(np.zeros((1, 3, 1, 1), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm1d expects a 2-D or 3-D input"):
        nn.BatchNorm1d(3)(Tensor(np.zeros((2, 3, 4, 4))))
    with pytest.raises(ValueError, match=r"batch_norm expected 4 channels, got 3"):
        F.batch_norm(Tensor(np.zeros((2, 3, 2, 2))), np.zeros(4), np.ones(4))
    with pytest.raises(ValueError, match="evaluation needs running_mean and running_var"):
        F.batch_norm(Tensor(np.zeros((2, 3, 2, 2))), None, None, training=False)


def test_matches_torch_training_step_and_eval():
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 3, 5, 5)) * 2 + 1
    dy = rng.standard_normal(x.shape)
    ours = nn.BatchNorm2d(3).double()
    theirs = torch.nn.BatchNorm2d(3).double()
    for name in ("weight", "bias"):
        value = rng.standard_normal(3)
        getattr(ours, name).data[...] = value
        getattr(theirs, name).data[...] = torch.tensor(value)
    xa, xt = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = ours(xa), theirs(xt)
    y.backward(dy)
    yt.backward(torch.tensor(dy))
    close = {"rtol": 1e-10, "atol": 1e-12}
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **close)
    np.testing.assert_allclose(xa.grad, xt.grad.numpy(), **close)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), **close)
    np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), **close)
    for key, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), **close)
    ours.eval()
    theirs.eval()
    np.testing.assert_allclose(ours(Tensor(x)).data, theirs(torch.tensor(x)).detach(), **close)


teardown_module = GRAD_ERRORS.print_table
