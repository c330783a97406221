"""conv2d and Conv2d: a naive nested-loop forward, gradient checks of x, weight and bias, the
errors for bad input, dtypes and PyTorch's default initialisation; then groups and dilation
(their own path, with dilated im2col and col2im kernels checked against their NumPy twins).

The largest relative gradient error of each check is recorded in GRAD_ERRORS and printed at
the end of the module with `pytest -s`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import scratchnet.nn.functional as F
from scratchnet import Tensor, nn, no_grad
from scratchnet.kernels import im2col as ic
from scratchnet.nn.conv import Conv2dFunction, GroupedConv2dFunction
from scratchnet.nn.winograd import Winograd3x3Function
from tests.gradcheck import ErrorLog, gradcheck, vjp_check
from tests.reference_ops import naive_conv2d

rng = np.random.default_rng(1234)
GRAD_ERRORS = ErrorLog()
record = GRAD_ERRORS.record


# (x shape, weight shape, stride, padding)
CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), (1, 1)),  # odd, non-square, "same" padding
    ((1, 2, 8, 7), (3, 2, 3, 3), (2, 2), (0, 0)),  # batch 1, stride 2
    ((2, 1, 9, 8), (2, 1, 5, 5), (2, 2), (2, 2)),  # kernel 5, padding 2
    ((1, 3, 5, 6), (2, 3, 1, 1), (1, 1), (0, 0)),  # 1 x 1 convolution
    ((2, 2, 6, 9), (3, 2, 3, 5), (1, 2), (1, 2)),  # non-square kernel, stride and padding
    ((1, 2, 4, 4), (2, 2, 3, 3), (1, 1), (2, 2)),  # padding wider than the kernel's half
    # K = C * KH * KW >= SMALL_K: one product per chunk; at batch 1 it is written into y
    ((1, 5, 6, 7), (4, 5, 3, 3), (1, 1), (1, 1)),
    ((1, 4, 7, 6), (3, 4, 3, 3), (2, 1), (0, 1)),
    ((3, 5, 6, 5), (4, 5, 3, 3), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, padding", CASES)
def test_forward_matches_naive_loops(dtype, xs, ws, stride, padding):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y = F.conv2d(Tensor(x), Tensor(w), Tensor(b), stride=stride, padding=padding)
    assert y.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.data, naive_conv2d(x, w, b, stride, padding), rtol=tol, atol=tol)
    y_nobias = F.conv2d(Tensor(x), Tensor(w), stride=stride, padding=padding)
    expected = naive_conv2d(x, w, None, stride, padding)
    np.testing.assert_allclose(y_nobias.data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("xs, ws, stride, padding", CASES)
def test_gradcheck_x_weight_bias(xs, ws, stride, padding):
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])]

    def fn(x, w, b):
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    err = record("conv2d", gradcheck(fn, arrays, seed=3))
    assert err < 1e-6


def test_gradcheck_without_bias():
    arrays = [rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 2))]
    err = record("conv2d", gradcheck(lambda x, w: F.conv2d(x, w, stride=(2, 1), padding=1), arrays))
    assert err < 1e-6


def test_vjp_check_cnn_sized_layer():
    # conv2 of the MNIST CNN at batch 4: too big for full differences, fine for directions.
    arrays = [
        rng.standard_normal((4, 32, 14, 14)),
        rng.standard_normal((64, 32, 3, 3)) * 0.1,
        rng.standard_normal(64),
    ]
    err = vjp_check(lambda x, w, b: F.conv2d(x, w, b, padding=1), arrays, seed=5)
    assert record("conv2d (vjp, 4x32x14x14)", err) < 1e-6


def test_first_layer_skips_dx():
    x = Tensor(rng.standard_normal((2, 1, 6, 6)))  # the image: no gradient wanted
    conv = nn.Conv2d(1, 2, 3, padding=1).double()
    F.conv2d(x, conv.weight, conv.bias, padding=1).backward(rng.standard_normal((2, 2, 6, 6)))
    assert x.grad is None
    assert conv.weight.grad.shape == (2, 1, 3, 3) and conv.bias.grad.shape == (2,)


@pytest.mark.parametrize("batch", [3, 40])  # one chunk, and one per thread
def test_first_layer_gradients_equal_the_general_path(batch):
    """Without dx, a layer with few columns (C * KH * KW < SMALL_K) takes per-sample products
    for dweight and dbias: they must equal the path that also computes dx."""
    x = rng.standard_normal((batch, 1, 9, 8))
    weight, bias = rng.standard_normal((4, 1, 3, 3)), rng.standard_normal(4)
    dy = rng.standard_normal((batch, 4, 9, 8))
    grads = []
    for x_needs_grad in (False, True):
        w, b = Tensor(weight, requires_grad=True), Tensor(bias, requires_grad=True)
        F.conv2d(Tensor(x, requires_grad=x_needs_grad), w, b, padding=1).backward(dy)
        grads.append((w.grad, b.grad))
    np.testing.assert_allclose(grads[0][0], grads[1][0], rtol=1e-12)
    np.testing.assert_allclose(grads[0][1], grads[1][1], rtol=1e-12)


def test_no_grad_builds_no_graph():
    conv = nn.Conv2d(2, 3, 3)
    with no_grad():
        y = conv(Tensor(rng.standard_normal((1, 2, 5, 5)).astype(np.float32)))
    assert not y.requires_grad and y.is_leaf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1).to(dtype)
    x = Tensor(rng.standard_normal((2, 2, 7, 7)).astype(dtype), requires_grad=True)
    y = conv(x)
    assert y.dtype == dtype and y.shape == (2, 3, 4, 4)
    y.backward(rng.standard_normal(y.shape).astype(dtype))
    for t in (x, conv.weight, conv.bias):
        assert t.grad.dtype == dtype and t.grad.shape == t.shape


def test_default_init_follows_torch():
    conv = nn.Conv2d(16, 8, (3, 5))
    fan_in = 16 * 3 * 5
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) reduces to this bound
    assert conv.weight.shape == (8, 16, 3, 5) and conv.bias.shape == (8,)
    assert conv.weight.dtype == np.float32
    assert np.abs(conv.weight.data).max() <= bound
    assert np.abs(conv.weight.data).max() > 0.9 * bound  # uniform, so it reaches the edge
    assert np.abs(conv.bias.data).max() <= bound
    # U(-b, b) has standard deviation b / sqrt(3).
    assert abs(conv.weight.data.std() - bound / math.sqrt(3)) < 0.1 * bound


def test_module_attributes_state_dict_and_repr():
    conv = nn.Conv2d(1, 32, 3, padding=1)
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and conv.padding == (1, 1)
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert repr(conv) == "Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    no_bias = nn.Conv2d(3, 4, 1, bias=False)
    assert no_bias.bias is None and list(no_bias.state_dict()) == ["weight"]
    assert "bias=False" in repr(no_bias)
    y = no_bias(Tensor(np.ones((1, 3, 2, 2), dtype=np.float32)))
    np.testing.assert_allclose(y.data[0, :, 0, 0], no_bias.weight.data.sum(axis=(1, 2, 3)))


def test_errors_for_bad_input():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d expects a 4-D input \(N, C, H, W\), got 3-D"):
        conv(Tensor(np.zeros((3, 8, 8), dtype=np.float32)))
    with pytest.raises(
        ValueError, match=r"Conv2d expected 3 input channels, got 1 \(input shape \(2, 1, 5, 5\)"
    ):
        conv(Tensor(np.zeros((2, 1, 5, 5), dtype=np.float32)))
    with pytest.raises(ValueError, match=r"output size \(0, 0\) is too small"):
        conv(Tensor(np.zeros((1, 3, 2, 2), dtype=np.float32)))
    w = Tensor(np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="conv2d expected 3 input channels, got 2"):
        F.conv2d(Tensor(np.zeros((1, 2, 5, 5))), w)
    with pytest.raises(ValueError, match="stride must be at least 1"):
        F.conv2d(Tensor(np.zeros((1, 3, 5, 5))), w, stride=0)
    with pytest.raises(ValueError, match="padding must be an int or a pair of ints"):
        F.conv2d(Tensor(np.zeros((1, 3, 5, 5))), w, padding=(1, 1, 1))


def test_matches_torch():
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 9, 8))
    w = rng.standard_normal((4, 3, 3, 5))
    b = rng.standard_normal(4)
    dy = rng.standard_normal((2, 4, 5, 2))
    ours = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    F.conv2d(*ours, stride=2, padding=(1, 0)).backward(dy)
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = torch.nn.functional.conv2d(*theirs, stride=2, padding=(1, 0))
    y.backward(torch.tensor(dy))
    np.testing.assert_allclose(F.conv2d(*ours, stride=2, padding=(1, 0)).data, y.detach(), 1e-12)
    for a, t in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, t.grad.numpy(), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# groups and dilation
# ---------------------------------------------------------------------------------------------


def naive_grouped_conv2d(x, weight, bias, stride, padding, dilation, groups):
    """y[n, o] = bias[o] + sum over the taps of o's group's channels, one entry at a time."""
    N, _, H, W = x.shape
    OC, Cg, KH, KW = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    y = np.zeros((N, OC, OH, OW))
    for n, o, i, j in np.ndindex(N, OC, OH, OW):
        g = o // (OC // groups)
        total = 0.0 if bias is None else float(bias[o])
        for c, kh, kw in np.ndindex(Cg, KH, KW):
            ih, iw = i * sh - ph + kh * dh, j * sw - pw + kw * dw
            if 0 <= ih < H and 0 <= iw < W:
                total += float(x[n, g * Cg + c, ih, iw]) * float(weight[o, c, kh, kw])
        y[n, o, i, j] = total
    return y


# (x shape, weight shape, stride, padding, dilation, groups)
GROUPED_CASES = [
    ((2, 4, 6, 7), (6, 2, 3, 3), (1, 1), (1, 1), (1, 1), 2),  # two groups
    ((2, 3, 6, 5), (3, 1, 3, 3), (1, 1), (1, 1), (1, 1), 3),  # depthwise
    ((1, 4, 7, 7), (8, 1, 3, 3), (2, 2), (1, 1), (1, 1), 4),  # depthwise, multiplier 2
    ((2, 2, 7, 8), (3, 2, 3, 3), (1, 1), (2, 2), (2, 2), 1),  # dilated, "same" size
    ((1, 2, 9, 8), (2, 2, 3, 2), (2, 1), (1, 0), (3, 2), 1),  # dilation (3, 2), strided
    ((2, 6, 8, 7), (6, 2, 3, 3), (1, 2), (2, 1), (2, 1), 3),  # groups and dilation
    ((1, 4, 5, 5), (4, 2, 1, 1), (1, 1), (0, 0), (1, 1), 2),  # grouped 1x1
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", GROUPED_CASES)
def test_grouped_and_dilated_forward_matches_naive_loops(
    dtype, xs, ws, stride, padding, dilation, groups
):
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    b = rng.standard_normal(ws[0]).astype(dtype)
    y = F.conv2d(
        Tensor(x), Tensor(w, requires_grad=True), Tensor(b), stride, padding, dilation, groups
    )
    assert y.dtype == dtype and y.grad_fn.fn is GroupedConv2dFunction
    expected = naive_grouped_conv2d(x, w, b, stride, padding, dilation, groups)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y.data, expected, rtol=tol, atol=tol)
    y_nobias = F.conv2d(Tensor(x), Tensor(w), None, stride, padding, dilation, groups)
    expected = naive_grouped_conv2d(x, w, None, stride, padding, dilation, groups)
    np.testing.assert_allclose(y_nobias.data, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", GROUPED_CASES)
def test_grouped_and_dilated_gradcheck(xs, ws, stride, padding, dilation, groups):
    arrays = [rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])]

    def fn(x, w, b):
        return F.conv2d(x, w, b, stride, padding, dilation, groups)

    err = record("conv2d, groups/dilation", gradcheck(fn, arrays, seed=4))
    assert err < 1e-6

    def no_bias(x, w):
        return F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)

    assert record("conv2d, groups/dilation", gradcheck(no_bias, arrays[:2], seed=6)) < 1e-6


def test_grouped_gradient_of_the_weight_alone():
    """Only the weight requires a gradient (a frozen input): dx is skipped, dweight is right."""
    x = rng.standard_normal((2, 4, 6, 6))
    w = Tensor(rng.standard_normal((4, 1, 3, 3)), requires_grad=True)
    y = F.conv2d(Tensor(x), w, padding=1, dilation=2, groups=4)
    dy = rng.standard_normal(y.shape)
    y.backward(dy)
    err = gradcheck(lambda w_: F.conv2d(Tensor(x), w_, padding=1, dilation=2, groups=4), [w.data])
    assert record("conv2d, groups/dilation", err) < 1e-6
    full = Tensor(w.data, requires_grad=True)
    xt = Tensor(x, requires_grad=True)
    F.conv2d(xt, full, padding=1, dilation=2, groups=4).backward(dy)
    np.testing.assert_allclose(w.grad, full.grad, rtol=1e-12)


# (x shape, kernel, stride, padding, dilation)
DILATED_KERNEL_CASES = [
    ((2, 3, 9, 8), (3, 3), (1, 1), (2, 2), (2, 2)),
    ((1, 2, 11, 10), (3, 2), (2, 1), (1, 0), (3, 4)),
    ((2, 1, 8, 9), (5, 5), (1, 2), (4, 4), (2, 2)),
    ((1, 2, 6, 6), (1, 1), (1, 1), (0, 0), (3, 3)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel, stride, padding, dilation", DILATED_KERNEL_CASES)
def test_dilated_im2col_and_col2im_match_numpy(dtype, shape, kernel, stride, padding, dilation):
    x = rng.standard_normal(shape).astype(dtype)
    args = (*kernel, *stride, *padding, *dilation)
    cols = ic.im2col(x, *args)
    np.testing.assert_array_equal(cols, ic.im2col_reference(x, *args))
    dcols = rng.standard_normal(cols.shape).astype(dtype)
    dx = ic.col2im(dcols, *shape, *args)
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(dx, ic.col2im_reference(dcols, *shape, *args), rtol=tol, atol=tol)
    # col2im is im2col's adjoint: <im2col(x), c> = <x, col2im(c)>.
    assert np.isclose(
        np.sum(cols * dcols), np.sum(x * dx), rtol=1e-4 if dtype == np.float32 else 1e-12
    )


def test_dilated_output_size():
    assert ic.output_size(9, 3, 1, 0, dilation=2) == 5  # the kernel spans 5 inputs
    assert ic.output_size(9, 3, 1, 2, dilation=2) == 9
    assert ic.output_size(10, 3, 2, 1, dilation=3) == 3


def test_groups_1_and_dilation_1_keep_the_fast_paths():
    x = Tensor(rng.standard_normal((16, 8, 6, 6)), requires_grad=True)  # so that y has a _ctx
    w = Tensor(rng.standard_normal((8, 8, 3, 3)))
    assert F.conv2d(x, w, padding=1).grad_fn.fn is Winograd3x3Function
    assert F.conv2d(x, w, padding=1, dilation=1, groups=1).grad_fn.fn is Winograd3x3Function
    assert F.conv2d(x, w, padding=1, algorithm="im2col").grad_fn.fn is Conv2dFunction
    assert F.conv2d(x, w, padding=2, dilation=2).grad_fn.fn is GroupedConv2dFunction
    half = Tensor(rng.standard_normal((8, 4, 3, 3)))
    assert F.conv2d(x, half, padding=1, groups=2).grad_fn.fn is GroupedConv2dFunction


def test_grouped_module_weight_shape_init_state_dict_and_repr():
    conv = nn.Conv2d(6, 9, 3, padding=2, dilation=2, groups=3, bias=False)
    assert conv.weight.shape == (9, 2, 3, 3) and conv.bias is None
    assert list(conv.state_dict()) == ["weight"]
    bound = 1 / math.sqrt(2 * 3 * 3)  # fan_in = in_channels / groups * KH * KW
    assert 0.9 * bound < np.abs(conv.weight.data).max() <= bound
    assert repr(conv) == (
        "Conv2d(6, 9, kernel_size=(3, 3), stride=(1, 1), padding=(2, 2), dilation=(2, 2), "
        "groups=3, bias=False)"
    )
    y = conv(Tensor(rng.standard_normal((2, 6, 7, 7)).astype(np.float32)))
    assert y.shape == (2, 9, 7, 7) and y.dtype == np.float32
    depthwise = nn.Conv2d(4, 4, 3, groups=4)
    assert depthwise.weight.shape == (4, 1, 3, 3) and "groups=4" in repr(depthwise)


def test_grouped_and_dilated_errors():
    with pytest.raises(ValueError, match=r"Conv2d: in_channels \(6\) and out_channels \(4\) must"):
        nn.Conv2d(6, 4, 3, groups=3)
    with pytest.raises(ValueError, match="must both be divisible by groups"):
        nn.Conv2d(4, 6, 3, groups=0)
    x = Tensor(np.zeros((1, 4, 6, 6)))
    with pytest.raises(
        ValueError,
        match=r"conv2d expected 6 input channels \(3 in each of 2 groups\), got 4 "
        r"\(input shape \(1, 4, 6, 6\), weight shape \(4, 3, 3, 3\)\)",
    ):
        F.conv2d(x, Tensor(np.zeros((4, 3, 3, 3))), groups=2)
    with pytest.raises(ValueError, match="out_channels 3 is not divisible by groups 2"):
        F.conv2d(x, Tensor(np.zeros((3, 2, 3, 3))), groups=2)
    with pytest.raises(ValueError, match="groups must be a positive integer, got 0"):
        F.conv2d(x, Tensor(np.zeros((4, 4, 3, 3))), groups=0)
    with pytest.raises(ValueError, match=r"dilation must be at least 1, got \(0, 1\)"):
        F.conv2d(x, Tensor(np.zeros((4, 4, 3, 3))), dilation=(0, 1))
    with pytest.raises(ValueError, match=r"output size \(0, 0\) is too small.*dilation \(3, 3\)"):
        F.conv2d(x, Tensor(np.zeros((4, 4, 3, 3))), dilation=3)
    with pytest.raises(ValueError, match="winograd algorithm needs groups=1 and dilation 1"):
        F.conv2d(x, Tensor(np.zeros((4, 2, 3, 3))), groups=2, algorithm="winograd")


teardown_module = GRAD_ERRORS.print_table
