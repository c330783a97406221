"""Convolution (grouped and dilated too), max, average and adaptive pooling, batch norm and the
containers against PyTorch: forward, the gradient of every input, for batch norm the running
statistics it updates, and for the containers the state_dict keys.

float64 must agree to 1e-10 and float32 to 1e-5 (relative to the largest value compared).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as TF  # noqa: E402

import scratchnet.nn.functional as F  # noqa: E402
from scratchnet import Tensor, nn  # noqa: E402
from tests.gradcheck import relative_error  # noqa: E402
from tests.parity.compare import (  # noqa: E402
    DTYPES,
    TOLERANCE,
    check_close,
    dtype_name,
    forward_backward,
    slug,
)


def seeded(text: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(text.encode()))


def distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values without ties (a shuffled, jittered grid), so every window has one maximum."""
    n = int(np.prod(shape))
    grid = (rng.permutation(n) + rng.uniform(0.1, 0.9, n)) / n * 4.0 - 2.0
    return grid.reshape(shape)


def check(table: Any, op: str, dtype: Any, errors: dict[str, float]) -> None:
    name = dtype_name(dtype)
    check_close(table, op, name, errors, TOLERANCE[name])


def check_conv2d(
    table: Any,
    row: str,
    dtype: Any,
    case: tuple[str, tuple[int, ...], tuple[int, ...], bool],
    **options: Any,
) -> None:
    """F.conv2d against TF.conv2d with the same options, on inputs seeded by the description."""
    description, x_shape, w_shape, has_bias = case
    rng = seeded(description)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape)]
    if has_bias:
        arrays.append(rng.standard_normal(w_shape[0]))
    arrays = [a.astype(dtype) for a in arrays]

    def ours(x, w, b=None):
        return F.conv2d(x, w, b, **options)

    def theirs(x, w, b=None):
        return TF.conv2d(x, w, b, **options)

    check(table, row, dtype, forward_backward(ours, theirs, arrays))


def check_module(table: Any, row: str, ours: Any, theirs: Any, x: np.ndarray) -> None:
    """Our module, given torch's weights by state_dict key, gives torch's output on x."""
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    error = relative_error(ours(Tensor(x)).data, expected)
    table.record(row, dtype_name(x.dtype), error)
    assert error < TOLERANCE[dtype_name(x.dtype)]


# ---------------------------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------------------------

# (description, x shape, weight shape, bias, stride, padding)
CONV_CASES = [
    ("3x3 pad 1 (the CNN's layers)", (4, 3, 8, 8), (5, 3, 3, 3), True, 1, 1),
    ("3x3 no padding", (2, 2, 7, 9), (4, 2, 3, 3), True, 1, 0),
    ("1x1", (3, 4, 5, 5), (6, 4, 1, 1), True, 1, 0),
    ("1x1 stride 2, no bias", (2, 3, 6, 7), (2, 3, 1, 1), False, 2, 0),
    ("5x5 pad 2", (2, 2, 9, 8), (3, 2, 5, 5), True, 1, 2),
    ("5x5 stride 2 pad 1", (2, 3, 11, 10), (4, 3, 5, 5), True, 2, 1),
    ("3x3 stride 2 pad 2, no bias", (1, 2, 6, 6), (3, 2, 3, 3), False, 2, 2),
    ("3x2 kernel, (2, 1) stride, (1, 0) pad", (2, 2, 7, 6), (3, 2, 3, 2), True, (2, 1), (1, 0)),
    ("batch of 1, one channel", (1, 1, 28, 28), (4, 1, 3, 3), True, 1, 1),
    ("kernel = input", (2, 3, 4, 4), (5, 3, 4, 4), True, 1, 0),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda case: slug(case[0]))
def test_conv2d_matches_torch(case, dtype, parity_errors):
    stride, padding = case[4:]
    check_conv2d(parity_errors, "conv2d", dtype, case[:4], stride=stride, padding=padding)


def test_conv2d_module_matches_torch_module(parity_errors):
    """nn.Conv2d with torch's weights gives torch's output (module options are passed on)."""
    rng = seeded("conv module")
    ours = nn.Conv2d(3, 4, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2))
    theirs = torch.nn.Conv2d(3, 4, kernel_size=(3, 5), stride=(2, 1), padding=(1, 2))
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float32)
    check_module(parity_errors, "conv2d", ours, theirs, x)


