"""max_pool2d / MaxPool2d, avg_pool2d / AvgPool2d and adaptive_avg_pool2d / AdaptiveAvgPool2d:
naive forwards, gradient checks away from ties, the first-maximum rule, overlapping windows,
ceil_mode's output sizes and divisors, errors and dtypes.

The largest relative gradient error of each check is recorded in GRAD_ERRORS and printed at
the end of the module with `pytest -s`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import scratchnet.nn.functional as F
from scratchnet import Tensor, nn, no_grad
from scratchnet.nn.pooling import MaxPool2dFunction
from scratchnet.tensor import Context
from tests.gradcheck import ErrorLog, gradcheck, vjp_check
from tests.reference_ops import naive_max_pool

rng = np.random.default_rng(99)
GRAD_ERRORS = ErrorLog()
record = GRAD_ERRORS.record


def distinct(shape):
    """Values at least 0.5 / size apart: no ties, so a difference step never changes a max."""
    n = int(np.prod(shape))
    return (rng.permutation(n) + rng.uniform(0.25, 0.75, n)).reshape(shape) / n * 4 - 2


def naive_adaptive_avg_pool(x, out):
    N, C, H, W = x.shape
    OH, OW = out
    y = np.empty((N, C, OH, OW), dtype=x.dtype)
    for i in range(OH):
        h0, h1 = (i * H) // OH, math.ceil((i + 1) * H / OH)
        for j in range(OW):
            w0, w1 = (j * W) // OW, math.ceil((j + 1) * W / OW)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].mean(axis=(2, 3))
    return y


# ---------------------------------------------------------------------------------------------
# max pooling
# ---------------------------------------------------------------------------------------------

# (x shape, kernel, stride, padding)
MAX_CASES = [
    ((2, 3, 8, 6), (2, 2), (2, 2), (0, 0)),  # the CNN's pool: non-overlapping
    ((2, 2, 7, 7), (2, 2), (2, 2), (0, 0)),  # odd size: the last row and column are dropped
    ((1, 2, 7, 9), (3, 3), (2, 2), (1, 1)),  # overlapping, padded, batch 1
    ((2, 1, 6, 5), (3, 2), (1, 2), (1, 1)),  # non-square kernel and stride
    ((1, 1, 9, 8), (5, 5), (2, 3), (2, 2)),  # kernel 5, padding 2
    ((2, 2, 5, 4), (3, 3), (1, 1), (0, 0)),  # stride 1: each input in up to 9 windows
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, stride, padding", MAX_CASES)
def test_max_pool_forward_matches_naive_loops(dtype, shape, kernel, stride, padding):
    x = rng.standard_normal(shape).astype(dtype)
    y = F.max_pool2d(Tensor(x), kernel, stride, padding)
    assert y.dtype == dtype
    np.testing.assert_array_equal(y.data, naive_max_pool(x, kernel, stride, padding))


@pytest.mark.parametrize("shape, kernel, stride, padding", MAX_CASES)
def test_max_pool_gradcheck(shape, kernel, stride, padding):
    err = gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding), [distinct(shape)], seed=4)
    assert record("max_pool2d", err) < 1e-6


def test_max_pool_vjp_check_cnn_sized():
    fn = lambda x: F.max_pool2d(x, 2)  # noqa: E731
    err = vjp_check(fn, [distinct((4, 32, 28, 28))], seed=6)
    assert record("max_pool2d (vjp, 4x32x28x28)", err) < 1e-6


def test_ties_send_the_gradient_to_the_first_maximum():
    # After a ReLU whole windows are 0: the gradient must go to the top-left zero, as in torch.
    x = Tensor(np.zeros((1, 1, 4, 4)), requires_grad=True)
    F.max_pool2d(x, 2).backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    expected = np.zeros((4, 4))
    expected[0, 0], expected[0, 2], expected[2, 0], expected[2, 2] = 1, 2, 3, 4
    np.testing.assert_array_equal(x.grad[0, 0], expected)

    x = Tensor(np.array([[[[1.0, 3.0], [3.0, 2.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).backward(np.ones((1, 1, 1, 1)))
    np.testing.assert_array_equal(x.grad[0, 0], [[0, 1], [0, 0]])


def test_overlapping_windows_accumulate():
    # The 9 at the centre is the maximum of all four 2x2 windows (stride 1): it gets the sum.
    x = Tensor(
        np.array([[[[1.0, 2.0, 3.0], [4.0, 9.0, 5.0], [6.0, 7.0, 8.0]]]]), requires_grad=True
    )
    dy = np.array([[[[1.0, 10.0], [100.0, 1000.0]]]])
    F.max_pool2d(x, 2, stride=1).backward(dy)
    expected = np.zeros((3, 3))
    expected[1, 1] = 1111.0
    np.testing.assert_array_equal(x.grad[0, 0], expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_dtype_is_preserved(dtype):
    x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(dtype), requires_grad=True)
    y = nn.MaxPool2d(2)(x)
    assert y.dtype == dtype and y.shape == (2, 3, 3, 3)
    y.backward(np.ones(y.shape, dtype=dtype))
    assert x.grad.dtype == dtype


def test_max_pool_keeps_its_indices_only_for_a_gradient():
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    contexts = {}
    for needs in (True, False):
        ctx = contexts[needs] = Context(MaxPool2dFunction, ())
        ctx.needs_input_grad = (needs,)
        y = MaxPool2dFunction.forward(ctx, x, (2, 2), (2, 2), (0, 0))
        np.testing.assert_array_equal(y, x.reshape(2, 3, 3, 2, 3, 2).max((3, 5)))
    assert contexts[True].argmax.shape == (2, 3, 3, 3) and contexts[False].argmax is None
    with no_grad():
        np.testing.assert_array_equal(nn.MaxPool2d(2)(Tensor(x)).data, y)


def test_max_pool_module_defaults_and_repr():
    pool = nn.MaxPool2d(2)
    assert pool.stride == 2
    assert repr(pool) == "MaxPool2d(kernel_size=2, stride=2, padding=0)"
    assert nn.MaxPool2d(3, stride=1, padding=1)(Tensor(np.zeros((1, 1, 5, 5)))).shape == (
        1,
        1,
        5,
        5,
    )


# ---------------------------------------------------------------------------------------------
# average pooling
# ---------------------------------------------------------------------------------------------


def naive_avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """One window at a time, with the output size and divisor written out as in PyTorch's
    CPU kernel (aten/src/ATen/native/cpu/AvgPoolKernel.cpp)."""
    N, C, H, W = x.shape
    (KH, KW), (sh, sw), (ph, pw) = kernel, stride, padding

    def out_size(size, k, s, p):
        extra = s - 1 if ceil_mode else 0
        out = (size + 2 * p - k + extra) // s + 1
        if ceil_mode and (out - 1) * s >= size + p:
            out -= 1
        return out

    OH, OW = out_size(H, KH, sh, ph), out_size(W, KW, sw, pw)
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            h0, w0 = i * sh - ph, j * sw - pw
            h1, w1 = min(h0 + KH, H + ph), min(w0 + KW, W + pw)
            pool_size = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            if divisor_override:
                divisor = divisor_override
            elif count_include_pad:
                divisor = pool_size
            else:
                divisor = (h1 - h0) * (w1 - w0)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / divisor
    return y


# (x shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_POOL_CASES = [
    ((2, 3, 8, 6), (2, 2), (2, 2), (0, 0), False, True, None),  # non-overlapping
    ((2, 2, 7, 7), (2, 2), (2, 2), (0, 0), False, True, None),  # odd: the last row is dropped
    ((2, 2, 7, 7), (2, 2), (2, 2), (0, 0), True, True, None),  # ... kept, as a half window
    ((1, 2, 7, 9), (3, 3), (2, 2), (1, 1), False, True, None),  # padding counts in the divisor
    ((1, 2, 7, 9), (3, 3), (2, 2), (1, 1), False, False, None),  # ... or does not
    ((1, 2, 6, 6), (3, 3), (2, 2), (1, 1), True, True, None),  # overhang past the padding
    ((1, 2, 6, 6), (3, 3), (2, 2), (1, 1), True, False, None),
    ((2, 1, 5, 5), (2, 2), (2, 2), (1, 1), True, True, None),  # a last window that would start
    ((2, 1, 5, 5), (2, 2), (2, 2), (1, 1), True, False, None),  # in the right padding is cut
    ((2, 1, 6, 5), (3, 2), (1, 2), (1, 1), True, False, None),  # non-square
    ((2, 2, 5, 4), (3, 3), (1, 1), (0, 0), False, True, None),  # stride 1: heavy overlap
    ((1, 2, 7, 6), (3, 3), (2, 2), (1, 1), True, True, 4),  # divisor_override
    ((1, 1, 9, 8), (5, 5), (3, 2), (2, 2), True, False, None),  # kernel 5, padding 2
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", AVG_POOL_CASES)
def test_avg_pool_forward_matches_naive_loops(dtype, case):
    shape, kernel, stride, padding = case[:4]  # then ceil_mode, count_include_pad, divisor
    x = rng.standard_normal(shape).astype(dtype)
    y = F.avg_pool2d(Tensor(x), kernel, stride, padding, *case[4:])
    expected = naive_avg_pool(x, kernel, stride, padding, *case[4:])
    assert y.dtype == dtype and y.shape == expected.shape
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y.data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", AVG_POOL_CASES)
def test_avg_pool_gradcheck(case):
    shape, kernel, stride, padding = case[:4]

    def fn(x):
        return F.avg_pool2d(x, kernel, stride, padding, *case[4:])

    assert record("avg_pool2d", gradcheck(fn, [rng.standard_normal(shape)], seed=5)) < 1e-6


def test_avg_pool_ceil_mode_output_sizes_follow_torch():
    """5 wide, kernel 2, stride 2, padding 1: ceil((5 + 2 - 2) / 2) + 1 = 4 windows would put the
    last one at 6 >= 5 + 1, wholly in the right padding, so there are 3; 6 wide keeps 4."""
    x5, x6 = Tensor(np.ones((1, 1, 5, 5))), Tensor(np.ones((1, 1, 6, 6)))
    assert F.avg_pool2d(x5, 2, 2, 1).shape == (1, 1, 3, 3)
    assert F.avg_pool2d(x5, 2, 2, 1, ceil_mode=True).shape == (1, 1, 3, 3)
    assert F.avg_pool2d(x6, 2, 2, 1).shape == (1, 1, 4, 4)
    assert F.avg_pool2d(x6, 3, 2, 0, ceil_mode=True).shape == (1, 1, 3, 3)
    # All ones: 1 everywhere without the padding in the divisor; with it, a corner window
    # (1 of its 4 positions inside x) gives 1/4, and ceil_mode's overhang is not counted.
    assert np.all(F.avg_pool2d(x5, 2, 2, 1, count_include_pad=False).data == 1.0)
    assert F.avg_pool2d(x5, 2, 2, 1).data[0, 0, 0, 0] == 0.25
    y = F.avg_pool2d(x6, 3, 2, 0, ceil_mode=True).data[0, 0]
    assert y[2, 2] == 1.0  # a 2x2 window past the edge divides by 4, not 9


def test_avg_pool_backward_spreads_dy_over_each_window():
    x = Tensor(np.zeros((1, 1, 4, 4)), requires_grad=True)
    y = F.avg_pool2d(x, 3, stride=1)
    y.backward(np.array([[[[9.0, 18.0], [0.0, 0.0]]]]))
    expected = np.array([[1, 3, 3, 2], [1, 3, 3, 2], [1, 3, 3, 2], [0, 0, 0, 0]], dtype=float)
    np.testing.assert_array_equal(x.grad[0, 0], expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_dtype_is_preserved(dtype):
    x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(dtype), requires_grad=True)
    y = nn.AvgPool2d(2, padding=1, ceil_mode=True)(x)
    assert y.dtype == dtype and y.shape == (2, 3, 4, 4)
    y.backward(np.ones(y.shape, dtype=dtype))
    assert x.grad.dtype == dtype and x.grad.shape == x.shape


def test_avg_pool_module_defaults_and_repr():
    pool = nn.AvgPool2d(2)
    assert pool.stride == 2 and pool.count_include_pad and not pool.ceil_mode
    assert repr(pool) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"
    x = Tensor(rng.standard_normal((1, 2, 5, 5)))
    module = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False, divisor_override=2)
    expected = F.avg_pool2d(x, 3, 2, 1, True, False, 2)
    np.testing.assert_array_equal(module(x).data, expected.data)


MAX_AND_AVG = [
    ("max_pool2d", F.max_pool2d, nn.MaxPool2d),
    ("avg_pool2d", F.avg_pool2d, nn.AvgPool2d),
]


@pytest.mark.parametrize("name, pool, module", MAX_AND_AVG, ids=["max", "avg"])
def test_max_and_avg_pool_errors(name, pool, module):
    with pytest.raises(
        ValueError, match=rf"{module.__name__} expects a 4-D input \(N, C, H, W\), got 2-D"
    ):
        module(2)(Tensor(np.zeros((4, 4))))
    with pytest.raises(
        ValueError, match=f"{name}: padding must be between 0 and half the kernel size"
    ):
        pool(Tensor(np.zeros((1, 1, 6, 6))), 2, padding=2)
    with pytest.raises(ValueError, match=rf"{name}: output size \(0, 2\) is too small"):
        pool(Tensor(np.zeros((1, 1, 2, 6))), 3, stride=2, padding=0)
    with pytest.raises(ValueError, match=f"{name}: kernel_size and stride must be at least 1"):
        pool(Tensor(np.zeros((1, 1, 4, 4))), 2, stride=0)


def test_avg_pool_divisor_override_must_not_be_zero():
    with pytest.raises(ValueError, match="avg_pool2d: divisor_override must not be zero"):
        F.avg_pool2d(Tensor(np.zeros((1, 1, 4, 4))), 2, divisor_override=0)


# ---------------------------------------------------------------------------------------------
# adaptive average pooling
# ---------------------------------------------------------------------------------------------

AVG_CASES = [
    ((2, 3, 7, 7), (1, 1)),  # the CNN's global average
    ((1, 2, 5, 6), (1, 1)),
    ((2, 2, 8, 6), (2, 3)),  # windows that tile exactly
    ((1, 2, 7, 5), (3, 2)),  # overlapping windows (7 / 3, 5 / 2 not whole)
    ((2, 1, 3, 4), (5, 6)),  # more outputs than inputs: windows of one element repeat
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, out", AVG_CASES)
def test_adaptive_avg_pool_forward_matches_naive(dtype, shape, out):
    x = rng.standard_normal(shape).astype(dtype)
    y = F.adaptive_avg_pool2d(Tensor(x), out)
    assert y.dtype == dtype and y.shape == (*shape[:2], *out)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y.data, naive_adaptive_avg_pool(x, out), rtol=tol, atol=tol)


@pytest.mark.parametrize("shape, out", AVG_CASES)
def test_adaptive_avg_pool_gradcheck(shape, out):
    err = gradcheck(lambda x: F.adaptive_avg_pool2d(x, out), [rng.standard_normal(shape)], seed=8)
    assert record("adaptive_avg_pool2d", err) < 1e-6


def test_adaptive_avg_pool_module_int_and_none_sizes():
    x = Tensor(rng.standard_normal((2, 4, 7, 6)).astype(np.float32))
    pool = nn.AdaptiveAvgPool2d(1)
    assert repr(pool) == "AdaptiveAvgPool2d(output_size=1)"
    # float32 sums of 42 unit-scale values: an absolute bound too, for means close to 0
    expected = x.data.mean(axis=(2, 3))
    np.testing.assert_allclose(pool(x).data[:, :, 0, 0], expected, rtol=1e-6, atol=1e-7)
    assert nn.AdaptiveAvgPool2d((None, 2))(x).shape == (2, 4, 7, 2)


def test_adaptive_avg_pool_errors():
    with pytest.raises(ValueError, match=r"AdaptiveAvgPool2d expects a 4-D input"):
        nn.AdaptiveAvgPool2d(1)(Tensor(np.zeros((4, 7, 7))))
    with pytest.raises(ValueError, match="output_size must be positive"):
        F.adaptive_avg_pool2d(Tensor(np.zeros((1, 1, 4, 4))), 0)


def test_pools_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = distinct((2, 3, 9, 7))
    for ours, theirs in [
        (lambda a: F.max_pool2d(a, 3, 2, 1), lambda a: tf.max_pool2d(a, 3, 2, 1)),
        (lambda a: F.adaptive_avg_pool2d(a, (4, 3)), lambda a: tf.adaptive_avg_pool2d(a, (4, 3))),
    ]:
        a = Tensor(x, requires_grad=True)
        t = torch.tensor(x, requires_grad=True)
        y, yt = ours(a), theirs(t)
        dy = rng.standard_normal(y.shape)
        y.backward(dy)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-12, atol=1e-12)


teardown_module = GRAD_ERRORS.print_table
