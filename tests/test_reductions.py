"""Reductions: forward against NumPy, float64 gradient checks, dim/keepdim/axis semantics, ties,
zeros in prod, 0-d and empty tensors, and the errors for bad dims."""

from __future__ import annotations

import numpy as np
import pytest

from scratchnet import Tensor
from scratchnet.autograd import gradcheck
from scratchnet.ops.reduction import ValuesIndices

rng = np.random.default_rng(0)


def distinct(*shape: int) -> np.ndarray:
    """Values without ties (a shuffled grid, jittered), so that max and min are differentiable."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) + rng.uniform(0.1, 0.9, n)) / n * 4 - 2).reshape(shape)


GRAD_CASES = {
    "sum dim=1": (lambda x: x.sum(dim=1), distinct(3, 4, 2)),
    "sum dims keepdim": (lambda x: x.sum(dim=(0, -1), keepdim=True), distinct(3, 4, 2)),
    "mean dim=-1": (lambda x: x.mean(-1), distinct(3, 5)),
    "max": (lambda x: x.max(), distinct(3, 4)),
    "max dim": (lambda x: x.max(dim=1).values, distinct(3, 4, 2)),
    "max dim keepdim": (lambda x: x.max(-1, keepdim=True).values, distinct(3, 4)),
    "min": (lambda x: x.min(), distinct(4, 3)),
    "min dim": (lambda x: x.min(0).values, distinct(3, 4)),
    "amax dims": (lambda x: x.amax(dim=(0, 2)), distinct(3, 4, 2)),
    "amin keepdim": (lambda x: x.amin(1, keepdim=True), distinct(3, 4)),
    "var": (lambda x: x.var(), distinct(3, 4)),
    "var dim correction=0": (lambda x: x.var(dim=1, correction=0), distinct(3, 4)),
    "var dims keepdim": (lambda x: x.var(dim=(0, 2), keepdim=True), distinct(3, 4, 2)),
    "std": (lambda x: x.std(), distinct(3, 4)),
    "std dim correction=2": (lambda x: x.std(dim=-1, correction=2), distinct(3, 5)),
    "prod": (lambda x: x.prod(), distinct(2, 3)),
    "prod dim keepdim": (lambda x: x.prod(1, keepdim=True), distinct(3, 4, 2)),
    "logsumexp": (lambda x: x.logsumexp(1), distinct(3, 5)),
    "logsumexp dims": (lambda x: x.logsumexp((0, -1), keepdim=True), distinct(3, 4, 2)),
}


@pytest.mark.parametrize("name", list(GRAD_CASES))
def test_gradient_matches_finite_differences(name):
    fn, x = GRAD_CASES[name]
    assert gradcheck(fn, [x])


FORWARD_CASES = {
    "sum": (lambda t: t.sum(dim=(0, 2), keepdim=True), lambda a: a.sum((0, 2), keepdims=True)),
    "mean": (lambda t: t.mean(-2), lambda a: a.mean(-2)),
    "amax": (lambda t: t.amax(1), lambda a: a.max(1)),
    "amin": (lambda t: t.amin((0, 1)), lambda a: a.min((0, 1))),
    "var": (lambda t: t.var(1), lambda a: a.var(1, ddof=1)),
    "var correction=0": (lambda t: t.var(correction=0), lambda a: a.var()),
    "std": (lambda t: t.std(dim=(0, 2)), lambda a: a.std((0, 2), ddof=1)),
    "prod": (lambda t: t.prod(2), lambda a: a.prod(2)),
    "logsumexp": (lambda t: t.logsumexp(1), lambda a: np.log(np.exp(a).sum(1))),
}


@pytest.mark.parametrize("name", list(FORWARD_CASES))
def test_forward_matches_numpy(name):
    ours, numpy = FORWARD_CASES[name]
    x = rng.standard_normal((3, 4, 5))
    np.testing.assert_allclose(ours(Tensor(x)).data, numpy(x), rtol=1e-12)


def test_numpy_aliases_axis_and_keepdims():
    x = Tensor(rng.standard_normal((3, 4)))
    assert x.sum(axis=1, keepdims=True).shape == (3, 1)
    np.testing.assert_array_equal(x.mean(axis=0).data, x.mean(dim=0).data)
    assert x.max(axis=1).indices.shape == (3,)
    with pytest.raises(TypeError, match="both dim= and axis="):
        x.sum(dim=0, axis=1)


def test_empty_dims_reduce_everything_as_in_torch():
    x = Tensor(rng.standard_normal((3, 4)))
    assert x.sum(()).shape == ()
    np.testing.assert_allclose(x.sum(dim=()).data, x.data.sum())
    np.testing.assert_allclose(x.amax(()).data, x.data.max())


def test_max_with_dim_returns_values_and_first_indices():
    x = Tensor(np.array([[1.0, 5.0, 5.0], [7.0, 2.0, 7.0]]), requires_grad=True)
    result = x.max(dim=1)
    assert isinstance(result, ValuesIndices)
    values, indices = result
    np.testing.assert_array_equal(values.data, [5.0, 7.0])
    np.testing.assert_array_equal(indices.data, [1, 0])  # the first maximum, as torch
    assert indices.dtype == np.int64 and not indices.requires_grad
    values.backward(np.array([10.0, 20.0]))
    np.testing.assert_array_equal(x.grad, [[0, 10, 0], [20, 0, 0]])  # to the index only


@pytest.mark.parametrize("op", ["max", "amax"])
def test_whole_tensor_max_and_amax_split_the_gradient_among_ties(op):
    x = Tensor(np.array([[3.0, 1.0, 3.0], [0.0, 3.0, 2.0]]), requires_grad=True)
    getattr(x, op)().backward(np.array(6.0))
    np.testing.assert_array_equal(x.grad, [[2, 0, 2], [0, 2, 0]])


def test_amin_with_dim_splits_ties_within_each_slice():
    x = Tensor(np.array([[1.0, 1.0, 4.0], [2.0, 0.0, 5.0]]), requires_grad=True)
    x.amin(dim=1).backward(np.array([4.0, 3.0]))
    np.testing.assert_array_equal(x.grad, [[2, 2, 0], [0, 3, 0]])


def test_min_with_dim_and_keepdim():
    x = Tensor(np.array([[4.0, 1.0], [0.5, 3.0]]))
    values, indices = x.min(0, keepdim=True)
    assert values.shape == indices.shape == (1, 2)
    np.testing.assert_array_equal(values.data, [[0.5, 1.0]])
    np.testing.assert_array_equal(indices.data, [[1, 0]])


def test_argmax_and_argmin_give_int64_tensors():
    x = Tensor(np.array([[1.0, 9.0, 9.0], [8.0, 0.0, 8.0]]))
    assert x.argmax().item() == 1 and x.argmax().shape == ()
    np.testing.assert_array_equal(x.argmax(dim=1).data, [1, 0])
    np.testing.assert_array_equal(x.argmin(dim=-1, keepdim=True).data, [[0], [1]])
    assert x.argmax(keepdim=True).shape == (1, 1)
    assert x.argmin().dtype == np.int64 and not x.argmin().requires_grad


def test_prod_gradient_is_right_with_one_and_two_zeros():
    x = Tensor(np.array([[2.0, 0.0, 3.0, 4.0], [0.0, 5.0, 0.0, 2.0]]), requires_grad=True)
    x.prod(dim=1).backward(np.array([1.0, 1.0]))
    # d prod / dx_i = the product of the others: nonzero only at a row's single zero.
    np.testing.assert_array_equal(x.grad, [[0, 24, 0, 0], [0, 0, 0, 0]])
    assert gradcheck(lambda t: t.prod(1), [np.array([[2.0, 0.0, 3.0], [0.0, 0.0, 1.5]])])


def test_logsumexp_is_stable_for_large_and_infinite_values():
    x = Tensor(np.array([[1000.0, 1000.0], [-1000.0, -1001.0], [-np.inf, -np.inf]]))
    y = x.logsumexp(1).data
    np.testing.assert_allclose(y[:2], [1000 + np.log(2), -1000 + np.log1p(np.exp(-1))])
    assert y[2] == -np.inf
    assert Tensor(np.array([np.inf, 0.0])).logsumexp(0).item() == np.inf


def test_std_of_a_constant_slice_has_zero_gradient():
    x = Tensor(np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]]), requires_grad=True)
    x.std(dim=1).backward(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad[0], [0, 0, 0])
    assert np.isfinite(x.grad).all()


def test_var_with_too_few_elements_is_nan_as_in_torch():
    assert np.isnan(Tensor(np.array([3.0])).var().item())
    assert Tensor(np.array([1.0, 2.0])).var(correction=2).item() == np.inf


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: t.sum(0),
        lambda t: t.mean(-1),
        lambda t: t.amax(),
        lambda t: t.var(0, correction=0),
        lambda t: t.prod(0),
        lambda t: t.logsumexp(0),
    ],
)
def test_zero_dim_tensors_stay_zero_dim(fn):
    x = Tensor(np.array(1.5), requires_grad=True)
    y = fn(x)
    assert y.shape == ()
    y.backward(np.array(2.0))
    assert x.grad.shape == ()


def test_zero_dim_max_min_argmax_with_dim():
    x = Tensor(np.array(4.0))
    values, indices = x.max(0)
    assert values.shape == indices.shape == ()
    assert values.item() == 4.0 and indices.item() == 0
    assert x.argmin(-1).item() == 0 and x.max().item() == 4.0


def test_empty_tensors():
    e = Tensor(np.zeros((0, 3)))
    assert e.sum().item() == 0.0 and e.prod().item() == 1.0
    assert np.isnan(e.mean().item())
    assert e.amax(1).shape == (0,) and e.max(1).values.shape == (0,)
    assert e.logsumexp(0).data.tolist() == [-np.inf] * 3
    for call, match in [
        (lambda: e.max(), "empty tensor"),
        (lambda: e.argmax(), "empty tensor"),
        (lambda: e.amax(0), "dimension 0 of size 0"),
        (lambda: e.min(0), "dimension 0 of size 0"),
    ]:
        with pytest.raises(ValueError, match=match):
            call()


def test_integer_tensors():
    x = Tensor(np.array([[1, 2], [3, 4]]))
    assert x.sum().item() == 10 and x.sum().dtype == np.int64
    assert x.prod(1).data.tolist() == [2, 12]
    assert x.max().item() == 4 and x.amin(0).data.tolist() == [1, 2]
    assert x.logsumexp(0).dtype == np.float32  # promoted, as torch
    for op in ("mean", "var", "std"):
        with pytest.raises(TypeError, match=f"{op}: needs a floating-point tensor"):
            getattr(x, op)()


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda t: t.sum(2), IndexError, r"sum: dim 2 is out of range .* shape \(2, 3\)"),
        (lambda t: t.mean(-3), IndexError, r"mean: dim -3 is out of range"),
        (lambda t: t.amax((0, -2)), ValueError, r"amax: dims \(0, -2\) name the same dim"),
        (lambda t: t.max(dim=5), IndexError, "max: dim 5 is out of range"),
        (lambda t: t.max(Tensor(np.ones(3))), TypeError, "maximum"),
        (lambda t: t.argmin(3), IndexError, "argmin: dim 3"),
        (lambda t: t.prod(1.5), TypeError, "prod: dim must be an int"),
        (lambda t: t.logsumexp(7), IndexError, "logsumexp: dim 7"),
    ],
)
def test_bad_dims_name_the_op_and_the_shape(call, error, match):
    with pytest.raises(error, match=match):
        call(Tensor(np.ones((2, 3))))


def test_float32_stays_float32():
    x = Tensor(rng.standard_normal((3, 4)).astype(np.float32), requires_grad=True)
    for y in (x.var(1), x.std(), x.prod(0), x.logsumexp(1), x.amax(0), x.max(1).values):
        assert y.dtype == np.float32
        y.backward(np.ones(y.shape, dtype=np.float32))
        assert x.grad.dtype == np.float32
