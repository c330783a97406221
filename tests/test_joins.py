"""cat, stack, split and chunk: forward against NumPy, float64 gradient checks, torch's piece
sizes, dtype promotion, negative dims and the errors for shapes that do not fit."""

from __future__ import annotations

import numpy as np
import pytest

from scratchnet import Tensor
from scratchnet.autograd import gradcheck
from scratchnet.ops import cat, chunk, split, stack

rng = np.random.default_rng(0)


def test_cat_forward_and_gradient():
    a, b, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 1)), rng.standard_normal((2, 4))
    y = cat([Tensor(a), Tensor(b), Tensor(c)], dim=-1)
    np.testing.assert_array_equal(y.data, np.concatenate([a, b, c], axis=1))
    assert gradcheck(lambda *xs: cat(xs, dim=1), [a, b, c])
    assert gradcheck(lambda x, y: cat([x, y, x], dim=0), [a, rng.standard_normal((4, 3))])


def test_stack_forward_and_gradient():
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    for dim, axis in [(0, 0), (2, 2), (-1, 2), (-3, 0)]:
        y = stack([Tensor(a), Tensor(b)], dim=dim)
        np.testing.assert_array_equal(y.data, np.stack([a, b], axis=axis))
    assert gradcheck(lambda x, y: stack([x, y, x], dim=1), [a, b])


def test_stack_of_zero_dim_tensors_gives_a_vector():
    y = stack([Tensor(np.array(1.0)), Tensor(np.array(2.0))])
    assert y.shape == (2,)


def test_split_sizes_and_sections_as_in_torch():
    x = Tensor(np.arange(10.0).reshape(5, 2))
    assert [p.shape[0] for p in split(x, 2)] == [2, 2, 1]
    assert [p.shape[0] for p in x.split([1, 4])] == [1, 4]
    assert [p.shape[1] for p in x.split(1, dim=-1)] == [1, 1]
    np.testing.assert_array_equal(x.split([2, 3])[1].data, x.data[2:])
    assert [p.shape for p in Tensor(np.zeros((0,))).split(0)] == [(0,)]


def test_chunk_sizes_as_in_torch():
    five, six = Tensor(np.arange(5.0)), Tensor(np.arange(6.0))
    assert [p.shape[0] for p in chunk(five, 3)] == [2, 2, 1]
    assert [p.shape[0] for p in six.chunk(4)] == [2, 2, 2]  # fewer pieces than asked
    assert [p.shape[0] for p in Tensor(np.zeros((0,))).chunk(3)] == [0, 0, 0]


def test_split_and_chunk_gradients():
    x = rng.standard_normal((3, 5))
    assert gradcheck(lambda t: cat([p * (i + 1.0) for i, p in enumerate(t.split(2, 1))], 1), [x])
    assert gradcheck(lambda t: t.chunk(2, dim=0)[1], [x])


def test_cat_promotes_dtypes_as_torch():
    ints = Tensor(np.array([1, 2]))
    assert cat([ints, Tensor(np.zeros(2, dtype=np.float32))]).dtype == np.float32  # NumPy: f64
    assert cat([ints, ints]).dtype == np.int64
    a = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    b = Tensor(np.ones(3, dtype=np.float64), requires_grad=True)
    out = cat([a, b])
    assert out.dtype == np.float64
    out.backward(np.arange(5.0))
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    np.testing.assert_array_equal(b.grad, [2, 3, 4])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: cat([]), ValueError, "cat: expected a non-empty"),
        (lambda: cat([Tensor(np.ones((2, 3))), np.ones((2, 3))]), TypeError, "Tensors"),
        (lambda: cat([Tensor(np.array(1.0))]), ValueError, "0-d tensor"),
        (
            lambda: cat([Tensor(np.ones((2, 3))), Tensor(np.ones((3, 3)))], dim=1),
            ValueError,
            r"except in dimension 1: got \(2, 3\) at position 0 and \(3, 3\) at position 1",
        ),
        (lambda: cat([Tensor(np.ones((2, 3)))], dim=2), IndexError, "cat: dim 2"),
        (
            lambda: stack([Tensor(np.ones(2)), Tensor(np.ones(3))]),
            ValueError,
            r"stack: every tensor must have the same shape: got \(2,\)",
        ),
        (lambda: stack([Tensor(np.ones(2))], dim=2), IndexError, "stack: dim 2"),
        (lambda: split(Tensor(np.ones(5)), [1, 2]), ValueError, "add up to 5"),
        (lambda: split(Tensor(np.ones(5)), 0), ValueError, "split_size must be positive"),
        (lambda: split(Tensor(np.array(1.0)), 1), ValueError, "0-d tensor"),
        (lambda: chunk(Tensor(np.ones(5)), 0), ValueError, "chunks must be a positive int"),
        (lambda: chunk(Tensor(np.ones(5)), 2, dim=1), IndexError, "chunk: dim 1"),
    ],
)
def test_errors_name_the_op_and_the_shapes(call, error, match):
    with pytest.raises(error, match=match):
        call()
