"""gather and masked_fill: forward against NumPy, float64 gradient checks (repeated indices add
up, masked places get none), broadcasting, 0-d tensors and the errors for bad indices and masks."""

from __future__ import annotations

import numpy as np
import pytest

from scratchnet import Tensor
from scratchnet.autograd import gradcheck

rng = np.random.default_rng(0)


def test_gather_forward_matches_take_along_axis():
    x = rng.standard_normal((3, 4, 2))
    index = rng.integers(0, 4, (3, 5, 2))
    for dim in (1, -2):
        y = Tensor(x).gather(dim, index)
        np.testing.assert_array_equal(y.data, np.take_along_axis(x, index, axis=1))


def test_gather_index_may_be_smaller_than_input_in_other_dims():
    x = np.arange(12.0).reshape(3, 4)
    y = Tensor(x).gather(1, np.array([[3, 0], [1, 1]]))
    np.testing.assert_array_equal(y.data, [[3, 0], [5, 5]])


def test_gather_gradient_adds_up_repeated_indices():
    x = Tensor(np.zeros((2, 3)), requires_grad=True)
    x.gather(1, np.array([[2, 2, 0], [1, 1, 1]])).backward(np.ones((2, 3)))
    np.testing.assert_array_equal(x.grad, [[1, 0, 2], [0, 3, 0]])
    index = rng.integers(0, 3, (4, 5))
    assert gradcheck(lambda t: t.gather(0, index), [rng.standard_normal((3, 5))])
    assert gradcheck(lambda t: t.gather(-1, index[:2, :3]), [rng.standard_normal((2, 4))])


def test_gather_on_zero_dim_tensors():
    x = Tensor(np.array(2.5), requires_grad=True)
    y = x.gather(0, np.array(0))
    assert y.shape == () and y.item() == 2.5
    y.backward(np.array(3.0))
    assert x.grad.shape == () and x.grad == 3.0


def test_masked_fill_forward_and_gradients():
    x = rng.standard_normal((3, 4))
    mask = np.array([True, False, False, True])
    y = Tensor(x).masked_fill(mask, -1.0)
    np.testing.assert_array_equal(y.data, np.where(mask, -1.0, x))
    t = Tensor(x, requires_grad=True)
    value = Tensor(np.array(0.5), requires_grad=True)
    dy = rng.standard_normal((3, 4))
    t.masked_fill(mask, value).backward(dy)
    np.testing.assert_array_equal(t.grad, np.where(mask, 0.0, dy))  # zero where masked
    np.testing.assert_allclose(value.grad, dy[:, mask].sum())
    assert gradcheck(lambda a, v: a.masked_fill(mask, v), [x, np.array(0.5)])


def test_masked_fill_broadcasts_like_torch():
    x = rng.standard_normal((4,))
    mask = rng.standard_normal((2, 4)) > 0
    y = Tensor(x).masked_fill(mask, 0.0)
    assert y.shape == (2, 4)
    assert gradcheck(lambda a: a.masked_fill(mask, 0.0), [x])


def test_masked_fill_keeps_the_dtype():
    x = Tensor(np.ones(3, dtype=np.float32))
    assert x.masked_fill(np.array([True, False, True]), 2).dtype == np.float32
    assert Tensor(np.array([1, 2, 3])).masked_fill(np.array([True, False, False]), 9).dtype == (
        np.int64
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x: x.gather(1, np.array([[0.0]])), TypeError, "gather: index must be an integer"),
        (lambda x: x.gather(1, np.array([0])), ValueError, "same number of dimensions"),
        (lambda x: x.gather(1, np.zeros((4, 1), dtype=int)), ValueError, "larger than input"),
        (lambda x: x.gather(1, np.array([[4]])), IndexError, "index 4 is out of bounds"),
        (lambda x: x.gather(1, np.array([[-1]])), IndexError, "index -1 is out of bounds"),
        (lambda x: x.gather(2, np.array([[0]])), IndexError, "gather: dim 2"),
        (lambda x: x.masked_fill(np.ones(4), 0.0), TypeError, "mask must be a boolean"),
        (lambda x: x.masked_fill(np.ones(3, dtype=bool), 0.0), ValueError, "does not broadcast"),
        (
            lambda x: x.masked_fill(np.ones(4, dtype=bool), Tensor(np.ones(2))),
            ValueError,
            "0-d tensor",
        ),
    ],
)
def test_errors_name_the_op_and_the_shapes(call, error, match):
    with pytest.raises(error, match=match):
        call(Tensor(np.ones((3, 4))))


def test_masked_fill_takes_a_comparison_as_mask():
    x = Tensor(np.array([[-1.0, 2.0], [3.0, -4.0]]), requires_grad=True)
    y = x.masked_fill(x < 0, 0.0)
    np.testing.assert_array_equal(y.data, [[0, 2], [3, 0]])
    y.backward(np.ones((2, 2)))
    np.testing.assert_array_equal(x.grad, [[0, 1], [1, 0]])
