"""Tutorial 1: backpropagation by hand, then through backward(), then checked by gradcheck.

    .venv/bin/python docs/learn/01_backprop_by_hand.py

The expression is a single neuron with two inputs:

    n = x1 * w1 + x2 * w2 + b
    y = tanh(n)
    L = y * y

We want dL/dw1, dL/dw2 and dL/db: how much L changes when each parameter moves a little.
"""

import math

import numpy as np

import scratchnet as sn

# --- 1. Forward and backward by hand, with plain Python floats --------------------------------
x1, x2 = 2.0, 0.0
w1, w2 = -3.0, 1.0
b = 6.8813735870195432

n = x1 * w1 + x2 * w2 + b
y = math.tanh(n)
loss = y * y

# The chain rule, one node at a time, from the output back to the inputs. `dy` is short for
# dL/dy, as in scratchnet's code. Each line multiplies the gradient that arrived from above by
# the node's local derivative (d(output)/d(input)).
dloss = 1.0
dy = dloss * 2 * y  # L = y * y          -> dL/dy = 2y
dn = dy * (1 - y**2)  # y = tanh(n)      -> dy/dn = 1 - tanh(n)**2
dw1 = dn * x1  # n = x1*w1 + x2*w2 + b   -> dn/dw1 = x1
dw2 = dn * x2  #                         -> dn/dw2 = x2 (0: w2 cannot change L here)
db = dn * 1.0  #                         -> dn/db  = 1

print(f"by hand:     L = {loss:.6f}  dL/dw1 = {dw1:.6f}  dL/dw2 = {dw2:.6f}  dL/db = {db:.6f}")

# --- 2. The same through scratchnet's autograd --------------------------------------------------
# Each operation records the Function that made its output and the inputs it used (the graph);
# backward() walks that graph in reverse and calls each Function's backward(ctx, dy), which is
# exactly one of the lines above. float64 so that the two agree to the last digits.
x1_t = sn.tensor(x1, dtype=sn.float64)
x2_t = sn.tensor(x2, dtype=sn.float64)
w1_t = sn.tensor(w1, dtype=sn.float64, requires_grad=True)
w2_t = sn.tensor(w2, dtype=sn.float64, requires_grad=True)
b_t = sn.tensor(b, dtype=sn.float64, requires_grad=True)

n_t = x1_t * w1_t + x2_t * w2_t + b_t
y_t = n_t.tanh()
loss_t = y_t * y_t
loss_t.backward()  # fills .grad of every leaf with requires_grad=True

print(
    f"backward():  L = {loss_t.item():.6f}  dL/dw1 = {float(w1_t.grad):.6f}  "
    f"dL/dw2 = {float(w2_t.grad):.6f}  dL/db = {float(b_t.grad):.6f}"
)
for leaf, by_hand in [(w1_t, dw1), (w2_t, dw2), (b_t, db)]:
    assert abs(float(leaf.grad) - by_hand) < 1e-12, (float(leaf.grad), by_hand)

# --- 3. gradcheck: the definition of the derivative ----------------------------------------------
# Neither version above proves the formulas right: both could share a mistake. The derivative's
# definition can: nudge one input by eps each way and look at the change of the output,
#
#     dL/dw  ~  (L(w + eps) - L(w - eps)) / (2 eps)
#
# sn.autograd.gradcheck does that for every element of every input (with a random upstream
# gradient instead of 1, so that a wrong backward cannot hide behind a sum) and compares with
# backward(). It is how every op in scratchnet is tested.


def layer(w: sn.Tensor, b: sn.Tensor) -> sn.Tensor:
    """A whole layer of such neurons this time: 3 inputs, 4 outputs, on a batch of 5."""
    x = sn.tensor(np.random.default_rng(0).normal(size=(5, 3)))
    return (x @ w.T + b).tanh() ** 2


rng = np.random.default_rng(1)
w = sn.tensor(rng.normal(size=(4, 3)), requires_grad=True)
bias = sn.tensor(rng.normal(size=4), requires_grad=True)
assert sn.autograd.gradcheck(layer, (w, bias))
print("gradcheck: backward() matches central differences for w (4, 3) and b (4,)")

# And a wrong backward is caught: a tanh whose backward forgets the square in 1 - tanh(n)**2.


class WrongTanh(sn.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.y = np.tanh(x)
        return ctx.y

    @staticmethod
    def backward(ctx, dy):
        return dy * (1 - ctx.y)  # should be dy * (1 - ctx.y**2)


ok = sn.autograd.gradcheck(lambda w: WrongTanh.apply(w), w, raise_exception=False)
assert not ok
print("gradcheck: a wrong tanh backward fails, as it should")