# (description, x shape, weight shape, bias, stride, padding, dilation, groups)
GROUPED_CONV_CASES = [
    ("2 groups", (2, 4, 7, 6), (6, 2, 3, 3), True, 1, 1, 1, 2),
    ("depthwise", (2, 5, 8, 8), (5, 1, 3, 3), True, 1, 1, 1, 5),
    ("depthwise x2, stride 2, no bias", (2, 3, 9, 7), (6, 1, 3, 3), False, 2, 1, 1, 3),
    ("dilation 2, same size", (2, 3, 9, 9), (4, 3, 3, 3), True, 1, 2, 2, 1),
    (
        "dilation (3, 2), (2, 1) stride",
        (1, 2, 11, 9),
        (3, 2, 3, 2),
        True,
        (2, 1),
        (1, 0),
        (3, 2),
        1,
    ),
    ("groups 3 and dilation 2", (2, 6, 10, 8), (9, 2, 3, 3), True, 1, 2, 2, 3),
    ("grouped 1x1", (3, 4, 5, 5), (8, 2, 1, 1), True, 1, 0, 1, 2),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", GROUPED_CONV_CASES, ids=lambda case: slug(case[0]))
def test_grouped_and_dilated_conv2d_matches_torch(case, dtype, parity_errors):
    stride, padding, dilation, groups = case[4:]
    options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    check_conv2d(parity_errors, "conv2d, groups/dilation", dtype, case[:4], **options)


def test_grouped_conv2d_module_matches_torch_module(parity_errors):
    """nn.Conv2d(groups, dilation) loads torch's weights (the same (out, in / groups, kh, kw)
    shape and keys) and gives torch's output and repr."""
    rng = seeded("grouped conv module")
    kwargs = dict(kernel_size=3, stride=1, padding=2, dilation=2, groups=2)
    ours = nn.Conv2d(4, 6, **kwargs)
    theirs = torch.nn.Conv2d(4, 6, **kwargs)
    assert repr(ours) == repr(theirs)
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    check_module(parity_errors, "conv2d, groups/dilation", ours, theirs, x)


# ---------------------------------------------------------------------------------------------
# max_pool2d
# ---------------------------------------------------------------------------------------------

# (description, x shape, kernel, stride, padding)
POOL_CASES = [
    ("2x2 stride 2 (the CNN's)", (2, 3, 8, 8), 2, 2, 0),
    ("2x2 stride 2, odd input", (2, 2, 7, 9), 2, 2, 0),
    ("3x3 stride 2, overlapping", (2, 2, 9, 9), 3, 2, 0),
    ("3x3 stride 1, overlapping", (1, 2, 6, 7), 3, 1, 0),
    ("3x3 stride 2 pad 1", (2, 2, 8, 7), 3, 2, 1),
    ("(2, 3) kernel, (1, 2) stride", (2, 2, 6, 9), (2, 3), (1, 2), 0),
    ("stride defaults to the kernel", (2, 2, 9, 9), 3, None, 0),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda case: slug(case[0]))
def test_max_pool2d_matches_torch(case, dtype, parity_errors):
    description, x_shape, kernel, stride, padding = case
    x = distinct(seeded(description), x_shape).astype(dtype)

    def ours(a):
        return F.max_pool2d(a, kernel, stride, padding)

    def theirs(a):
        return TF.max_pool2d(a, kernel, stride, padding)

    check(parity_errors, "max_pool2d", dtype, forward_backward(ours, theirs, [x]))


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 1)], ids=["2x2_stride_2", "3x3_stride_1"])
def test_max_pool2d_ties_go_to_the_first_maximum_as_in_torch(kernel, stride, parity_errors):
    """Many ties (values in {0, 1, 2}, and all-zero windows as after a ReLU): both frameworks
    send each window's gradient to the same element."""
    rng = seeded(f"ties {kernel}")
    x = rng.integers(0, 3, (2, 3, 8, 8)).astype(np.float64)
    x[:, :, :4, :4] = 0.0

    def ours(a):
        return F.max_pool2d(a, kernel, stride)

    def theirs(a):
        return TF.max_pool2d(a, kernel, stride)

    check(parity_errors, "max_pool2d", np.float64, forward_backward(ours, theirs, [x]))


# ---------------------------------------------------------------------------------------------
# avg_pool2d
# ---------------------------------------------------------------------------------------------

