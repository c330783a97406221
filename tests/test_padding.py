"""F.pad (constant mode) and nn.ZeroPad2d: torch's pad order, negative pads that crop, float64
gradient checks and the errors for bad pads and modes."""

from __future__ import annotations

import numpy as np
import pytest

import scratchnet.nn.functional as F
from scratchnet import Tensor, nn
from scratchnet.autograd import gradcheck

rng = np.random.default_rng(0)


def test_pad_order_is_last_dim_first():
    x = rng.standard_normal((2, 3, 4))
    y = F.pad(Tensor(x), (1, 2, 3, 0), value=7.0)
    np.testing.assert_array_equal(y.data, np.pad(x, [(0, 0), (3, 0), (1, 2)], constant_values=7))


def test_negative_pads_crop():
    x = np.arange(20.0).reshape(4, 5)
    y = F.pad(Tensor(x), (-1, 2, 0, -3))
    np.testing.assert_array_equal(y.data, np.pad(x[:1, 1:], [(0, 0), (0, 2)]))
    assert F.pad(Tensor(x), (-2, -3)).shape == (4, 0)


@pytest.mark.parametrize("pad", [(1, 2), (2, 0, 1, 1), (-1, 2, 1, -2), (0, 0, 0, 0, 1, 1)])
def test_pad_gradient(pad):
    assert gradcheck(lambda t: F.pad(t, pad, value=0.5), [rng.standard_normal((3, 4, 5))])


def test_cropped_elements_get_zero_gradient():
    x = Tensor(np.ones((1, 4)), requires_grad=True)
    F.pad(x, (-1, 1)).backward(np.array([[1.0, 2.0, 3.0, 4.0]]))
    np.testing.assert_array_equal(x.grad, [[0, 1, 2, 3]])


def test_zero_pad2d():
    x = rng.standard_normal((1, 2, 3, 3)).astype(np.float32)
    y = nn.ZeroPad2d(1)(Tensor(x))
    assert y.shape == (1, 2, 5, 5) and y.dtype == np.float32
    np.testing.assert_array_equal(y.data[..., 1:-1, 1:-1], x)
    assert y.data[..., 0, :].sum() == 0
    assert nn.ZeroPad2d((1, 0, 2, 3))(Tensor(x)).shape == (1, 2, 8, 4)
    assert repr(nn.ZeroPad2d((1, 0, 2, 3))) == "ZeroPad2d((1, 0, 2, 3))"


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda x: F.pad(x, (1,)), ValueError, "even length"),
        (lambda x: F.pad(x, (1,) * 6), ValueError, "more than the 2 dims"),
        (lambda x: F.pad(x, (-3, -2)), ValueError, "negative size"),
        (lambda x: F.pad(x, (1.5, 1)), TypeError, "must be ints"),
        (lambda x: F.pad(x, (1, 1), mode="reflect"), NotImplementedError, "only mode='constant'"),
        (lambda x: F.pad(x, (1, 1), mode="mirror"), ValueError, "unknown mode"),
        (lambda x: nn.ZeroPad2d((1, 2, 3)), ValueError, "ZeroPad2d: padding must be"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call(Tensor(np.ones((3, 4))))
