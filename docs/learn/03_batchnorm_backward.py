"""Tutorial 3: batch norm's backward, step by step, against the compact formula.

    .venv/bin/python docs/learn/03_batchnorm_backward.py

Batch norm normalises each channel over the batch, then scales and shifts it. For one channel
with m values x_i (in BatchNorm2d, m = N * H * W):

    mean    = sum(x) / m
    xmu     = x - mean
    var     = sum(xmu**2) / m                (biased: divided by m, not m - 1)
    inv_std = 1 / sqrt(var + eps)
    xhat    = xmu * inv_std
    y       = weight * xhat + bias

Every x_i moves y_i directly, and also every other y_j through mean and var: that is why the
backward is longer than the forward. Below, first the chain rule through the graph above one
node at a time ("Deep Learning from Scratch", section 6.3), then the compact formula that
scratchnet/nn/batchnorm.py runs, then scratchnet's own BatchNorm2d.backward.
"""

import numpy as np

import scratchnet as sn
from scratchnet.autograd import relative_error

rng = np.random.default_rng(0)
N, C, H, W = 4, 3, 5, 5
eps = 1e-5
x = rng.normal(2.0, 3.0, size=(N, C, H, W))
weight = rng.normal(size=C)
bias = rng.normal(size=C)
# A random upstream gradient: with dy = ones (the gradient of y.sum()), dx is exactly 0 and
# any formula would look right.
dy = rng.normal(size=(N, C, H, W))

# Per-channel vectors broadcast against (N, C, H, W) as (1, C, 1, 1); sums run over the m
# values of a channel, axes (0, 2, 3).
AXES = (0, 2, 3)
m = N * H * W


def per_channel(v: np.ndarray) -> np.ndarray:
    return v.reshape(1, C, 1, 1)


# --- Forward, keeping every intermediate ----------------------------------------------------
mean = x.mean(AXES, keepdims=True)
xmu = x - mean
var = (xmu**2).mean(AXES, keepdims=True)
std = np.sqrt(var + eps)
inv_std = 1.0 / std
xhat = xmu * inv_std
y = per_channel(weight) * xhat + per_channel(bias)

# --- 1. Backward, one node at a time, from y back to x --------------------------------------
# y = weight * xhat + bias
dbias = dy.sum(AXES)
dweight = (dy * xhat).sum(AXES)
dxhat = dy * per_channel(weight)

# xhat = xmu * inv_std: xmu gets a gradient here (and another one below, through var)
dinv_std = (dxhat * xmu).sum(AXES, keepdims=True)
dxmu_direct = dxhat * inv_std

# inv_std = 1 / std        d(inv_std)/d(std) = -1 / std**2
dstd = -dinv_std / std**2
# std = sqrt(var + eps)    d(std)/d(var) = 1 / (2 std)
dvar = dstd / (2 * std)
# var = sum(xmu**2) / m    d(var)/d(xmu_i) = 2 xmu_i / m: xmu's second path
dxmu = dxmu_direct + dvar * 2 * xmu / m

# xmu = x - mean: x gets dxmu directly, and mean gets -sum(dxmu)
dmean = -dxmu.sum(AXES, keepdims=True)
# mean = sum(x) / m        each x_i gets dmean / m
dx_steps = dxmu + dmean / m

# --- 2. The compact formula -----------------------------------------------------------------
# Substitute xhat = xmu * inv_std into the steps above and the three paths collect into
#
#     dx = weight * inv_std * (dy - mean(dy) - xhat * mean(dy * xhat))
#
# one line, and the form scratchnet/nn/batchnorm.py computes. Its two means say what the
# extra paths do: the gradient loses its per-channel average (the path through mean) and its
# component along xhat (the path through var).
mean_dy = dy.mean(AXES, keepdims=True)
mean_dy_xhat = (dy * xhat).mean(AXES, keepdims=True)
dx_compact = per_channel(weight) * inv_std * (dy - mean_dy - xhat * mean_dy_xhat)

step_vs_compact = relative_error(dx_steps, dx_compact)
print(f"step by step vs compact formula:  dx relative error {step_vs_compact:.1e}")
assert step_vs_compact < 1e-12

# --- 3. scratchnet's BatchNorm2d ------------------------------------------------------------
# In training mode (batch statistics), in float64, with the same weight and bias. The layer
# runs the compact formula through its kernels (scratchnet/kernels/batchnorm.py).
bn = sn.nn.BatchNorm2d(C, eps=eps).double()
bn.train()
with sn.no_grad():
    bn.weight[...] = weight
    bn.bias[...] = bias
x_t = sn.tensor(x, requires_grad=True)
y_t = bn(x_t)
y_t.backward(dy)

errors = {
    "y": relative_error(y_t.data, y),
    "dx": relative_error(x_t.grad, dx_steps),
    "dweight": relative_error(bn.weight.grad, dweight),
    "dbias": relative_error(bn.bias.grad, dbias),
}
for name, error in errors.items():
    print(f"BatchNorm2d vs step by step:      {name:8s} relative error {error:.1e}")
    assert error < 1e-10, (name, error)
print("batch norm backward: the steps, the compact formula and BatchNorm2d agree")