# (description, x shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_POOL_CASES = [
    ("2x2 stride 2", (2, 3, 8, 8), 2, None, 0, False, True, None),
    ("2x2 stride 2, odd input", (2, 2, 7, 9), 2, 2, 0, False, True, None),
    ("2x2 stride 2, odd input, ceil_mode", (2, 2, 7, 9), 2, 2, 0, True, True, None),
    ("3x3 stride 2 pad 1, padding counted", (2, 2, 8, 7), 3, 2, 1, False, True, None),
    ("3x3 stride 2 pad 1, padding not counted", (2, 2, 8, 7), 3, 2, 1, False, False, None),
    ("3x3 stride 2 pad 1, ceil_mode", (1, 2, 6, 6), 3, 2, 1, True, True, None),
    (
        "3x3 stride 2 pad 1, ceil_mode, padding not counted",
        (1, 2, 6, 6),
        3,
        2,
        1,
        True,
        False,
        None,
    ),
    ("ceil_mode drops a window in the right padding", (2, 1, 5, 5), 2, 2, 1, True, True, None),
    (
        "(2, 3) kernel, (1, 2) stride, (1, 1) pad",
        (2, 2, 6, 9),
        (2, 3),
        (1, 2),
        1,
        True,
        False,
        None,
    ),
    ("3x3 stride 1, overlapping", (1, 2, 6, 7), 3, 1, 0, False, True, None),
    ("divisor_override", (1, 2, 7, 6), 3, 2, 1, True, True, 4),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=lambda case: slug(case[0]))
def test_avg_pool2d_matches_torch(case, dtype, parity_errors):
    description, x_shape, kernel, stride, padding, *options = case
    x = seeded(description).standard_normal(x_shape).astype(dtype)

    def ours(a):
        return F.avg_pool2d(a, kernel, stride, padding, *options)

    def theirs(a):
        return TF.avg_pool2d(a, kernel, stride, padding, *options)

    check(parity_errors, "avg_pool2d", dtype, forward_backward(ours, theirs, [x]))


def test_avg_pool2d_module_matches_torch_module(parity_errors):
    rng = seeded("avg pool module")
    ours = nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    theirs = torch.nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
    assert repr(ours) == repr(theirs)
    x = rng.standard_normal((2, 3, 8, 7)).astype(np.float32)
    check_module(parity_errors, "avg_pool2d", ours, theirs, x)


# ---------------------------------------------------------------------------------------------
# adaptive_avg_pool2d
# ---------------------------------------------------------------------------------------------

# (description, x shape, output size)
ADAPTIVE_CASES = [
    ("global, 7x7 -> 1x1 (the CNN's)", (3, 4, 7, 7), (1, 1)),
    ("int 1", (2, 3, 5, 6), 1),
    ("4x4 -> 2x2", (2, 3, 4, 4), (2, 2)),
    ("7x7 -> 3x3, overlapping windows", (2, 2, 7, 7), (3, 3)),
    ("10x7 -> 4x3", (2, 2, 10, 7), (4, 3)),
    ("output larger than input", (1, 2, 3, 3), (5, 4)),
    ("None keeps a dimension", (2, 2, 6, 5), (None, 2)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=lambda case: slug(case[0]))
def test_adaptive_avg_pool2d_matches_torch(case, dtype, parity_errors):
    description, x_shape, size = case
    x = seeded(description).standard_normal(x_shape).astype(dtype)

    def ours(a):
        return F.adaptive_avg_pool2d(a, size)

    def theirs(a):
        return TF.adaptive_avg_pool2d(a, size)

    check(parity_errors, "adaptive_avg_pool2d", dtype, forward_backward(ours, theirs, [x]))


# ---------------------------------------------------------------------------------------------
# batch_norm
# ---------------------------------------------------------------------------------------------

# (description, x shape, training, momentum, eps)
BN_CASES = [
    ("train 4-D", (8, 3, 5, 4), True, 0.1, 1e-5),
    ("train 4-D, momentum 0.3, eps 1e-3", (4, 2, 3, 3), True, 0.3, 1e-3),
    ("train 2-D", (16, 5), True, 0.1, 1e-5),
    ("train 3-D", (6, 4, 7), True, 0.1, 1e-5),
    # Two values per channel: xhat = +-1 and dx = O(eps / var), a cancellation of O(1) terms.
    # torch's float32 loses ~1e-2 of dx there, so float32 is compared with torch in float64.
    ("train, two values per channel", (2, 3, 1, 1), True, 0.1, 1e-5),
    ("eval 4-D", (8, 3, 5, 4), False, 0.1, 1e-5),
    ("eval 2-D", (16, 5), False, 0.1, 1e-5),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("case", BN_CASES, ids=lambda case: slug(case[0]))
def test_batch_norm_matches_torch(case, dtype, parity_errors):
    """Output, dx, dweight, dbias, and running_mean / running_var after the update."""
    description, x_shape, training, momentum, eps = case
    rng = seeded(description)
    C = x_shape[1]
    x = (rng.standard_normal(x_shape) * 2.0 + 0.5).astype(dtype)
    weight = rng.uniform(0.5, 1.5, C).astype(dtype)
    bias = rng.standard_normal(C).astype(dtype)
    running = [rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype)]
    ours_running = [r.copy() for r in running]
    theirs_running = [torch.from_numpy(r.copy()) for r in running]

    def ours(a, w, b):
        return F.batch_norm(a, *ours_running, w, b, training=training, momentum=momentum, eps=eps)

    def theirs(a, w, b):
        return TF.batch_norm(
            a, *theirs_running, w, b, training=training, momentum=momentum, eps=eps
        )

    exact = np.float64 if x_shape == (2, 3, 1, 1) else None
    if exact is not None:
        theirs_running = [r.double() for r in theirs_running]
    errors = forward_backward(ours, theirs, [x, weight, bias], torch_dtype=exact)
    for name, a, b in zip(("running_mean", "running_var"), ours_running, theirs_running):
        assert a.dtype == dtype, f"{name} changed dtype to {a.dtype}"
        errors[name] = relative_error(a, b.numpy())
    if not training:
        for a, r in zip(ours_running, running):
            np.testing.assert_array_equal(a, r, err_msg="eval mode changed the running stats")
    check(
        parity_errors,
        "batch_norm" if exact is None else "batch_norm, 2 values/channel",
        dtype,
        errors,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_name)
@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum_0.1", "cumulative"])
def test_batchnorm2d_module_over_several_batches(momentum, dtype, parity_errors):
    """nn.BatchNorm2d: three training batches then eval; outputs, grads and every buffer."""
    rng = seeded(f"bn module {momentum}")
    ours = nn.BatchNorm2d(4, momentum=momentum).to(dtype)
    theirs = torch.nn.BatchNorm2d(4, momentum=momentum).to(
        torch.float64 if dtype == np.float64 else torch.float32
    )
    errors: dict[str, float] = {}
    for step in range(4):
        training = step < 3
        ours.train(training)
        theirs.train(training)
        x = (rng.standard_normal((5, 4, 3, 3)) * (step + 1) + step).astype(dtype)
        step_errors = forward_backward(ours, theirs, [x], seed=step)
        errors.update({f"{k} step {step}": v for k, v in step_errors.items()})
    state = theirs.state_dict()
    for key, value in ours.state_dict().items():
        if key == "num_batches_tracked":
            assert int(value) == int(state[key]) == 3
        else:
            errors[key] = relative_error(value, state[key].numpy())
    check(parity_errors, "batch_norm", dtype, errors)


# ---------------------------------------------------------------------------------------------
# containers
# ---------------------------------------------------------------------------------------------


def test_containers_give_torchs_state_dict_keys_and_outputs():
    """The same tree of ModuleList, ModuleDict and Sequential in both frameworks: the same
    keys, so torch's weights load by key, and then the same output."""

    def build(nn_: Any) -> Any:
        class Net(nn_.Module):
            def __init__(self) -> None:
                super().__init__()
                self.blocks = nn_.ModuleList([nn_.Linear(4, 5), nn_.Identity(7)])
                self.blocks.insert(0, nn_.Linear(4, 4))
                self.heads = nn_.ModuleDict({"a": nn_.Linear(5, 2)})
                self.heads.update({"b": nn_.Sequential(nn_.ReLU(), nn_.Linear(5, 3))})

            def forward(self, x: Any) -> Any:
                for block in self.blocks:
                    x = block(x)
                return self.heads["a"](x).sum() + self.heads["b"](x).sum()

        return Net()

    ours, theirs = build(nn), build(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = seeded("containers").standard_normal((3, 4))
    expected = theirs.double()(torch.from_numpy(x)).item()
    error = relative_error(np.asarray(ours.double()(Tensor(x)).data), np.asarray(expected))
    assert error < TOLERANCE["float64"]
